"""Compute budgets as token budgets: ``isoflop.budgets`` (FLOPs) -> ``training.budgets`` (tokens).

An IsoFLOP study trains every model size at the same compute C, so each size gets its own token
budget D = C / flops_per_token. The FLOPs per token come from the model itself under the
convention ``isoflop.flops`` names (tinygpt/accounting.py; ``exact`` by default, the analysis's
default too), built on the meta device so nothing is allocated, with the vocabulary the run will
have: the readout is most of a small model's FLOPs.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, open_dict

from tinygpt.accounting import Counts, FlopCount, value
from tinygpt.errors import TinyGPTError
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train.branches import plan, tokens_per_step
from tinygpt.train.optim import build_schedule
from tinygpt.train.schedules import WSD

log = logging.getLogger("tinygpt")


def vocab_size(cfg: DictConfig) -> int:
    """The vocabulary a run of ``cfg`` will have, before it trains: the tokenizer's configured
    size (BPE), its fixed one (bytes, GPT-2), or, for a tokenizer fitted on the data (characters),
    the one ``prepare`` fits (and caches, so the run's own ``prepare`` is a cache hit)."""
    from tinygpt.data.tokenizers import ByteTokenizer

    tok = cfg.data.tokenizer
    target = str(tok.get("_target_", ""))
    if tok.get("vocab_size"):
        return int(tok.vocab_size)
    if target.startswith("tinygpt.data.tokenizers.ByteTokenizer"):
        return ByteTokenizer.vocab_size
    if target == "tinygpt.data.tokenizers.gpt2":
        return 50_257
    from tinygpt.data.dataset import prepare

    return prepare(cfg.data, cfg.model.context).tokenizer.vocab_size


def meta_model(model_cfg: DictConfig, vocab: int = 1) -> TinyGPT:
    """The model a config describes, on the meta device: its sizes without its memory."""
    with torch.device("meta"):
        return TinyGPT(GPTConfig.from_node(model_cfg, vocab))


def flops_per_token(cfg: DictConfig, convention: FlopCount | str | None = None) -> int:
    """FLOPs per token of the run ``cfg`` describes, under ``convention`` (default:
    ``isoflop.flops``)."""
    convention = convention or cfg.isoflop.flops
    return Counts.of(meta_model(cfg.model, vocab_size(cfg))).flops_per_token(convention)


def compute_plan(cfg: DictConfig) -> dict[int, float]:
    """Token budget -> its compute budget C, for the budgets this model can train."""
    cs = sorted({float(c) for c in cfg.isoflop.budgets})
    if any(c <= 0 for c in cs):
        raise TinyGPTError(f"isoflop.budgets={cs}: compute budgets must be positive FLOP counts")
    fpt = flops_per_token(cfg)
    per_step = tokens_per_step(cfg)
    schedule = build_schedule(cfg.optimizer)
    out: dict[int, float] = {}
    for c in cs:
        # Whole steps, the nearest to C: the compute spent is within half a step of it.
        steps = max(1, round(c / fpt / per_step))
        tokens = steps * per_step
        if len(cs) > 1:
            if not isinstance(schedule, WSD):
                raise TinyGPTError(
                    "isoflop.budgets with several budgets trains them as branches of one run: "
                    "add optimizer/schedule=wsd"
                )
            try:
                plan(tokens, per_step, schedule)
            except TinyGPTError:
                log.warning(
                    "isoflop: C = %.3g is %d steps for this model (%s FLOPs/token), too few to "
                    "branch after the warmup: left out",
                    c,
                    steps,
                    f"{fpt:,}",
                )
                continue
        if tokens in out:
            log.warning(
                "isoflop: C = %.3g rounds to the same %d steps as C = %.3g: left out",
                c,
                steps,
                out[tokens],
            )
            continue
        out[tokens] = c
    if not out:
        raise TinyGPTError(
            f"isoflop.budgets={cs}: every budget is too small for model.d_model="
            f"{cfg.model.d_model} to train past its warmup ({fpt:,} {value(cfg.isoflop.flops)} "
            "FLOPs per token): raise the "
            "budgets or lower optimizer.schedule.warmup_steps"
        )
    return out


def apply(cfg: DictConfig) -> dict[int, float]:
    """Set the run's token budget(s) from ``isoflop.budgets``; returns token budget -> C."""
    if cfg.training.budgets or cfg.training.max_steps is not None:
        raise TinyGPTError(
            "isoflop.budgets sets the token budgets: drop training.budgets / training.max_steps"
        )
    plan_ = compute_plan(cfg)
    with open_dict(cfg):
        if len(plan_) > 1:
            cfg.training.budgets = sorted(plan_)
        else:
            cfg.training.tokens = next(iter(plan_))
    log.info("isoflop: token budgets %s", {f"{c:.3g}": t for t, c in plan_.items()})
    return plan_
