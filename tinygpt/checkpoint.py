"""Checkpoints: model, optimizer, scheduler, every RNG and the config, in one file."""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STEP = re.compile(r"step_(\d+)\.pt$")
log = logging.getLogger("tinygpt")


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


def candidates(directory: Path) -> list[Path]:
    """final.pt, then the step_<N>.pt files from the largest N down."""
    steps = sorted(
        ((int(m.group(1)), p) for p in directory.glob("step_*.pt") if (m := _STEP.search(p.name))),
        reverse=True,
    )
    final = [directory / "final.pt"] if (directory / "final.pt").exists() else []
    return final + [p for _, p in steps]


def newest(directory: Path) -> Path | None:
    """final.pt if the run finished, else the step_<N>.pt with the largest N."""
    found = candidates(directory)
    return found[0] if found else None


def load_newest(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads. A damaged one (truncated by a full disk, say; our own
    writes are atomic) is named in a warning and skipped for the one before it."""
    for path in candidates(directory):
        try:
            return path, load(path)
        except Exception as e:  # torch raises several types for a damaged zip/pickle
            log.warning(
                "checkpoint %s is damaged (%s): trying the one before it",
                path,
                str(e).splitlines()[0][:200],
            )
    return None
