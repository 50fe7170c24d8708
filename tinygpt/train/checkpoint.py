"""Checkpoints: model, optimizer, scheduler, every RNG and the config, in one file."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STEP = re.compile(r"step_(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    # Written aside and renamed so a kill mid-save never leaves a truncated newest checkpoint.
    tmp = path.with_suffix(".pt.tmp")
    torch.save({**payload, "rng": rng_state()}, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def newest(directory: Path) -> Path | None:
    """final.pt if the run finished, else the step_<N>.pt with the largest N."""
    if (directory / "final.pt").exists():
        return directory / "final.pt"
    steps = [
        (int(m.group(1)), p) for p in directory.glob("step_*.pt") if (m := _STEP.search(p.name))
    ]
    return max(steps)[1] if steps else None
