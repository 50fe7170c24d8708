"""The same sweeps on a real single-node SLURM cluster through hydra-submitit-launcher."""

import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
SLURM = ["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=2", "tracking.log_model=false"]


def runs(cwd: Path):
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tinygpt")
    found = client.search_runs([exp.experiment_id])
    parents = [r for r in found if r.data.tags.get("sweep") == "true"]
    return parents, [r for r in found if r not in parents]


def test_two_seed_sweep_lands_as_two_children(slurm_cluster, tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m",
        *TINY,
        *SLURM,
        f"hydra.launcher.partition={slurm_cluster}",
        "seed=1,2",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    parents, children = runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2"]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert Path(c.data.tags["job_stdout"]).exists()  # the job's log, reachable from the run


def _wait_for(path: Path, text: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{text!r} never appeared in {path}")


def _release_requeued_job(seconds: float) -> None:
    """SLURM holds a requeued job for 120 s (Reason=BeginTime); let it start now."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i %T %r"], capture_output=True, text=True
        ).stdout.split("\n")
        held = [line.split()[0] for line in queue if line.endswith("PENDING BeginTime")]
        if held:
            subprocess.run(["scontrol", "update", f"JobId={held[0]}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)


def test_preempted_job_is_requeued_and_resumes_to_the_same_loss(slurm_cluster, tmp_path, cache_dir):
    job = [
        "-m",
        "model=d32",
        "training.max_steps=400",
        "training.log_interval=10",
        "seed=3",
        *SLURM,
        "hydra.sweep.dir=sweep",
    ]
    whole = tmp_path / "whole"
    whole.mkdir()
    assert tinygpt_cli(*job, cwd=whole, cache_dir=cache_dir).returncode == 0
    (expected,) = runs(whole)[1]

    cut = tmp_path / "cut"
    cut.mkdir()
    sweep = subprocess.Popen(
        ["bash", "-c", 'exec "$0" -m tinygpt.app "$@"', __import__("sys").executable, *job],
        cwd=cut,
        env={**__import__("os").environ, "TINYGPT_CACHE": str(cache_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(cut / "sweep" / "0" / "tinygpt.log", "training:", 120)
    time.sleep(3)
    job_id = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # what a time limit sends
    _release_requeued_job(60)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    _, children = runs(cut)
    assert len(children) == 1, "the requeued job continued the same MLflow run"
    (child,) = children
    assert child.info.status == "FINISHED"
    log = (cut / "sweep" / "0" / "tinygpt.log").read_text()
    assert "resuming interrupted run" in log
    assert child.data.metrics["total_steps"] == 400
    assert child.data.metrics["final_val_loss"] == pytest.approx(
        expected.data.metrics["final_val_loss"], rel=1e-6
    )


def test_a_failing_job_fails_the_sweep_and_the_others_finish(slurm_cluster, tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m",
        *TINY,
        *SLURM,
        "optimizer.grad_clip=null",
        "optimizer.lr=1e-3,1e30",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode != 0
    assert "sweep FAILED: of 2 jobs, 1 failed or were killed" in proc.stderr
    parents, children = runs(tmp_path)
    assert parents[0].info.status == "FAILED"
    status = {c.data.params["optimizer.lr"]: c.info.status for c in children}
    assert status == {"0.001": "FINISHED", "1e+30": "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "diverged" in failed.data.tags["error"]


def test_an_impossible_request_is_rejected_not_left_pending(slurm_cluster, tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m",
        *TINY,
        *SLURM,
        "hydra.launcher.cpus_per_task=512",
        "seed=1",
        cwd=tmp_path,
        cache_dir=cache_dir,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SLURM rejects the job request" in proc.stderr
    assert "More processors requested than permitted" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_two_tasks_train_one_model_as_one_process_does(slurm_cluster, tmp_path, cache_dir):
    """tasks_per_node=2 (1 CPU each): the two SLURM tasks are the ranks of one job, one MLflow
    run, with the losses of the same job in one process."""
    from tests.test_distributed import RUN, curve

    single = tmp_path / "single"
    single.mkdir()
    proc = tinygpt_cli(*RUN, "hydra.run.dir=out", cwd=single, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    expected = curve(f"sqlite:///{single / 'mlflow.db'}")
    proc = tinygpt_cli(
        "-m",
        *RUN,
        *SLURM,
        f"hydra.launcher.partition={slurm_cluster}",
        "hydra.launcher.cpus_per_task=1",
        "hardware.devices=2",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        cache_dir=cache_dir,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parents, children = runs(tmp_path)
    assert len(parents) == 1 and len(children) == 1
    (run,) = children
    assert run.info.status == "FINISHED" and run.data.tags["world_size"] == "2"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx(expected, rel=1e-4)
    assert list((tmp_path / "sweep" / "0").glob("*.rank1.log"))
