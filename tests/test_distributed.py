"""One model on many processes (gloo on CPU): the same losses and gradients as one process,
disjoint windows, resume across world sizes, one stop decision, a failing rank's own error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mlflow.tracking import MlflowClient

from tests.conftest import tinygpt_cli
from tinygpt import distributed
from tinygpt.data.dataset import BatchSampler, DeviceBatches
from tinygpt.errors import TinyGPTError
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train.loop import gradient_sync, wrap

# Dropout 0 (it would draw different masks per rank), fp32, gloo; one thread per rank.
RUN = [
    "model=d32",
    "model.n_layers=2",
    "model.context=32",
    "model.dropout=0.0",
    "hardware=cpu",
    "training.batch_size=8",
    "optimizer.grad_accum=2",
    "training.max_steps=100",
    "training.eval_interval=50",
    "training.eval_batches=2",
    "training.log_interval=1",
    "training.save_interval=1000",
    "tracking.log_model=false",
    "tracking.system_metrics=false",
]


def _step0(rank: int, world: int, port: int, strategy: str, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = GPTConfig(vocab_size=50, context=16, d_model=32, n_layers=2, n_heads=4, dropout=0.0)
        torch.manual_seed(0)
        reference = TinyGPT(cfg)
        torch.manual_seed(0)
        model = TinyGPT(cfg)
        tokens = np.random.default_rng(0).integers(0, 50, 5000).astype(np.uint16)
        # The single process: its whole batch, one backward.
        single = DeviceBatches(BatchSampler(tokens, 8, 16, seed=3), torch.device("cpu"))
        full = single.next()
        _, loss = reference(full[:, :-1], full[:, 1:])
        loss.backward()
        # This rank: its share of the same draw, gradients averaged over the ranks.
        mine = DeviceBatches(BatchSampler(tokens, 8, 16, seed=3), torch.device("cpu"), rank, world)
        part = mine.next()
        wrapped = wrap(model, strategy, distributed.World(rank, rank, world, world), part.device)
        with gradient_sync(wrapped, True):
            _, loss = wrapped(part[:, :-1], part[:, 1:])
            loss.backward()
        worst = 0.0
        for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
            grad = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            worst = max(worst, (grad - q.grad).abs().max().item())
            assert grad.shape == q.grad.shape, name
        gathered = [None] * world
        dist.all_gather_object(gathered, part.numpy().tolist())
        if rank == 0:
            out["worst"] = worst
            out["windows"] = gathered
            out["full"] = full.numpy().tolist()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_step0_gradients_and_windows_are_the_single_process_ones(strategy):
    with mp.Manager() as manager:
        out = manager.dict()
        port = 29500 + (os.getpid() % 2000)
        mp.spawn(_step0, args=(2, port, strategy, out), nprocs=2, join=True)
        assert out["worst"] < 1e-5
        shares = [np.array(w) for w in out["windows"]]
        full = np.array(out["full"])
        assert len(shares[0]) == len(shares[1]) == 4
        # Disjoint, and together the single run's batch in its order.
        np.testing.assert_array_equal(np.concatenate(shares), full)


def curve(uri: str) -> list[float]:
    client = MlflowClient(uri)
    runs = client.search_runs(client.search_experiments()[0].experiment_id)
    (run,) = [r for r in runs if r.data.tags.get("sweep") != "true"]
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train_loss"),
                                    key=lambda m: m.step)]  # fmt: skip


def torchrun(*args: str, cwd: Path, cache_dir: Path, ranks: int = 2, **kw):
    env = {**os.environ, "TINYGPT_CACHE": str(cache_dir), "HYDRA_FULL_ERROR": "0", **kw}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={ranks}", "-m", "tinygpt.app", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def single(tmp_path_factory, cache_dir) -> tuple[list[float], float]:
    """The one-process run every distributed one is compared with."""
    cwd = tmp_path_factory.mktemp("single")
    proc = tinygpt_cli(*RUN, "hydra.run.dir=out", cwd=cwd, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    final = json.loads((cwd / "out" / "results.json").read_text())["final_val_loss"]
    return curve(f"sqlite:///{cwd / 'mlflow.db'}"), final


@pytest.mark.slow
@pytest.mark.parametrize("way", ["torchrun-ddp", "spawned-fsdp"])
def test_two_ranks_train_the_single_process_model(tmp_path, cache_dir, single, way):
    """torchrun (DDP) and `tinygpt hardware.devices=2` (its own ranks, FSDP2): one job, one
    MLflow run, a log per rank, every step's loss within 1e-4 of one process's."""
    args = [*RUN, "hardware.devices=2", "hydra.run.dir=out"]
    if way == "torchrun-ddp":
        proc = torchrun(*args, "hardware.strategy=ddp", cwd=tmp_path, cache_dir=cache_dir)
    else:
        proc = tinygpt_cli(*args, "hardware.strategy=fsdp", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = curve(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(losses) == 100
    np.testing.assert_allclose(losses, single[0], rtol=1e-4)
    final = json.loads((tmp_path / "out" / "results.json").read_text())["final_val_loss"]
    assert final == pytest.approx(single[1], rel=1e-4)
    assert (tmp_path / "out" / "tinygpt.rank1.log").read_text().count("rank 1 of 2") == 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(client.search_experiments()[0].experiment_id)
    assert run.data.tags["world_size"] == "2"
    assert run.data.tags["strategy"] == way.split("-")[1]
    assert (tmp_path / "out" / "final.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_a_run_resumes_at_another_world_size(tmp_path, cache_dir, single, first, then):
    def leg(ranks: int, *extra: str):
        args = [*RUN, f"hardware.devices={ranks}", "hydra.run.dir=out", *extra]
        return tinygpt_cli(*args, cwd=tmp_path, cache_dir=cache_dir)

    proc = leg(first, "training.stop_at=40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "step_40.pt").exists()
    proc = leg(then, "training.resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((tmp_path / "out" / "results.json").read_text())["final_val_loss"]
    assert final == pytest.approx(single[1], rel=1e-4)


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_both_at_one_step(tmp_path, cache_dir, single):
    args = [*RUN, "hardware.devices=2", "hydra.run.dir=out", "training.max_steps=100"]
    env = {**os.environ, "TINYGPT_CACHE": str(cache_dir), "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.Popen(
        [*cmd, "-m", "tinygpt.app", *args, "training.log_interval=1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log1 = tmp_path / "out" / "tinygpt.rank1.log"
    deadline = time.monotonic() + 120
    while not (log1.exists() and "training: steps" in log1.read_text()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = int(log1.read_text().split("pid ")[1].split()[0])
    time.sleep(1.0)
    os.kill(pid, signal.SIGTERM)  # rank 1 alone
    proc.communicate(timeout=120)
    steps = [int(p.stem.split("_")[1]) for p in (tmp_path / "out").glob("step_*.pt")]
    assert len(steps) == 1 and 0 < steps[0] < 100  # one checkpoint, the step both stopped at
    rank0 = (tmp_path / "out" / "tinygpt.log").read_text()
    assert f"at step {steps[0]}" in rank0 and f"at step {steps[0]}" in log1.read_text()
    resumed = tinygpt_cli(*args, "training.resume=true", cwd=tmp_path, cache_dir=cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((tmp_path / "out" / "results.json").read_text())["final_val_loss"]
    assert final == pytest.approx(single[1], rel=1e-4)


FAIL_ON_RANK_1 = """
import os
if os.environ.get("RANK") == "1":
    import tinygpt.train.loop as loop
    original = loop.Trainer._train_step
    def failing(self):
        if self.state.step == 3:
            raise RuntimeError("rank 1 cannot go on: injected at step 3")
        return original(self)
    loop.Trainer._train_step = failing
"""


@pytest.mark.slow
def test_a_failing_rank_fails_the_job_with_its_own_error(tmp_path, cache_dir):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAIL_ON_RANK_1)
    proc = torchrun(
        *RUN, "hardware.devices=2", "hydra.run.dir=out", cwd=tmp_path, cache_dir=cache_dir,
        PYTHONPATH=str(hook),
    )  # fmt: skip
    assert proc.returncode != 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(client.search_experiments()[0].experiment_id)
    assert run.info.status == "FAILED"
    assert "rank 1 cannot go on: injected at step 3" in run.data.tags["error"]
    assert "rank 1 cannot go on" in (tmp_path / "out" / "rank1.error").read_text()


@pytest.mark.slow
def test_a_failing_self_launched_rank_is_one_line_with_the_log_named(
    tmp_path, cache_dir, monkeypatch
):
    """`tinygpt hardware.devices=2` whose rank 1 fails: the user reads rank 1's own error in one
    line, not torch.distributed's elastic dump, which is in the named file."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAIL_ON_RANK_1)
    monkeypatch.setenv("PYTHONPATH", str(hook))  # the ranks inherit the launcher's environment
    proc = tinygpt_cli(*RUN, "hardware.devices=2", "hydra.run.dir=out", cwd=tmp_path,
                       cache_dir=cache_dir)  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tinygpt: error: the job failed on its ranks: rank 1: RuntimeError: ")
    assert "rank 1 cannot go on: injected at step 3" in last and "ranks.stderr.log" in last
    assert "ChildFailedError" not in proc.stderr and "Traceback" not in proc.stderr
    assert "ChildFailedError" in (tmp_path / "out" / "ranks.stderr.log").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hardware.devices=3"], "3 ranks cannot split training.batch_size=8"),
        (["hardware.devices=2", "hardware.nodes=2"], "hardware.nodes=2: ranks on other machines"),
        (["hardware.devices=2", "hardware.strategy=zero"], "hardware.strategy='zero'"),
        (["hardware.devices=2", "seal=lora"], "seal=lora (adaptation) runs on one process"),
    ],
)
def test_bad_distributed_settings_are_one_line(tmp_path, cache_dir, args, message):
    proc = tinygpt_cli(*RUN, *args, cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tinygpt: error: ") and message in last


def test_a_sweep_over_devices_and_a_world_that_disagrees_are_refused(tmp_path, cache_dir):
    proc = tinygpt_cli("-m", *RUN, "hardware.devices=1,2", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 2 and "one SLURM array has one resource shape" in proc.stderr
    proc = torchrun(*RUN, "hardware.devices=4", cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode != 0 and "the launcher started 2" in proc.stderr


def test_fsdp_needs_cpu_or_cuda():
    with pytest.raises(TinyGPTError, match="hardware.strategy=fsdp needs cuda"):
        distributed.check_world(distributed.World(), 2, 1, "fsdp", "mps", 8)


BRANCHED = [
    "optimizer/schedule=wsd",
    "optimizer.schedule.warmup_steps=4",
    "training.max_steps=null",
    "training.budgets=[20480,40960,61440]",
    "model.parametrization=mup",
    "model.base_width=16",
]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_branches_and_mup_under_two_ranks(tmp_path, cache_dir, strategy):
    """WSD cooldown branches (snapshot and restore of a sharded state under FSDP) and μP's
    per-group LRs give each budget the loss one process gives it."""
    losses = {}
    for ranks in (1, 2):
        args = [*RUN, *BRANCHED, f"hardware.devices={ranks}", f"hardware.strategy={strategy}"]
        proc = tinygpt_cli(
            *args, f"hydra.run.dir=out{ranks}", "tracking.enabled=false", cwd=tmp_path,
            cache_dir=cache_dir,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads((tmp_path / f"out{ranks}" / "results.json").read_text())
        losses[ranks] = [b["final_val_loss"] for b in results["budgets"]]
    assert len(losses[2]) == 3
    np.testing.assert_allclose(losses[2], losses[1], rtol=1e-4)


def test_each_node_logs_its_system_metrics_into_the_one_run(monkeypatch):
    """In a 2-node job, the first rank of node 1 monitors its node into rank 0's run."""
    from omegaconf import OmegaConf

    from tinygpt.tracking.mlflow_run import Tracker
    from tinygpt.train import job

    started = []
    monkeypatch.setattr(job, "monitor_run", lambda *a: started.append(a) or (lambda: None))
    cfg = OmegaConf.create(
        {"tracking": {"enabled": True, "system_metrics": True, "system_metrics_interval": 5.0,
                      "uri": "sqlite:///x.db"}}
    )  # fmt: skip
    off = Tracker.disabled()
    job.system_metrics(cfg, distributed.World(2, 0, 4, 2), off, "run-1", False)
    job.system_metrics(cfg, distributed.World(3, 1, 4, 2), off, "run-1", False)
    assert started == [("run-1", "sqlite:///x.db", 5.0, False, "node_1")]
