"""Opening a job's MLflow run, for training and seal jobs alike: nested under its sweep,
skipped when a FINISHED run with the same config hash exists, or reopened to resume an
interrupted one from its newest checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tinygpt import checkpoint
from tinygpt.tracking.mlflow_run import Store, Tracker
from tinygpt.tracking.sweep import config_hash, parent_run_id
from tinygpt.tracking.sysinfo import slurm_tags, system_tags

log = logging.getLogger("tinygpt")


def hydra_config() -> Any:
    """Hydra's runtime config inside a Hydra app, None when called outside one."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    hydra_cfg = hydra_config()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def output_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


@dataclass(frozen=True)
class Skipped:
    """A job whose FINISHED run (same config hash) is already in the store: its run's metrics."""

    run_id: str
    metrics: dict[str, float]

    def result(self, key: str) -> float:
        return self.metrics.get(key, float("nan"))


@dataclass(frozen=True)
class JobRun:
    """What opening the job's run decided: where to record, what to resume from, or that the
    job is done already (``skipped``, with a disabled tracker: the caller returns at once)."""

    tracker: Tracker
    resume: dict[str, Any] | None = None
    skipped: Skipped | None = None
    # Where ``resume`` was read from, for the other ranks of a job to read it too.
    resume_path: str | None = None


def open_job_run(
    cfg: DictConfig,
    out: Path,
    device: torch.device,
    ckpt: dict[str, Any] | None,
    ckpt_path: Path | None = None,
) -> JobRun:
    """Open the job's MLflow run; ``ckpt`` is a checkpoint already found in ``out`` (at
    ``ckpt_path``)."""
    tracking = cfg.tracking
    where_from = str(ckpt_path) if ckpt_path else None
    if not tracking.enabled:
        return JobRun(Tracker.disabled(), ckpt, resume_path=where_from)
    store = Store.connect(tracking.uri, tracking.experiment)
    hydra_cfg = hydra_config()
    multirun = in_multirun()
    parent = parent_run_id(hydra_cfg.sweep.dir) if multirun else None
    identity = config_hash(cfg)
    run_id = ckpt.get("mlflow_run_id") if ckpt else None
    if multirun and ckpt is None and tracking.skip_finished:
        for previous in store.find_runs(f"tags.config_hash = '{identity}'"):
            if previous.info.status == "FINISHED":
                log.info(
                    "skipped: run %s (%s) already FINISHED with config hash %s",
                    previous.info.run_id,
                    previous.info.run_name,
                    identity,
                )
                if parent:
                    store.client.set_tag(previous.info.run_id, "mlflow.parentRunId", parent)
                skipped = Skipped(previous.info.run_id, dict(previous.data.metrics))
                return JobRun(Tracker.disabled(), skipped=skipped)
            where = previous.data.tags.get("output_dir")
            found = checkpoint.load_newest(Path(where)) if where else None
            if found is not None:
                log.info("resuming interrupted run %s from %s", previous.info.run_id, found[0])
                ckpt, run_id = found[1], previous.info.run_id
                where_from = str(found[0])
                break
    name = tracking.run_name or (hydra_cfg.job.override_dirname if multirun else None) or out.name
    tags = {**system_tags(device), **slurm_tags(), "config_hash": identity}
    tracker = Tracker.start(store, name, tags, run_id=run_id, parent_run_id=parent)
    tracker.set_tags({"output_dir": str(out)})
    return JobRun(tracker, ckpt, resume_path=where_from)
