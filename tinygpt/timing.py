"""Where a job's wall time goes: an exclusive phase clock.

Each second of a job is charged to exactly one phase, the innermost one open: a checkpoint
written during training is ``checkpoints``, not ``training``, and the store writes that the
checkpoint triggers are ``tracking``. The phases therefore add up to the job's wall time, which
is what ``benchmarks/main_job.py`` needs to split the main job. One clock per process (jobs of a
sweep run one after another in it); ``reset`` starts a job, ``switch`` moves it on to its
next outer phase.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class PhaseClock:
    def __init__(self) -> None:
        self.reset()

    def reset(self, phase: str | None = None) -> None:
        """Forget everything; start charging ``phase``, if given, as the job's outer phase."""
        self.seconds: dict[str, float] = {}
        self._stack: list[str] = [phase] if phase else []
        self._since = time.perf_counter()

    def switch(self, phase: str) -> None:
        """End the outer phase and start ``phase`` (start-up -> training -> finish)."""
        self._charge()
        self._stack[:1] = [phase]

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._stack:
            name = self._stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # one stack per process: a helper thread's time is not the job's
            return
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def total(self) -> float:
        self._charge()  # the open phase, up to now
        return sum(self.seconds.values())

    def summary(self) -> str:
        total = self.total()
        parts = " + ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
        return f"{total:.1f} s = {parts}"


clock = PhaseClock()
