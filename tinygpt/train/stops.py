"""How a run ends early: a stop signal, or ``training.stop_at`` reached (both resumable)."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """A stop signal arrived; raised between steps so the state is consistent."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class Paused(Exception):
    """``training.stop_at`` reached: the run is checkpointed and can be resumed."""
