"""One pre-training job: config -> data -> model -> MLflow run -> loop -> results.json."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from tinygpt import checkpoint, distributed, hardware
from tinygpt.accounting import Counts, value
from tinygpt.data.dataset import TokenData, prepare
from tinygpt.data.tokenizers import save_tokenizer
from tinygpt.errors import TinyGPTError
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.timing import clock
from tinygpt.tracking.job_run import JobRun, in_multirun, open_job_run, output_dir
from tinygpt.tracking.mlflow_run import Tracker, flatten, monitor_run
from tinygpt.tracking.sysinfo import slurm_logs
from tinygpt.train.branches import branch_runs, branch_summary, budgets, tokens_per_step
from tinygpt.train.compute import apply as apply_compute_budgets
from tinygpt.train.compute import meta_model, vocab_size
from tinygpt.train.loop import Interrupted, Paused, Trainer, strategy_of
from tinygpt.train.mfu import mfu
from tinygpt.validation import check as check_config

log = logging.getLogger("tinygpt")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def law_lr(cfg: DictConfig) -> float:
    """This model's peak LR from ``optimizer.lr_law``, its N counted as the law was fitted."""
    law = cfg.optimizer.lr_law
    n = Counts.of(meta_model(cfg.model, vocab_size(cfg))).parameters(law.parameters)
    lr = float(law.coefficient) * n ** -float(law.exponent)
    log.info("optimizer.lr = %.4g from optimizer.lr_law at N = %s (%s)", lr, f"{n:,}",
             value(law.parameters))  # fmt: skip
    return lr


def validate(cfg: DictConfig) -> None:
    GPTConfig.from_node(cfg.model, 1)  # the model's own checks, before the data is prepared
    tuned = cfg.optimizer.get("lr_by_width") or {}
    # Before anything is logged: the run records the LR it trains at.
    if cfg.model.d_model in tuned:
        cfg.optimizer.lr = float(tuned[cfg.model.d_model])
    elif cfg.optimizer.get("lr_law") is not None:
        cfg.optimizer.lr = law_lr(cfg)
    by_seed = cfg.training.get("budgets_by_seed") or {}
    if cfg.seed in by_seed:
        cfg.training.budgets = [int(b) for b in by_seed[cfg.seed]]
    if cfg.training.budgets:
        budgets(cfg)  # checks them: positive, distinct, branching after the warmup, WSD
        # The job's own run is the largest budget: record it as the run's token budget.
        with open_dict(cfg):
            cfg.training.tokens = max(int(b) for b in cfg.training.budgets)


def build_model(cfg: DictConfig, vocab_size: int) -> TinyGPT:
    return TinyGPT(GPTConfig.from_node(cfg.model, vocab_size))


class StopSignals:
    """Ctrl-C, SIGTERM and SIGUSR2 (SLURM's warning before a time limit or preemption) stop
    training at the end of the current step, never inside it: the trainer sees the flag, raises
    ``Interrupted``, and the job checkpoints before handing the signal on (submitit's handler
    requeues the job). Before training starts they interrupt at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.originals: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.originals = {s: signal.signal(s, self._hold) for s in self.SIGNALS}

    def _hold(self, signum: int, frame: Any) -> None:
        if self.trainer is None:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.trainer.stop_signal = signum

    def restore(self) -> None:
        for s, handler in self.originals.items():
            signal.signal(s, handler)

    def forward(self, signum: int) -> None:
        """Run the handler that was there before ours (submitit's requeue, for one)."""
        handler = self.originals.get(signum)
        if callable(handler):
            handler(signum, None)


def results_of(trainer: Trainer, data: TokenData, cfg: DictConfig) -> dict[str, Any]:
    s, model = trainer.state, trainer.model
    final = s.last_eval or trainer.evaluate_on(trainer.val_windows)
    test = trainer.evaluate_on(trainer.test_windows)
    return {
        "final_val_loss": final["loss"],
        "final_val_perplexity": final["perplexity"],
        "final_val_accuracy": final["accuracy"],
        "final_val_bpb": final["bpb"],
        "best_val_loss": min(s.best_val, final["loss"]),
        "test_loss": test["loss"],
        "total_steps": s.step,
        "tokens_seen": s.tokens_seen,
        # One pass over this many tokens: a planner keeps its budgets within it.
        "train_split_tokens": len(data.splits["train"]),
        # N and C under every convention (tinygpt/accounting.py): the analysis picks one
        **Counts.of(model).metrics(s.tokens_seen),
        "tokens_per_sec": s.tokens_seen / max(s.wall_seconds, 1e-9),
        "steady_tokens_per_sec": s.steady_tokens_per_sec,
        # PaLM's convention (tinygpt/train/mfu.py); None where the device's peak is unknown
        "mfu": mfu(model, s.steady_tokens_per_sec, trainer.peak_flops),
        "wall_seconds": s.wall_seconds,
        "tracking_seconds": trainer.tracker.seconds,
        **(branch_summary(trainer, test["loss"]) if trainer.budgets else {}),
    }


def record_timing(out: Path) -> None:
    """The job's wall time by phase, to the log and ``timing.json`` (benchmarks/main_job.py)."""
    summary = clock.summary()  # charges the open phase up to now
    log.info("time: %s", summary)
    timing = {"total_seconds": sum(clock.seconds.values()), "seconds": clock.seconds}
    (out / "timing.json").write_text(json.dumps(timing, indent=2))


def run(cfg: DictConfig, out_dir: Path | None = None) -> float:
    """Train one model as configured; return its final validation loss (for sweepers).

    ``out_dir`` defaults to Hydra's run directory; pass one to call this outside a Hydra app.
    """
    clock.reset("start-up")
    check_config(cfg)
    # IsoFLOP: this model's token budget(s) from compute budgets (token budget -> C).
    compute = apply_compute_budgets(cfg) if cfg.isoflop.budgets else {}
    validate(cfg)
    out = out_dir or output_dir()
    out.mkdir(parents=True, exist_ok=True)
    world = distributed.current()
    if world_size(cfg) > 1 and not world.enabled:
        hw = cfg.hardware
        distributed.check_world(
            world, hw.devices, hw.nodes, hw.strategy, "cpu", cfg.training.batch_size
        )
        return start_ranks(cfg, out)  # this process only launches the ranks and waits
    seed_everything(cfg.seed)
    runtime = hardware.resolve(cfg.hardware, world.local_rank)
    distributed.check_world(
        world,
        cfg.hardware.devices,
        cfg.hardware.nodes,
        cfg.hardware.strategy,
        runtime.device.type,
        cfg.training.batch_size,
    )
    if world.enabled:
        distributed.init(world)
        if not world.main:
            distributed.rank_log(out, world)
        log.info(
            "rank %d of %d (%s), pid %d", world.rank, world.size, cfg.hardware.strategy, os.getpid()
        )
    together = False  # whether every rank is known to be leaving at this same point
    try:
        result = _run(cfg, out, world, runtime, compute)
        together = True
        return result
    except Stopped:
        together = True  # the ranks agreed on the stop (any_rank) and checkpointed together
        raise
    except Exception as e:
        if world.enabled and not world.main:
            distributed.record_error(out, world, e)
        raise
    finally:
        if world.enabled:
            distributed.shutdown(together)


class Stopped(KeyboardInterrupt):
    """A stop signal every rank acted on at the same step (one checkpoint was written)."""


def world_size(cfg: DictConfig) -> int:
    return cfg.hardware.devices * cfg.hardware.nodes


def start_ranks(cfg: DictConfig, out: Path) -> float:
    """``tinygpt hardware.devices=N`` without a launcher: N ranks on this machine, one job."""
    if cfg.hardware.nodes > 1:
        raise TinyGPTError(
            f"hardware.nodes={cfg.hardware.nodes}: ranks on other machines need a launcher on "
            "each (torchrun --nnodes, or hydra/launcher=slurm_cpu|slurm_gpu)"
        )
    if in_multirun():
        raise TinyGPTError(
            "a sweep with hardware.devices > 1 runs each job's ranks as SLURM tasks: use "
            "hydra/launcher=slurm_cpu or slurm_gpu"
        )
    hardware.check_device(cfg.hardware)  # one line here, not one failure per rank
    log.info("starting %d ranks (torch.distributed.run) into %s", cfg.hardware.devices, out)
    try:
        distributed.spawn(cfg.hardware.devices, out, cfg.hardware.threads)
    except distributed.RanksFailed as e:
        raise TinyGPTError(f"the job failed on its ranks: {e}") from None
    results = out / "results.json"  # absent after a pause (training.stop_at)
    return json.loads(results.read_text())["final_val_loss"] if results.exists() else float("nan")


def system_metrics(
    cfg: DictConfig, world: distributed.World, tracker: Tracker, run_id: str | None, resumed: bool
):
    """MLflow's system metrics for the job's run: from rank 0, and in a job spanning several
    nodes from each node's first rank too, under ``system/node_<i>/``."""
    tracking = cfg.tracking
    if not tracking.system_metrics or not tracking.enabled or run_id is None:
        return lambda: None
    nodes = world.size // max(1, world.local_size)
    node_id = f"node_{world.rank // world.local_size}" if nodes > 1 else None
    if world.main:
        return tracker.monitor_system(tracking.system_metrics_interval, resumed, node_id)
    if nodes > 1 and world.local_rank == 0:
        return monitor_run(run_id, tracker.uri or tracking.uri, tracking.system_metrics_interval,
                           resumed, node_id)  # fmt: skip
    return lambda: None


def _run(
    cfg: DictConfig,
    out: Path,
    world: distributed.World,
    runtime: hardware.Runtime,
    compute: dict[int, float],
) -> float:
    found = checkpoint.load_newest(out) if cfg.training.resume and world.main else None
    resume_from, ckpt = found if found else (None, None)
    if cfg.training.resume and ckpt is None and world.main:
        damaged = checkpoint.candidates(out)
        if damaged and cfg.training.damaged_checkpoints.value == "fail":
            names = ", ".join(p.name for p in damaged)
            raise TinyGPTError(
                f"training.resume=true but every checkpoint in {out} is damaged ({names}): "
                "delete them to start over, or training.resume=false (or "
                "training.damaged_checkpoints=restart) to train from step 0"
            )
        why = "every checkpoint is damaged" if damaged else "no checkpoint"
        log.warning("training.resume=true but %s in %s: starting from scratch", why, out)

    tracking = cfg.tracking
    if world.main:
        opened = open_job_run(cfg, out, runtime.device, ckpt, resume_from)
    else:
        opened = JobRun(Tracker.disabled())
    # Rank 0 decides (skip, resume from which checkpoint); the others follow it.
    skipped, resume_path, run_id = distributed.broadcast(
        (opened.skipped is not None, opened.resume_path, opened.tracker.run_id)
    )
    if skipped:
        return opened.skipped.result("final_val_loss") if opened.skipped else float("nan")
    tracker, ckpt = opened.tracker, opened.resume
    if ckpt is None and resume_path is not None:
        ckpt = checkpoint.load(Path(resume_path))
    status, trainer = "FAILED", None
    stops = StopSignals()
    stop_monitor = system_metrics(cfg, world, tracker, run_id, resumed=ckpt is not None)
    try:
        if not world.main:
            distributed.broadcast(None)  # rank 0 writes the token cache first; then a cache hit
        data = prepare(cfg.data, cfg.model.context)
        if world.main:
            save_tokenizer(data.tokenizer, out / "tokenizer.json")
            distributed.broadcast(None)
        model = build_model(cfg, data.tokenizer.vocab_size).to(runtime.device)
        log.info(
            "model: %s parameters, %s non-embedding; data: %s (cache %s)",
            f"{model.num_parameters():,}",
            f"{model.num_non_embedding_parameters():,}",
            data.describe(),
            "hit" if data.cache_hit else "written",
        )
        trainer = Trainer(
            cfg, model, data, runtime, tracker, out, branch_runs(tracker, cfg, compute), world
        )
        tokens, split = trainer.total * tokens_per_step(cfg), len(data.splits["train"])
        if tokens > split and world.main:
            log.warning(
                "this run's %s tokens are %.2f passes over the training split (%s tokens): "
                "losses past one pass mix first and repeated data, which a scaling law does "
                "not model", f"{tokens:,}", tokens / split, f"{split:,}",
            )  # fmt: skip
        stops.trainer = trainer
        if ckpt is not None:
            trainer.restore(ckpt)
            # A retyped sweep finds the checkpoint through the interrupted run (logged there).
            where = resume_from or "the interrupted run's newest checkpoint"
            log.info("resumed from %s at step %d", where, trainer.state.step)
        else:
            tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            tracker.set_tags(
                {
                    "seed": cfg.seed,
                    "corpus_sha256": data.corpus_sha256,
                    "precision": runtime.precision,
                    "world_size": world.size,
                    "strategy": strategy_of(cfg.hardware.strategy) if world.enabled else "none",
                }
            )
            tracker.log_artifact(data.tokenizer_path, "tokenizer")
        clock.switch("training")
        trainer.fit()
        clock.switch("finish")
        results = results_of(trainer, data, cfg)
        if trainer.sharded:  # the logged model is whole: gathered from the shards to rank 0
            full, _ = trainer.full_state()
            if world.main:
                model = build_model(cfg, data.tokenizer.vocab_size)
                model.load_state_dict(full)
        if not world.main:
            status = "FINISHED"
            return results["final_val_loss"]
        (out / "results.json").write_text(json.dumps(results, indent=2))
        scalars = {
            k: v
            for k, v in results.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if trainer.budgets:
            scalars["branch_step"] = trainer.schedule.decay_start(trainer.total)
        if compute:
            scalars["compute_budget"] = compute[max(compute)]
        tracker.log_metrics(scalars, trainer.state.step)
        tracker.log_artifact(out / "results.json")
        if tracking.log_model:
            uri = tracker.log_model(model, out / "tokenizer.json", tracking.register_as)
            tracker.set_tags({"model_uri": uri})
        if tracking.log_checkpoints:
            for ckpt_path in sorted(out.glob("*.pt")):
                tracker.log_artifact(ckpt_path, "checkpoints")
        log.info("results: %s", json.dumps(results))
        status = "FINISHED"
        return results["final_val_loss"]
    except Paused as e:
        status = "KILLED"
        log.info("%s; continue with training.resume=true", e)
        return float("nan")
    except Interrupted as e:
        # The signal was held until the step ended, so the checkpoint is a consistent state.
        status = "KILLED"
        path = trainer.save(f"step_{trainer.state.step}.pt")
        log.warning("%s at step %d; checkpoint %s", e, trainer.state.step, path)
        stops.restore()
        stops.forward(e.signum)  # e.g. submitit's SIGUSR2 handler: requeue, then exit
        raise Stopped(str(e)) from None
    except KeyboardInterrupt:
        status = "KILLED"  # before training started: nothing to checkpoint
        raise
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        if world.enabled and world.main:
            # Another rank's own error explains this one (often "Connection closed by peer").
            error = "\n".join([*distributed.errors_of_others(out, world), error])
        tracker.set_tags({"error": error[:5000]})
        raise
    finally:
        stop_monitor()
        stops.restore()
        # The Hydra directory and the log file go with the run whatever its fate.
        tracker.log_artifacts(out / ".hydra", "hydra")
        for log_file in [*out.glob("*.log"), *slurm_logs()]:
            tracker.log_artifact(log_file)
        tracker.close(status)
        if status == "FINISHED" and tracker.enabled and not in_multirun():
            print(f"MLflow run {tracker.run_id}: {tracker.browse_hint()}")
        if world.main:
            record_timing(out)
