"""SEAL-style self-adaptation: self-edits, LoRA inner loop (peft), ReST-EM outer loop.

For each target passage the policy writes k self-edits; each edit trains a fresh LoRA adapter on
the frozen base for ``inner_steps``; the reward is how much the adapter lowered the loss on the
passage's held-out continuation. Forgetting is the rise of the base domain's validation loss.
With ``rounds`` > 0 the best edit per passage is kept and the policy is fine-tuned on those
(ReST-EM), and the whole evaluation repeats.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from tinygpt import checkpoint
from tinygpt.data.dataset import EVAL_SEED, BatchSampler, prepare, split_documents
from tinygpt.data.tokenizers import Tokenizer, load_tokenizer
from tinygpt.errors import TinyGPTError, instantiate
from tinygpt.model import TinyGPT
from tinygpt.runs import run_directory


@dataclass
class Passage:
    context: torch.Tensor  # (Tc,) ids the policy sees
    continuation: torch.Tensor  # (Th,) held-out ids the reward is measured on


@dataclass
class EditResult:
    round: int
    passage: int
    edit: int
    improvement: float
    target_loss_before: float
    target_loss_after: float
    forgetting: float
    base_loss_before: float
    base_loss_after: float
    trainable_parameters: int
    edit_tokens: int
    update_tokens: int
    seconds: float
    text: str  # the self-edit, decoded


def load_base(
    spec: str | None, tracking_uri: str | None = None
) -> tuple[TinyGPT, Tokenizer, dict[str, Any]]:
    """A trained model, its tokenizer and its training config, from a run dir or an MLflow run
    id in the store at ``tracking_uri`` (``tracking.uri``; None: MLflow's default)."""
    if not spec:
        raise TinyGPTError("seal=lora needs seal.base=<run directory or MLflow run id>")
    run_dir = run_directory(spec, tracking_uri, "seal.base")
    path = run_dir / "final.pt"
    if not path.exists():
        raise TinyGPTError(f"seal.base: {path} does not exist: train the base model to the end")
    ckpt = checkpoint.load(path)
    tok = load_tokenizer(run_dir / "tokenizer.json")
    return TinyGPT.from_checkpoint(ckpt), tok, ckpt.get("config", {})


def passages(cfg: DictConfig, tok: Tokenizer, context: int) -> list[Passage]:
    """The target domain's held-out documents, cut into context + continuation."""
    if cfg.target is None:
        raise TinyGPTError(
            "seal.target is not set: give a corpus node, e.g. "
            "seal.target='{_target_: tinygpt.data.corpora.austen}' (seal=lora's default)"
        )
    docs = instantiate(cfg.target)
    docs = split_documents(docs)["val"] or docs  # documents the split keeps out of training
    need = min(cfg.passage_tokens, context + 1)  # context + continuation fit one window
    out = []
    for d in docs:
        ids = torch.from_numpy(tok.encode(d)[:need]).long()
        if len(ids) < need:
            continue
        cut = max(1, int(need * cfg.context_fraction))
        out.append(Passage(ids[:cut], ids[cut:need]))
        if len(out) == cfg.passages:
            break
    if not out:
        raise TinyGPTError(
            f"the target corpus has no passage of seal.passage_tokens={need} tokens: lower it "
            "or choose another seal.target"
        )
    return out


@torch.no_grad()
def continuation_loss(model: torch.nn.Module, p: Passage) -> float:
    """Loss on the held-out continuation, given the context."""
    model.eval()
    seq = torch.cat([p.context, p.continuation])[None]
    logits, _ = model(seq[:, :-1])
    start = len(p.context) - 1
    return F.cross_entropy(logits[0, start:], seq[0, start + 1 :]).item()


@torch.no_grad()
def windows_loss(model: torch.nn.Module, windows: torch.Tensor) -> float:
    model.eval()
    _, loss = model(windows[:, :-1], windows[:, 1:])
    return loss.item()


def train_on(
    model: torch.nn.Module,
    seq: torch.Tensor,
    steps: int,
    lr: float,
    batch: int,
    context: int,
    seed: int,
) -> int:
    """Next-token training on random windows of one token sequence; returns tokens used."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sampler = BatchSampler(seq.numpy(), batch, min(context, len(seq) - 1), seed)
    model.train()
    for _ in range(steps):
        w = torch.from_numpy(sampler.windows(batch))
        _, loss = model(w[:, :-1], w[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch * sampler.context


def lora(base: TinyGPT, cfg: DictConfig) -> Any:
    """A fresh LoRA adapter on a frozen copy of the base (peft on the project's own model)."""
    from peft import LoraConfig, get_peft_model

    if cfg.lora_rank < 1:
        raise TinyGPTError(f"seal.lora_rank={cfg.lora_rank}: a LoRA rank must be at least 1")
    config = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets),
    )
    return get_peft_model(copy.deepcopy(base), config)


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class PassagePolicy:
    """SEAL's baseline: the self-edit is the passage itself; nothing for ReST-EM to train."""

    def __init__(self, base: TinyGPT, tok: Tokenizer, seal: DictConfig, name: str) -> None:
        self.name = name

    def write(self, p: Passage, gen: torch.Generator) -> torch.Tensor:
        return p.context.clone()

    def improve(self, best: list[tuple[Passage, torch.Tensor]], seed: int) -> int:
        return 0


class SelfPolicy:
    """The model being adapted samples continuations of the passage: the self-adapting case."""

    def __init__(
        self,
        base: TinyGPT,
        tok: Tokenizer,
        seal: DictConfig,
        name: str,
        edit_tokens: int,
        temperature: float,
        top_k: int | None,
    ) -> None:
        self.model, self.seal, self.name = copy.deepcopy(base), seal, name
        self.edit_tokens, self.temperature, self.top_k = edit_tokens, temperature, top_k

    @torch.no_grad()
    def write(self, p: Passage, gen: torch.Generator) -> torch.Tensor:
        self.model.eval()
        out = self.model.generate(
            p.context[None], self.edit_tokens, self.temperature, self.top_k, gen
        )
        return out[0]

    def improve(self, best: list[tuple[Passage, torch.Tensor]], seed: int) -> int:
        """ReST-EM's M-step: fine-tune on the best-rewarded edit of each passage."""
        seal = self.seal
        seq = torch.cat([edit for _, edit in best])
        return train_on(
            self.model,
            seq,
            seal.outer_steps,
            seal.outer_lr,
            seal.inner_batch,
            self.model.cfg.context,
            seed,
        )


def make_policy(base: TinyGPT, tok: Tokenizer, seal: DictConfig) -> Any:
    """The ``seal.policy`` node (a ``_partial_`` target) given the base model, its tokenizer and
    the seal settings its ReST-EM step reads."""
    if seal.policy is None:
        raise TinyGPTError(
            "seal.policy is not set: pick one, e.g. seal/policy=passage (or self, pretrained)"
        )
    return instantiate(seal.policy)(base, tok, seal)


def adapt(cfg: DictConfig, out: Path, tracker: Any) -> dict[str, Any]:
    """Run the experiment; write ``edits.jsonl`` and ``results.json``; return the summary."""
    seal = cfg.seal
    torch.manual_seed(cfg.seed)
    base, tok, base_cfg = load_base(seal.base, cfg.tracking.uri)
    targets = passages(seal, tok, base.cfg.context)
    if not base_cfg:
        raise TinyGPTError("seal.base's checkpoint has no training config to measure forgetting")
    base_data = prepare(OmegaConf.create(base_cfg["data"]), base.cfg.context)
    forget = torch.from_numpy(
        BatchSampler(base_data.splits["val"], 8, base.cfg.context, EVAL_SEED).windows(
            8 * seal.forget_batches
        )
    )
    base_forget = windows_loss(base, forget)
    policy = make_policy(base, tok, seal)
    gen = torch.Generator().manual_seed(cfg.seed)
    results: list[EditResult] = []
    log_path = out / "edits.jsonl"
    with log_path.open("w") as log:
        for rnd in range(seal.rounds + 1):
            best: list[tuple[Passage, torch.Tensor]] = []
            for i, p in enumerate(targets):
                before = continuation_loss(base, p)
                scored = []
                for j in range(seal.k):
                    t0 = time.perf_counter()
                    edit = policy.write(p, gen)
                    adapted = lora(base, seal)
                    used = train_on(
                        adapted,
                        edit,
                        seal.inner_steps,
                        seal.inner_lr,
                        seal.inner_batch,
                        base.cfg.context,
                        cfg.seed + j,
                    )
                    after = continuation_loss(adapted, p)
                    forget_after = windows_loss(adapted, forget)
                    r = EditResult(
                        rnd,
                        i,
                        j,
                        before - after,
                        before,
                        after,
                        forget_after - base_forget,
                        base_forget,
                        forget_after,
                        trainable_parameters(adapted),
                        len(edit),
                        used,
                        time.perf_counter() - t0,
                        tok.decode(edit.tolist()),
                    )
                    results.append(r)
                    scored.append((r.improvement, edit))
                    log.write(json.dumps(asdict(r)) + "\n")
                best.append((p, max(scored, key=lambda x: x[0])[1]))
            this = [r for r in results if r.round == rnd]
            tracker.log_metrics(summary(this), rnd)
            tracker.flush()
            if rnd < seal.rounds:
                policy.improve(best, cfg.seed + rnd)
    final = summary([r for r in results if r.round == seal.rounds])
    final["mean_reward_per_round"] = [
        summary([r for r in results if r.round == k])["improvement"] for k in range(seal.rounds + 1)
    ]
    (out / "results.json").write_text(json.dumps(final, indent=2))
    return final


def summary(rs: list[EditResult]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return float(np.mean([getattr(r, key) for r in rs]))

    return {
        "improvement": mean("improvement"),
        "target_loss_before": mean("target_loss_before"),
        "target_loss_after": mean("target_loss_after"),
        "forgetting": mean("forgetting"),
        "trainable_parameters": mean("trainable_parameters"),
        "edit_tokens": float(sum(r.edit_tokens for r in rs)),
        "update_tokens": float(sum(r.update_tokens for r in rs)),
        "seconds": float(sum(r.seconds for r in rs)),
        "edits": float(len(rs)),
        "improvement_positive_share": float(np.mean([r.improvement > 0 for r in rs])),
    }
