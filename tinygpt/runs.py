"""Finding a trained run from what a user types: a run directory, an MLflow run id, or a model
URI (``models:/name/version``, ``runs:/<id>/model``). Shared by seal, sample and eval."""

from __future__ import annotations

from pathlib import Path

from tinygpt.errors import TinyGPTError

MODEL_URI_SCHEMES = ("models:/", "runs:/")


def run_directory(spec: str | None, tracking_uri: str | None, setting: str) -> Path:
    """The run directory ``spec`` names, directly or as an MLflow run id's ``output_dir``."""
    if not spec:
        raise TinyGPTError(f"{setting} is not set: give a run directory or an MLflow run id")
    run_dir = Path(spec).expanduser()
    if run_dir.is_dir():
        return run_dir
    from mlflow.tracking import MlflowClient

    from tinygpt.tracking.mlflow_run import resolve_uri

    try:
        client = MlflowClient(tracking_uri=resolve_uri(tracking_uri))
        return Path(client.get_run(spec).data.tags["output_dir"])
    except Exception:
        raise TinyGPTError(
            f"{setting}={spec} is neither a run directory nor an MLflow run id with an "
            "output_dir tag: point it at a training run's output directory"
        ) from None
