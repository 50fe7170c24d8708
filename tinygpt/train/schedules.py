"""Learning-rate schedules: the factor applied to ``optimizer.lr`` at each step.

Every schedule warms up linearly over ``warmup_steps`` and then follows its own shape to the last
step of the run (``total``, 0-based steps ``0 … total − 1``). ``wsd`` (warmup-stable-decay, Hägele
et al. 2024; MiniCPM 2024) holds the peak LR and decays only over the last ``decay_fraction`` of the
run, so any shorter run is the same constant trunk plus its own short decay: the trainer branches
those decays off one trunk (``training.budgets``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinygpt.errors import TinyGPTError

SHAPES = ("linear", "cosine", "1-sqrt")


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps


def _check(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise TinyGPTError(f"optimizer.schedule.{name}={value} must be in [{low}, {high}]")


@dataclass(frozen=True)
class Schedule:
    """Linear warmup, then the subclass's shape; ``factor(step, total)`` in [0, 1]."""

    warmup_steps: int = 20

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise TinyGPTError(f"optimizer.schedule.warmup_steps={self.warmup_steps} must be ≥ 0")

    def factor(self, step: int, total: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        return self.after_warmup(step, total)

    def after_warmup(self, step: int, total: int) -> float:
        raise NotImplementedError

    def decay_start(self, total: int) -> int:
        """The first step whose LR is below the peak: where a cooldown branch leaves the trunk."""
        return self.warmup_steps


@dataclass(frozen=True)
class Constant(Schedule):
    def after_warmup(self, step: int, total: int) -> float:
        return 1.0

    def decay_start(self, total: int) -> int:
        return total


@dataclass(frozen=True)
class _ToFloor(Schedule):
    """From the peak down to ``min_lr_ratio`` over the whole run after warmup."""

    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)

    def after_warmup(self, step: int, total: int) -> float:
        progress = min(1.0, (step - self.warmup_steps) / max(1, total - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * self.down(progress)

    def down(self, progress: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Cosine(_ToFloor):
    """Cosine from the peak to ``min_lr_ratio`` at the end of the run."""

    min_lr_ratio: float = 0.1

    def down(self, progress: float) -> float:
        return 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Linear(_ToFloor):
    """Straight from the peak to ``min_lr_ratio`` at the end of the run."""

    def down(self, progress: float) -> float:
        return 1 - progress


@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup, the peak LR held, then a decay over the last ``decay_fraction`` of the run.

    The decay's progress is (step − start) / decay_steps, as in epfml/schedules-and-scaling, so
    its first step still runs at the peak and its last at (1 − 1/decay_steps) of the way down.
    ``1-sqrt`` is the shape Hägele et al. found best for short cooldowns.
    """

    decay_fraction: float = 0.2
    shape: str = "linear"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("decay_fraction", self.decay_fraction, 0.0, 1.0)
        _check("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        if self.shape not in SHAPES:
            raise TinyGPTError(
                f"optimizer.schedule.shape={self.shape!r} is not a decay shape: choose one of "
                + ", ".join(SHAPES)
            )

    def decay_steps(self, total: int) -> int:
        return min(total, max(1, round(self.decay_fraction * total))) if self.decay_fraction else 0

    def decay_start(self, total: int) -> int:
        return total - self.decay_steps(total)

    def after_warmup(self, step: int, total: int) -> float:
        start = self.decay_start(total)
        if step < start:
            return 1.0
        t = min(1.0, (step - start) / self.decay_steps(total))
        if self.shape == "linear":
            down = 1 - t
        elif self.shape == "cosine":
            down = 0.5 * (1 + math.cos(math.pi * t))
        else:
            down = 1 - math.sqrt(t)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * down


@dataclass(frozen=True)
class TwoStage(Schedule):
    """Warmup, the peak LR, then at once ``ratio`` × the peak from ``drop_fraction`` of the run
    to its end: the two-stage schedules (``wsdcon``) the multi-power law was tested on."""

    drop_fraction: float = 0.5
    ratio: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("drop_fraction", self.drop_fraction, 0.0, 1.0)
        _check("ratio", self.ratio, 0.0, 1.0)

    def decay_start(self, total: int) -> int:
        return max(self.warmup_steps, round(self.drop_fraction * total))

    def after_warmup(self, step: int, total: int) -> float:
        return 1.0 if step < self.decay_start(total) else self.ratio
