"""A ``--multirun`` sweep as one MLflow parent run, its jobs as nested children.

The Hydra callback runs in the launching process before any job starts: it creates the experiment
and the parent run once (so parallel jobs never race to create them), and hands the parent id to
every job through the environment (inherited by joblib workers and SLURM jobs alike) and a file
in the sweep directory. A failing job makes Hydra's sweeper raise before ``on_multirun_end``, so
an exit hook closes the parent then, naming the failed children.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from tinygpt.launchers import launcher_problem
from tinygpt.tracking.mlflow_run import Store, Tracker
from tinygpt.tracking.notes import NOTE, sweep_note

PARENT_ENV = "TINYGPT_MLFLOW_PARENT_RUN_ID"
PARENT_FILE = "mlflow_parent_run_id"
# A job that stopped on a user-fixable error leaves its one line here (the sweep's end reads them).
FAILURES_DIR = "failed_jobs"
log = logging.getLogger("tinygpt")

# Settings that say where and how a job is recorded, not what it computes.
_NOT_IDENTITY = ("tracking", "hydra")
_NOT_IDENTITY_LEAVES = (("data", "cache_dir"), ("training", "resume"), ("training", "stop_at"))


def config_hash(cfg: DictConfig) -> str:
    """A job's identity: the resolved config minus output paths and tracking settings."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(tree, dict)
    for key in _NOT_IDENTITY:
        tree.pop(key, None)
    for group, leaf in _NOT_IDENTITY_LEAVES:
        tree.get(group, {}).pop(leaf, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:16]


class MLflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        # The sweep's overrides, directory and preset swept keys, for its note.
        self.grid, self.sweep_dir, self.preset = "", "", list[str]()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = launcher_problem(config)
        if problem:
            # Raised from a callback, an exception would reach the user as Hydra's traceback.
            print(f"tinygpt: error: {problem}", file=sys.stderr)
            sys.exit(2)
        shutil.rmtree(Path(config.hydra.sweep.dir) / FAILURES_DIR, ignore_errors=True)
        tracking = config.tracking
        if not tracking.enabled:
            return
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        grid = " ".join(config.hydra.overrides.task)
        self.store = Store.connect(tracking.uri, tracking.experiment)
        reaped = self.store.reap_dead_runs()
        if reaped:
            log.warning(
                "marked %d runs KILLED whose process had died: %s", len(reaped), ", ".join(reaped)
            )
        self.tracker = Tracker.start(
            self.store,
            tracking.run_name or f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
            {"sweep": "true", "sweep_dir": str(sweep_dir), "sweep_overrides": grid},
        )
        self.grid, self.sweep_dir = grid, str(sweep_dir)
        self.preset = list((config.hydra.sweeper.get("params") or {}).keys())
        os.environ[PARENT_ENV] = self.tracker.run_id
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self.tracker.run_id)
        atexit.register(self._close)
        log.info("MLflow parent run %s for sweep %s", self.tracker.run_id, sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed = self._close()
        stopped = sorted((Path(config.hydra.sweep.dir) / FAILURES_DIR).glob("*.txt"))
        if stopped:
            print(
                f"tinygpt: {len(stopped)} job(s) of the sweep stopped with an error (the "
                "'tinygpt: error in job' lines above); fix it and retype the sweep command",
                file=sys.stderr,
            )
        if failed or stopped:
            sys.exit(1)

    def _close(self) -> bool:
        """Close the parent run; whether any child FAILED (a paused or interrupted job is KILLED:
        the sweep is to be continued, not failed)."""
        if self.tracker is None:
            return False
        tracker, self.tracker = self.tracker, None
        atexit.unregister(self._close)
        os.environ.pop(PARENT_ENV, None)
        children = self.store.find_runs(f"tags.mlflow.parentRunId = '{tracker.run_id}'")
        tracker.set_tags({NOTE: sweep_note(self.grid, self.sweep_dir, children, self.preset)})
        failed = [c.info.run_name for c in children if c.info.status in ("FAILED", "KILLED")]
        unfinished = [c.info.run_name for c in children if c.info.status == "RUNNING"]
        if failed or unfinished:
            tracker.set_tags(
                {"failed_jobs": ", ".join(failed), "unfinished_jobs": ", ".join(unfinished)}
            )
            parts = []
            if failed:
                parts.append(f"{len(failed)} failed or were killed: {'; '.join(failed)}")
            if unfinished:
                parts.append(
                    f"{len(unfinished)} never finished (still RUNNING in MLflow: the process "
                    f"died or was killed hard): {'; '.join(unfinished)}"
                )
            print(
                f"tinygpt: sweep FAILED: of {len(children)} jobs, {'; and '.join(parts)}. "
                f"Retype the sweep command to resume them (MLflow parent run {tracker.run_id})",
                file=sys.stderr,
            )
        tracker.close("FAILED" if failed or unfinished else "FINISHED")
        print(f"sweep {tracker.run_id}: {tracker.browse_hint(sweep=True)}")
        return any(c.info.status == "FAILED" for c in children)


def record_failure(sweep_dir: str, job_num: int, message: str) -> None:
    """A job's error (bad input, divergence), for the sweep's end: the job itself returns
    instead of raising, so Hydra prints no traceback for what one line says."""
    where = Path(sweep_dir) / FAILURES_DIR
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{job_num}.txt").write_text(message + "\n")


def parent_run_id(sweep_dir: str | None) -> str | None:
    """The sweep's parent run, from the environment or the sweep directory's file."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    if sweep_dir and (Path(sweep_dir) / PARENT_FILE).exists():
        return (Path(sweep_dir) / PARENT_FILE).read_text().strip()
    return None
