"""One adaptation job (`tinygpt seal=lora ...`): an MLflow run around ``adapt``."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tinygpt import hardware
from tinygpt.errors import TinyGPTError
from tinygpt.seal.adapt import adapt
from tinygpt.tracking.job_run import open_job_run, output_dir
from tinygpt.tracking.mlflow_run import flatten

log = logging.getLogger("tinygpt")


def run(cfg: DictConfig, out_dir: Path | None = None) -> float:
    """Adapt the base model to the target passages; return the mean improvement (reward)."""
    if cfg.hardware.devices * cfg.hardware.nodes > 1:
        raise TinyGPTError(
            "seal=lora (adaptation) runs on one process: drop hardware.devices / hardware.nodes "
            "(its inner loops are many small LoRA fits, not one model to spread)"
        )
    out = out_dir or output_dir()
    out.mkdir(parents=True, exist_ok=True)
    runtime = hardware.resolve(cfg.hardware)
    opened = open_job_run(cfg, out, runtime.device, None)
    if opened.skipped is not None:
        return opened.skipped.result("improvement")
    tracker = opened.tracker
    status = "FAILED"
    try:
        tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        summary = adapt(cfg, out, tracker)
        tracker.log_metrics(
            {k: v for k, v in summary.items() if isinstance(v, float)}, cfg.seal.rounds
        )
        tracker.log_artifact(out / "edits.jsonl")
        tracker.log_artifact(out / "results.json")
        log.info("seal results: %s", summary)
        status = "FINISHED"
        return summary["improvement"]
    except KeyboardInterrupt:
        status = "KILLED"  # Ctrl-C or SIGTERM, as for training runs
        raise
    except Exception as e:
        tracker.set_tags({"error": f"{type(e).__name__}: {e}"[:5000]})
        raise
    finally:
        tracker.log_artifacts(out / ".hydra", "hydra")
        tracker.close(status)
