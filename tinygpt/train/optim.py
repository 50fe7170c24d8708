"""The optimizer (any torch.optim class via ``_target_``) and the warmup + cosine schedule."""

from __future__ import annotations

import inspect
import math
from functools import partial

import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from torch import nn

from tinygpt.errors import instantiate


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


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warmup to 1, then cosine decay to ``floor`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: DictConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    fn = partial(lr_factor, warmup=cfg.warmup_steps, total=total_steps, floor=cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
