"""Facts about the code and machine a run used, recorded as MLflow tags."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from tinygpt.hardware import cpu_bf16_units, cpu_name


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(start: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the checkout holding the code (else the working directory)."""
    for where in (Path(__file__).resolve().parent, start or Path.cwd()):
        commit = _git("rev-parse", "HEAD", cwd=where)
        if commit:
            dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=where)
            return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}
    return {"git_commit": "unknown", "git_dirty": "unknown"}


def system_tags(device: torch.device) -> dict[str, str]:
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "host": socket.gethostname(),
        "device": device.type,
        "device_name": device_name,
        "cpu_count": str(os.cpu_count()),
        "cpu_bf16": ",".join(cpu_bf16_units()) or "none",
        "torch_version": torch.__version__,
        "cuda_version": str(torch.version.cuda),
        "python_version": platform.python_version(),
        **git_info(),
    }


def _submitit_logs() -> list[Path]:
    """The stdout/stderr paths submitit gives this job (none outside submitit)."""
    if "SUBMITIT_FOLDER" not in os.environ:
        return []
    import submitit

    paths = submitit.JobEnvironment().paths
    return [paths.stdout, paths.stderr]


def slurm_logs() -> list[Path]:
    """The job's stdout/stderr files that exist so far."""
    return [p for p in _submitit_logs() if p.exists()]


def slurm_tags() -> dict[str, str]:
    if "SLURM_JOB_ID" not in os.environ:
        return {}
    tags = {
        "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"])
        + (f"_{os.environ['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in os.environ else ""),
        "slurm_partition": os.environ.get("SLURM_JOB_PARTITION", ""),
        "slurm_node": os.environ.get("SLURMD_NODENAME", ""),
    }
    logs = _submitit_logs()
    if logs:
        tags |= {"job_stdout": str(logs[0]), "job_stderr": str(logs[1])}
    return tags
