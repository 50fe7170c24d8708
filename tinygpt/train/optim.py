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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: not on norms, biases or embeddings."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():  # parameters() yields the tied embedding once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module, cfg: DictConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    extra = {}
    if device is not None and device.type == "cuda":
        # One fused kernel for the whole update where the class offers it (Adam, AdamW, SGD).
        cls = get_class(cfg.impl._target_)
        if "fused" in inspect.signature(cls).parameters and "fused" not in cfg.impl:
            extra["fused"] = True
    return instantiate(cfg.impl, param_groups(model, cfg.weight_decay), lr=cfg.lr, **extra)


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
