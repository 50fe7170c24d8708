"""Before a sweep starts: can the chosen Hydra launcher run its jobs on this hardware and cluster?

A SLURM job that asks for more than a partition has waits in the queue forever; one whose
launcher and ``hardware`` disagree (GPUs requested for a CPU job) wastes the allocation. Both are
answered in one line before anything is submitted.
"""

from __future__ import annotations

import shutil
import subprocess

from omegaconf import DictConfig


def world_problem(config: DictConfig) -> str | None:
    """A sweep whose jobs span several processes: one shape for all, and a launcher of tasks."""
    swept = [
        o.partition("=")[0]
        for o in config.hydra.overrides.task
        if o.partition("=")[0].lstrip("+~") in ("hardware.devices", "hardware.nodes")
        and "," in o.partition("=")[2]
    ]
    params = config.hydra.sweeper.get("params") or {}
    swept += [k for k in params if k in ("hardware.devices", "hardware.nodes")]
    if swept:
        return (
            f"a sweep over {swept[0]}: one SLURM array has one resource shape, so every job of "
            "a sweep runs on the same number of processes; sweep it in separate commands"
        )
    hardware = config.hardware
    if hardware.devices * hardware.nodes > 1 and "SlurmLauncher" not in str(
        config.hydra.launcher.get("_target_", "")
    ):
        return (
            f"hardware.devices={hardware.devices} x hardware.nodes={hardware.nodes} in a sweep "
            "runs each job's ranks as SLURM tasks: use hydra/launcher=slurm_cpu or slurm_gpu "
            "(or run single jobs with torchrun / tinygpt hardware.devices=N)"
        )
    return None


def launcher_problem(config: DictConfig) -> str | None:
    """What the launcher asks for that the job's hardware or the cluster cannot give."""
    problem = world_problem(config)
    if problem:
        return problem
    launcher = config.hydra.launcher
    target = str(launcher.get("_target_", ""))
    if "submitit" not in target:
        return None
    gpus = (launcher.get("gpus_per_node") or 0) + (launcher.get("gpus_per_task") or 0)
    device = str(config.hardware.device)
    if gpus and device.endswith("cpu"):
        return (
            f"the launcher asks for {gpus} GPU(s) per job but hardware=cpu: use hardware=cuda "
            "(or auto), or hydra/launcher=slurm_cpu"
        )
    if not gpus and device.endswith("cuda"):
        return "hardware=cuda but the launcher asks for no GPU: use hydra/launcher=slurm_gpu"
    if "SlurmLauncher" in target and shutil.which("sbatch"):
        return _slurm_rejects(launcher)
    return None


def _slurm_rejects(launcher: DictConfig) -> str | None:
    """Ask sbatch (--test-only) whether the partition can ever run such a job."""
    cmd = ["sbatch", "--test-only", "--wrap", "true", f"--time={launcher.timeout_min}"]
    if launcher.partition:
        cmd.append(f"--partition={launcher.partition}")
    if launcher.cpus_per_task:
        cmd.append(f"--cpus-per-task={launcher.cpus_per_task}")
    if launcher.mem_gb:
        cmd.append(f"--mem={launcher.mem_gb}G")
    if launcher.gpus_per_node:
        cmd.append(f"--gpus-per-node={launcher.gpus_per_node}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode == 0:
        return None
    why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "rejected"
    return (
        f"SLURM rejects the job request ({' '.join(cmd[4:])}): {why}. Lower "
        "hydra.launcher.cpus_per_task / mem_gb / gpus_per_node or pick hydra.launcher.partition"
    )
