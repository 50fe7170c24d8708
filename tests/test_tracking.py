"""MLflow done right: parallel jobs, resumable sweeps, kills, logged models, bad stores."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli
from tinygpt import checkpoint

pytestmark = pytest.mark.slow


def store(cwd: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    return client, client.get_experiment_by_name("tinygpt").experiment_id


def sweep_runs(cwd: Path):
    client, exp = store(cwd)
    runs = client.search_runs([exp], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    return client, parents, [r for r in runs if r.data.tags.get("sweep") != "true"]


def test_joblib_sweep_of_8_jobs_4_at_a_time_loses_nothing(tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m",
        *TINY,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "seed=1,2,3,4,5,6,7,8",
        "tracking.log_model=false",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 8
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    for c in children:
        history = client.get_metric_history(c.info.run_id, "train_loss")
        assert [m.step for m in history] == [5, 10, 15, 20]
        assert len(client.get_metric_history(c.info.run_id, "val_loss")) == 2


def test_rerunning_an_interrupted_sweep_resumes_and_skips(tmp_path, cache_dir):
    args = ["-m", *TINY, "training.max_steps=40", "seed=1,2", "tracking.log_model=false"]
    whole = tmp_path / "whole"
    whole.mkdir()
    assert tinygpt_cli(*args, cwd=whole, cache_dir=cache_dir).returncode == 0
    _, _, reference = sweep_runs(whole)
    expected = {c.data.params["seed"]: c.data.metrics["final_val_loss"] for c in reference}

    chunked = tmp_path / "chunked"
    chunked.mkdir()
    first = tinygpt_cli(*args, "training.stop_at=20", cwd=chunked, cache_dir=cache_dir)
    assert first.returncode == 0, first.stderr
    _, _, paused = sweep_runs(chunked)
    assert {c.info.status for c in paused} == {"KILLED"}

    again = tinygpt_cli(*args, cwd=chunked, cache_dir=cache_dir)  # the same command again
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("resuming interrupted run") == 2
    _, parents, children = sweep_runs(chunked)
    assert len(children) == 2, "resumed into the same runs, no new ones"
    assert {c.info.status for c in children} == {"FINISHED"}
    for c in children:
        assert c.data.metrics["final_val_loss"] == pytest.approx(expected[c.data.params["seed"]])
        assert c.data.metrics["total_steps"] == 40

    third = tinygpt_cli(*args, cwd=chunked, cache_dir=cache_dir)
    assert third.returncode == 0 and third.stdout.count("skipped: run") == 2
    _, parents, children = sweep_runs(chunked)
    assert len(children) == 2 and len(parents) == 3


def test_sigterm_gives_a_killed_run_and_a_usable_checkpoint(tmp_path, cache_dir):
    env = {**os.environ, "TINYGPT_CACHE": str(cache_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the store is ./mlflow.db of the job's cwd
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinygpt.app",
            *TINY,
            "training.max_steps=100000",
            "training.log_interval=1",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_file, deadline = run_dir / "tinygpt.log", time.time() + 120
    # Once training has started (a loaded machine can take seconds to get there from "model:").
    while time.time() < deadline and not (
        log_file.exists() and "training:" in log_file.read_text()
    ):
        time.sleep(0.3)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    client, exp = store(tmp_path)
    (run,) = client.search_runs([exp])
    assert run.info.status == "KILLED"
    ckpt_path = checkpoint.newest(run_dir)
    assert ckpt_path is not None and ckpt_path.name.startswith("step_")
    ckpt = checkpoint.load(ckpt_path)
    assert ckpt["step"] > 0 and ckpt["mlflow_run_id"] == run.info.run_id
    more = [f"training.max_steps={ckpt['step'] + 5}", "training.resume=true"]
    resumed = tinygpt_cli(
        *TINY, *more, f"hydra.run.dir={run_dir}", cwd=tmp_path, cache_dir=cache_dir
    )
    assert resumed.returncode == 0, resumed.stderr
    (run,) = client.search_runs([exp])
    assert run.info.status == "FINISHED"
    assert json.loads((run_dir / "results.json").read_text())["total_steps"] == ckpt["step"] + 5


def test_final_model_is_logged_in_mlflow_format_with_hydra_files(tmp_path, cache_dir, monkeypatch):
    proc = tinygpt_cli(*TINY, cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    client, exp = store(tmp_path)
    (run,) = client.search_runs([exp])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    mlflow.set_tracking_uri(None)
    out = model.predict(pd.DataFrame({"prompt": ["And God said"]}), params={"max_new_tokens": 5})
    assert out["text"][0].startswith("And God said") and len(out["completion"][0]) == 5
    hydra_files = {a.path for a in client.list_artifacts(run.info.run_id, "hydra")}
    assert {"hydra/config.yaml", "hydra/overrides.yaml", "hydra/hydra.yaml"} <= hydra_files
    assert "tinygpt.log" in {a.path for a in client.list_artifacts(run.info.run_id)}
    tags = run.data.tags
    assert {
        "host",
        "device_name",
        "cpu_count",
        "torch_version",
        "cuda_version",
        "git_commit",
        "git_dirty",
        "config_hash",
    } <= tags.keys()
    # Enum settings are logged by value, so `params.hardware.attention = 'auto'` filters work.
    assert run.data.params["hardware.attention"] == "auto"
    assert run.data.params["hardware.device"] == "auto"


def test_a_foreign_store_file_is_one_clear_message(tmp_path, cache_dir):
    (tmp_path / "notes.db").write_text("not a database")
    proc = tinygpt_cli(
        *TINY, f"tracking.uri=sqlite:///{tmp_path / 'notes.db'}", cwd=tmp_path, cache_dir=cache_dir
    )
    assert proc.returncode == 2
    assert "cannot open the MLflow store" in proc.stderr and "Traceback" not in proc.stderr
