"""The `tinygpt` command end to end, in subprocesses, as a user runs it."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli

pytestmark = pytest.mark.slow


def runs_in(cwd: Path, experiment: str = "tinygpt"):
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_tiny_run_is_a_finished_mlflow_run_with_metrics_and_results(tmp_path, cache_dir):
    proc = tinygpt_cli(
        *TINY, "tracking.system_metrics_interval=0.2", cwd=tmp_path, cache_dir=cache_dir
    )
    assert proc.returncode == 0, proc.stderr
    results = list(tmp_path.glob("outputs/*/*/results.json"))
    assert len(results) == 1
    res = json.loads(results[0].read_text())
    client, runs = runs_in(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.d_model"] == "32" and run.data.params["seed"] == "42"
    assert run.data.metrics["final_val_loss"] == pytest.approx(res["final_val_loss"])
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [5, 10, 15, 20]
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    tags = run.data.tags
    assert len(tags["corpus_sha256"]) == 64 and tags["device"] == "cpu"
    assert {"git_commit", "git_dirty", "torch_version", "seed"} <= tags.keys()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "tokenizer", "hydra"} <= artifacts
    assert "system/cpu_utilization_percentage" in run.data.metrics
    assert "system/system_memory_usage_megabytes" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_bpb")) == 2
    # How to open it: the UI command for this store and the run's own page.
    exp = run.info.experiment_id
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in proc.stdout
    page = f"#/experiments/{exp}/runs/{run.info.run_id}?workflowType=machine_learning"
    assert f"http://127.0.0.1:5000/{page}" in proc.stdout


def test_two_seed_multirun_gives_two_runs(tmp_path, cache_dir):
    # overrides on both sides of -m, as in `tinygpt model=d256 -m seed=42,43,44`
    proc = tinygpt_cli(*TINY[:3], "-m", *TINY[3:], "seed=1,2", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    _, runs = runs_in(tmp_path)
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "seed=1,2" in parents[0].data.tags["sweep_overrides"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2"]
    assert {c.info.status for c in children} == {"FINISHED"}
    exp = parents[0].info.experiment_id
    assert f"#/experiments/{exp}/runs?workflowType=machine_learning" in proc.stdout


def test_diverging_run_is_failed_in_mlflow_and_exits_non_zero(tmp_path, cache_dir):
    proc = tinygpt_cli(
        *TINY, "optimizer.lr=1e30", "optimizer.grad_clip=null", cwd=tmp_path, cache_dir=cache_dir
    )
    assert proc.returncode == 2
    assert "training diverged" in proc.stderr and "Traceback" not in proc.stderr
    _, runs = runs_in(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "diverged" in runs[0].data.tags["error"]


@pytest.mark.parametrize("tracking", ["true", "false"])
def test_a_failing_job_of_a_sweep_is_one_line_and_the_others_finish(tmp_path, cache_dir, tracking):
    proc = tinygpt_cli(
        "-m",
        *TINY,
        "optimizer.grad_clip=null",
        "optimizer.lr=1e-3,1e30",
        f"tracking.enabled={tracking}",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("tinygpt: error in job")]
    assert "optimizer.lr=1e+30" in line and "training diverged" in line
    assert "1 job(s) of the sweep stopped with an error" in proc.stderr
    assert (tmp_path / "sweep" / "0" / "results.json").exists()  # the good job finished
    if tracking == "true":
        assert "sweep FAILED: of 2 jobs, 1 failed or were killed" in proc.stderr
        _, runs = runs_in(tmp_path)
        status = {r.data.params.get("optimizer.lr"): r.info.status for r in runs}
        assert status == {None: "FAILED", "0.001": "FINISHED", "1e+30": "FAILED"}


def test_unreachable_tracking_server_fails_before_training(tmp_path, cache_dir):
    proc = tinygpt_cli(*TINY, "tracking.uri=http://127.0.0.1:9", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("outputs/*/*/*.pt"))


def test_wheel_ships_conf_and_runs_outside_the_checkout(tmp_path, cache_dir):
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        check=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("tinygpt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "tinygpt/conf/config.yaml" in names and "tinygpt/conf/model/d512.yaml" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_path = {"PYTHONPATH": str(target)}
    import os

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tinygpt.app as a; print(a.config_dir()); a.main()",
            *TINY,
            "training.max_steps=4",
        ],
        cwd=elsewhere,
        env={**os.environ, **env_path, "TINYGPT_CACHE": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(target / "tinygpt" / "conf")
    assert list(elsewhere.glob("outputs/*/*/results.json"))
