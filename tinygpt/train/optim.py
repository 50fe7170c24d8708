"""The optimizer (any torch.optim class via ``_target_``) and its LR schedule (``schedules``)."""

from __future__ import annotations

import inspect
from functools import partial

import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from torch import nn

from tinygpt.errors import instantiate
from tinygpt.train.schedules import Schedule


def param_groups(
    model: nn.Module, weight_decay: float, lr: float, adaptive: bool = True
) -> list[dict]:
    """Weight decay on matrices only: not on norms, biases or embeddings.

    Under μP (``model.cfg.width_mult`` ≠ 1) each group also gets μP's LR, as ``mup``'s MuAdam /
    MuSGD set it: for Adam-type (``adaptive``) optimizers the hidden matrices' LR shrinks as
    1/width_mult (their weight decay grows by width_mult, so AdamW's decoupled decay lr·wd stays
    put); for SGD the vector-like parameters (embeddings = readout, norms, biases) get
    width_mult × the LR and the hidden matrices keep it.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    cfg = getattr(model, "cfg", None)
    mult = getattr(cfg, "width_mult", 1.0)
    hidden = {id(p) for p in model.hidden_matrices()} if mult != 1.0 else set()
    groups: dict[tuple[bool, float], list] = {}
    for p in model.parameters():  # parameters() yields the tied embedding once
        if not p.requires_grad:
            continue
        decay = p.dim() >= 2 and id(p) not in embeddings
        # μP's LR factor: (hidden, vector-like) = (1/mult, 1) for Adam-type, (1, mult) for SGD
        scale = (1 / mult if adaptive else 1.0) if id(p) in hidden else (1.0 if adaptive else mult)
        groups.setdefault((decay, scale), []).append(p)
    return [
        {"params": ps, "lr": lr * scale, "weight_decay": weight_decay / scale if decay else 0.0}
        for (decay, scale), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
    ]


def build_optimizer(
    model: nn.Module, cfg: DictConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    extra = {}
    if device is not None and device.type == "cuda":
        # One fused kernel for the whole update where the class offers it (Adam, AdamW, SGD).
        cls = get_class(cfg.impl._target_)
        if "fused" in inspect.signature(cls).parameters and cfg.impl.get("fused") is None:
            extra["fused"] = True
    adaptive = not issubclass(get_class(cfg.impl._target_), torch.optim.SGD)
    groups = param_groups(model, cfg.weight_decay, cfg.lr, adaptive)
    return instantiate(cfg.impl, groups, lr=cfg.lr, **extra)


def build_schedule(cfg: DictConfig) -> Schedule:
    """The ``optimizer.schedule`` node as a ``tinygpt.train.schedules.Schedule``."""
    return instantiate(cfg.schedule)


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, total_steps: int, last_step: int = -1
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following ``schedule`` over a run of ``total_steps``.

    ``last_step`` starts it mid-run (a cooldown branch leaving the trunk at that step); the
    optimizer's groups must then already carry ``initial_lr`` from the trunk's scheduler.
    """
    fn = partial(schedule.factor, total=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn, last_epoch=last_step)
