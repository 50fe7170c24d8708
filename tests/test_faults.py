"""Fault injection: a sweep killed hard, a kill during a checkpoint write, many writers on one
sqlite store. Whatever happens, retyping the command finishes every job once and loses nothing."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import TINY
from tinygpt import checkpoint
from tinygpt.train.job import run

pytestmark = pytest.mark.slow

SWEEP = [
    *TINY[:-4],
    "training.max_steps=400",
    "training.save_interval=50",
    "training.eval_interval=100",
    "training.eval_batches=2",
    "training.log_interval=10",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=4",
    "seed=1,2,3,4",
]


def sweep(cwd: Path, cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "TINYGPT_CACHE": str(cache_dir), "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tinygpt.app", "-m", *SWEEP],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_sweep_killed_hard_finishes_every_job_once_when_retyped(tmp_path, cache_dir):
    first = sweep(tmp_path, cache_dir)
    deadline = time.monotonic() + 240
    # Kill -9 the launcher and its 4 workers once every job has checkpointed mid-run.
    while len(list(tmp_path.glob("multirun/*/*/*/step_*.pt"))) < 4:
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the sweep never checkpointed"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tinygpt")
    before = client.search_runs([exp.experiment_id])
    assert any(r.info.status == "RUNNING" for r in before)  # what kill -9 leaves behind

    second = sweep(tmp_path, cache_dir)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    jobs = [r for r in runs if r.data.tags.get("sweep") != "true"]
    finished = defaultdict(list)
    for r in jobs:
        if r.info.status == "FINISHED":
            finished[r.data.tags["config_hash"]].append(r)
    assert sorted(len(v) for v in finished.values()) == [1, 1, 1, 1]
    for (only,) in finished.values():
        history = client.get_metric_history(only.info.run_id, "train_loss")
        by_step = defaultdict(set)
        for m in history:
            by_step[m.step].add(m.value)
        # Every logged step is there; steps logged again after the resume hold the same value.
        assert sorted(by_step) == list(range(10, 401, 10))
        assert all(len(values) == 1 for values in by_step.values())
        assert only.data.metrics["total_steps"] == 400


@pytest.mark.parametrize("fault", ["sigterm", "kill"])
def test_a_signal_during_a_checkpoint_write_resumes_to_the_uninterrupted_loss(
    make_cfg, tmp_path, monkeypatch, fault
):
    """SIGTERM arriving mid-write is held until the step ends, then the job checkpoints and stops;
    a hard kill mid-write leaves only a torn temporary file beside the whole checkpoints."""
    steps = ["training.max_steps=40", "training.save_interval=10", "training.eval_interval=40"]
    full = run(make_cfg(*steps), out_dir=tmp_path / "full")
    writes = {"n": 0}
    real_save = torch.save

    def faulty_save(obj, f, *args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 2:  # step_20.pt, while it is being written
            if fault == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                return real_save(obj, f, *args, **kwargs)
            Path(f).write_bytes(b"PK\x03\x04 half a zip")
            raise SystemExit("killed while writing")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", faulty_save)
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        run(make_cfg(*steps), out_dir=tmp_path / "cut")
    monkeypatch.setattr(torch, "save", real_save)
    out = tmp_path / "cut"
    newest, ckpt = checkpoint.load_newest(out)
    if fault == "sigterm":  # the write finished; the job stopped right after, at that step
        assert newest.name == "step_20.pt" and ckpt["step"] == 20
    else:
        assert newest.name == "step_10.pt" and (out / "step_20.pt.tmp").exists()
        assert not (out / "step_20.pt").exists()
    resumed = run(make_cfg(*steps, "training.resume=true"), out_dir=out)
    assert resumed == full
    assert json.loads((out / "results.json").read_text())["total_steps"] == 40


def test_eight_writers_and_a_reader_on_one_sqlite_store_lose_nothing(tmp_path):
    from tinygpt.scaling.table.runs import from_mlflow
    from tinygpt.tracking.mlflow_run import Store, Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = Tracker.start(Store.connect(uri, "tinygpt"), "sweep", {"sweep": "true"})
    script = (
        "import sys\n"
        "from tinygpt.tracking.mlflow_run import Store, Tracker\n"
        "uri, parent, i = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "t = Tracker.start(Store.connect(uri, 'tinygpt'), f'w{i}', {}, parent_run_id=parent)\n"
        "t.log_params({'seed': i, 'model.d_model': 16 * (i + 1), 'model.context': 32, "
        "'training.batch_size': 8, 'optimizer.grad_accum': 1})\n"
        "for step in range(1, 201):\n"
        "    t.log_metrics({'train_loss': 1.0 / step}, step)\n"
        "    if step % 20 == 0:\n"
        "        t.flush()\n"
        "t.log_metrics({'final_val_loss': 2 + 1 / (i + 1), 'non_embedding_parameters': "
        "1000 * (i + 1), 'parameters': 3000 * (i + 1), 'tokens_seen': 1e5, "
        "'flops_exact': 9e8 * (i + 1), 'flops_per_token_exact': 9000 * (i + 1)}, 200)\n"
        "t.close('FINISHED')\n"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, uri, parent.run_id, str(i)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    errors: list[str] = []

    def read_while_writing() -> None:
        while any(w.poll() is None for w in writers):
            try:
                from_mlflow(uri, sweep=parent.run_id)
            except Exception as e:  # "no runs" before any writer started is fine
                if "locked" in str(e).lower():
                    errors.append(str(e))
            time.sleep(0.05)

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    codes = [w.wait(timeout=300) for w in writers]
    reader.join()
    stderr = "".join(w.stderr.read() for w in writers)
    assert codes == [0] * 8 and "locked" not in stderr, stderr
    assert errors == []
    table = from_mlflow(uri, sweep=parent.run_id)
    assert len(table) == 8
    client = MlflowClient(tracking_uri=uri)
    for run_id in table["run_id"]:
        assert len(client.get_metric_history(run_id, "train_loss")) == 200
