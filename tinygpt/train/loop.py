"""The training loop: accumulation, clipping, schedule, evaluation, checkpoints, metrics, and
cooldown branches.

The loss is read back from the device only at log intervals, so the loop never waits on the
accelerator between steps. With ``training.budgets`` and a WSD schedule the loop trains one
constant-LR trunk to the largest budget; at each smaller budget's branch point it runs that
budget's decay from the trunk's state, evaluates, records, and puts the trunk back exactly.
"""

from __future__ import annotations

import copy
import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tinygpt import distributed
from tinygpt.data.dataset import EVAL_SEED, BatchSampler, DeviceBatches, TokenData
from tinygpt.errors import TinyGPTError
from tinygpt.hardware import Runtime
from tinygpt.model import TinyGPT
from tinygpt.timing import clock
from tinygpt.tracking.mlflow_run import Tracker
from tinygpt.train import checkpoint
from tinygpt.train.mfu import device_peak, mfu
from tinygpt.train.optim import build_optimizer, build_schedule, build_scheduler
from tinygpt.train.schedules import WSD

log = logging.getLogger("tinygpt")


class Interrupted(Exception):
    """A stop signal arrived; raised between steps so the state is consistent."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class Paused(Exception):
    """``training.stop_at`` reached: the run is checkpointed and can be resumed."""


def tokens_per_step(cfg: DictConfig) -> int:
    return cfg.training.batch_size * cfg.model.context * cfg.optimizer.grad_accum


def total_steps(cfg: DictConfig) -> int:
    training = cfg.training
    if training.budgets:
        return max(b.steps for b in budgets(cfg))
    if training.max_steps is not None:
        return int(training.max_steps)
    if training.tokens is None:
        raise TinyGPTError("set a run length: training.tokens=<budget> or training.max_steps=<n>")
    return max(1, math.ceil(training.tokens / tokens_per_step(cfg)))


def plan(tokens: int, per_step: int, schedule: WSD) -> tuple[int, int]:
    """A token budget's steps and branch point; a TinyGPTError where it cannot branch."""
    if tokens < 1:
        raise TinyGPTError(f"training.budgets: {tokens} is not a positive token count")
    steps = max(1, math.ceil(tokens / per_step))
    start = schedule.decay_start(steps)
    if start < schedule.warmup_steps:
        raise TinyGPTError(
            f"training.budgets: the budget of {tokens:,} tokens ({steps} steps) would branch "
            f"at step {start}, inside the warmup (optimizer.schedule.warmup_steps="
            f"{schedule.warmup_steps}): raise the budget or lower the warmup"
        )
    return steps, start


@dataclass(frozen=True)
class Budget:
    """One token budget of a branched run: its length and where its cooldown leaves the trunk."""

    tokens: int  # as asked for
    steps: int
    start: int  # the branch point: the first step of this budget's decay

    def key(self) -> str:
        return str(self.tokens)


def budgets(cfg: DictConfig) -> list[Budget]:
    """``training.budgets`` as steps and branch points, smallest first (the last is the trunk)."""
    training = cfg.training
    if not training.budgets:
        return []
    schedule = build_schedule(cfg.optimizer)
    if not isinstance(schedule, WSD):
        raise TinyGPTError(
            "training.budgets needs a schedule whose trunk holds the LR constant: add "
            "optimizer/schedule=wsd"
        )
    if training.max_steps is not None:
        raise TinyGPTError("training.budgets sets the run length: drop training.max_steps")
    per_step = tokens_per_step(cfg)
    out = []
    for tokens in sorted({int(b) for b in training.budgets}):
        steps, start = plan(tokens, per_step, schedule)
        if out and steps == out[-1].steps:
            raise TinyGPTError(
                f"training.budgets: {out[-1].tokens:,} and {tokens:,} tokens are both {steps} "
                f"steps of {per_step:,} tokens: make them differ by at least one step"
            )
        out.append(Budget(tokens, steps, start))
    return out


@dataclass
class LoopState:
    step: int = 0
    tokens_seen: int = 0
    best_val: float = float("inf")
    wall_seconds: float = 0.0
    # Throughput after the first log window (warm-up and compilation excluded).
    steady_tokens_per_sec: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    # Cooldown branches: time and tokens spent in them, and what each measured.
    branch_seconds: float = 0.0
    branch_tokens: int = 0
    branches: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    runtime: Runtime,
    token_bytes: torch.Tensor | None = None,
) -> dict[str, float]:
    """Mean next-token loss and top-1 accuracy over a fixed set of windows, and, given the bytes
    each token id spells, bits per byte: the summed loss in bits over the bytes the targets spell
    (tokens of 0 bytes, like end-of-text, left out of both), which compares any two tokenizers."""
    model.eval()
    # Sums, not means: under several ranks each evaluates every world-size-th window and the
    # sums are added over the ranks (nanochat's loss_eval does the same with nats and bytes).
    world = distributed.group_world()
    windows = windows[world.rank :: world.size]
    batch_size = max(1, batch_size // world.size)
    loss_sum = torch.zeros((), device=runtime.device, dtype=torch.float64)
    correct = torch.zeros((), device=runtime.device, dtype=torch.float64)
    nats = torch.zeros((), device=runtime.device, dtype=torch.float64)
    n_bytes = torch.zeros((), device=runtime.device, dtype=torch.float64)
    if token_bytes is not None:
        token_bytes = token_bytes.to(runtime.device)
    n = 0
    for chunk in windows.split(batch_size):
        chunk = chunk.to(runtime.device, non_blocking=True)
        x, y = chunk[:, :-1], chunk[:, 1:]
        with runtime.autocast():
            logits, loss = model(x, y)
        loss_sum += loss.double() * y.numel()
        correct += (logits.argmax(-1) == y).sum()
        n += y.numel()
        if token_bytes is not None:
            per_token = F.cross_entropy(
                logits.flatten(0, 1).float(), y.reshape(-1), reduction="none"
            )
            b = token_bytes[y.reshape(-1)]
            nats += (per_token * (b > 0)).sum().double()
            n_bytes += b.sum().double()
    model.train()
    sums = torch.stack([loss_sum, correct, nats, n_bytes, torch.tensor(float(n))]).cpu()
    loss_sum, correct, nats, n_bytes, n = distributed.all_sum(sums).tolist()
    loss = loss_sum / n
    out = {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "accuracy": correct / n,
    }
    if token_bytes is not None:
        out["bpb"] = nats / (math.log(2) * max(n_bytes, 1.0))
    return out


def fixed_windows(tokens: np.ndarray, cfg: DictConfig) -> torch.Tensor:
    sampler = BatchSampler(tokens, cfg.training.batch_size, cfg.model.context, EVAL_SEED)
    return torch.from_numpy(sampler.windows(cfg.training.eval_batches * cfg.training.batch_size))


BranchTracker = Callable[[Budget], Tracker]


def strategy_of(strategy: str) -> str:
    """``auto`` is DDP (with several ranks; nothing with one)."""
    return "ddp" if strategy == "auto" else strategy


def wrap(
    model: torch.nn.Module, strategy: str, world: distributed.World, device: torch.device
) -> torch.nn.Module:
    """The model as the steps run it: DDP's wrapper (which broadcasts rank 0's weights), or
    sharded in place by FSDP2 (each block, then the root), or itself in one process."""
    if not world.enabled:
        return model
    if strategy_of(strategy) == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def gradient_sync(wrapped: torch.nn.Module, sync: bool):
    """A context in which backward averages gradients over the ranks only if ``sync``."""
    import contextlib

    from torch.nn.parallel import DistributedDataParallel

    if isinstance(wrapped, DistributedDataParallel):
        return contextlib.nullcontext() if sync else wrapped.no_sync()
    if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2's module
        wrapped.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        model: TinyGPT,
        data: TokenData,
        runtime: Runtime,
        tracker: Tracker,
        out_dir: Path,
        branch_tracker: BranchTracker | None = None,
        world: distributed.World | None = None,
    ) -> None:
        self.cfg, self.model, self.data, self.runtime = cfg, model, data, runtime
        self.world = world or distributed.World()
        # The module the steps run through: the model itself, or its DDP wrapper; FSDP2 shards
        # the model in place (fully_shard), so the model is its own wrapper there.
        self.wrapped = wrap(model, cfg.hardware.strategy, self.world, runtime.device)
        self.tracker, self.out_dir = tracker, out_dir
        self.budgets = budgets(cfg)
        self.total = total_steps(cfg)
        self.tokens_per_step = tokens_per_step(cfg)
        self.branch_tracker = branch_tracker or (lambda budget: Tracker.disabled())
        self.optimizer = build_optimizer(model, cfg.optimizer, runtime.device)
        self.schedule = build_schedule(cfg.optimizer)
        self.scheduler = build_scheduler(self.optimizer, self.schedule, self.total)
        self.test_windows = fixed_windows(data.splits["test"], cfg)
        self.sampler = BatchSampler(
            data.splits["train"], cfg.training.batch_size, cfg.model.context, cfg.seed
        )
        self.batches = DeviceBatches(self.sampler, runtime.device, self.world.rank, self.world.size)
        self.val_windows = fixed_windows(data.splits["val"], cfg)
        self.token_bytes = torch.from_numpy(data.tokenizer.token_bytes())
        self.state = LoopState()
        self.stop_signal: int | None = None  # set by a signal handler, acted on between steps
        self.step_fn = runtime.compiled(self.wrapped) if runtime.compile else self.wrapped
        self.peak_flops = device_peak(runtime.device, runtime.precision)
        self._compile_checked = not runtime.compile

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def sharded(self) -> bool:
        return self.world.enabled and strategy_of(self.cfg.hardware.strategy) == "fsdp"

    def full_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's and optimizer's whole state: under FSDP gathered from every rank (all
        ranks call this; rank 0 gets the full tensors, on CPU)."""
        if not self.sharded:
            return self.model.state_dict(), self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return (
            get_model_state_dict(self.model, options=opts),
            get_optimizer_state_dict(self.model, self.optimizer, options=opts),
        )

    def payload(self) -> dict[str, Any]:
        s = self.state
        model_state, optimizer_state = self.full_state()
        return {
            "model": model_state,
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": s.step,
            "tokens_seen": s.tokens_seen,
            "best_val": s.best_val,
            "wall_seconds": s.wall_seconds,
            "branch_seconds": s.branch_seconds,
            "branch_tokens": s.branch_tokens,
            "branches": s.branches,
            "model_config": dict(vars(self.model.cfg)),
            "tokenizer": self.data.tokenizer.to_dict(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "mlflow_run_id": self.tracker.run_id,
        }

    def save(self, name: str) -> Path:
        # Metrics up to this step go to the store first: a job killed hard later resumes from
        # this checkpoint, and what it buffered after it is logged again, identically.
        self.tracker.flush()
        path = self.out_dir / name
        with clock.phase("checkpoints"):
            if self.sharded or self.world.main:  # FSDP: every rank gathers, rank 0 writes
                payload = self.payload()
                if self.world.main:
                    checkpoint.save(path, payload)
        return path

    def restore(self, ckpt: dict[str, Any]) -> None:
        """A checkpoint's state on this rank: whole (it was written whole), sharded under FSDP."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.model, ckpt["model"], options=opts)
            set_optimizer_state_dict(self.model, self.optimizer, ckpt["optimizer"], options=opts)
        else:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        self.state = LoopState(
            step=ckpt["step"],
            tokens_seen=ckpt["tokens_seen"],
            best_val=ckpt["best_val"],
            wall_seconds=ckpt["wall_seconds"],
            branch_seconds=ckpt.get("branch_seconds", 0.0),
            branch_tokens=ckpt.get("branch_tokens", 0),
            branches=list(ckpt.get("branches", [])),
        )
        checkpoint.set_rng_state(ckpt["rng"])

    # -- cooldown branches ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The trunk's whole training state, copied in memory (a branch changes it in place)."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "sampler": copy.deepcopy(self.sampler.state_dict()),
            "rng": checkpoint.rng_state(),
        }

    def put_back(self, snap: dict[str, Any]) -> None:
        self.model.load_state_dict(snap["model"])
        self.optimizer.load_state_dict(snap["optimizer"])
        self.scheduler.load_state_dict(snap["scheduler"])
        self.sampler.load_state_dict(snap["sampler"])
        checkpoint.set_rng_state(snap["rng"])

    def _due_branches(self) -> list[Budget]:
        done = {b["budget_tokens"] for b in self.state.branches}
        return [b for b in self.budgets[:-1] if b.start == self.state.step and b.tokens not in done]

    def branch(self, budget: Budget) -> dict[str, Any]:
        """Run ``budget``'s decay from the trunk's current step, evaluate it, restore the trunk.

        The trunk is checkpointed at the branch point first, so a job killed mid-branch resumes
        here and runs the branch again. A stop signal during the branch restores the trunk and
        raises ``Interrupted`` as a trunk step would.
        """
        t0 = time.perf_counter()
        start = self.state.step
        self.save(f"step_{start}.pt")
        snap = self.snapshot()
        tracker = self.branch_tracker(budget)
        status = "FAILED"
        trunk_scheduler = self.scheduler
        self.scheduler = build_scheduler(self.optimizer, self.schedule, budget.steps, start - 1)
        log.info(
            "branch: decay to %s tokens (steps %d-%d)", f"{budget.tokens:,}", start, budget.steps
        )
        try:
            window, count = torch.zeros((), device=self.runtime.device), 0
            for step in range(start + 1, budget.steps + 1):
                window += self._train_step()
                count += 1
                if step % self.cfg.training.log_interval == 0 or step == budget.steps:
                    lr = self.scheduler.get_last_lr()[0]
                    tracker.log_metrics({"train_loss": (window / count).item(), "lr": lr}, step)
                    window.zero_()
                    count = 0
                if self.stopping():
                    status = "KILLED"
                    raise Interrupted(self.stop_signal or signal.SIGTERM)
            val, test = self.evaluate_on(self.val_windows), self.evaluate_on(self.test_windows)
            result = {
                "budget_tokens": budget.tokens,
                "branch_step": start,
                "total_steps": budget.steps,
                "tokens_seen": budget.steps * self.tokens_per_step,
                "branch_tokens": (budget.steps - start) * self.tokens_per_step,
                "final_val_loss": val["loss"],
                "final_val_perplexity": val["perplexity"],
                "final_val_accuracy": val["accuracy"],
                "final_val_bpb": val["bpb"],
                "test_loss": test["loss"],
                "non_embedding_parameters": self.model.num_non_embedding_parameters(),
                "parameters": self.model.num_parameters(),
                "flops_per_token": self.model.flops_per_token(),
                "flops": self.model.flops_per_token() * budget.steps * self.tokens_per_step,
            }
            tracker.log_metrics({f"val_{k}": v for k, v in val.items()}, budget.steps)
            tracker.log_metrics(result, budget.steps)
            status = "FINISHED"
        finally:
            self.scheduler = trunk_scheduler
            self.put_back(snap)
            tracker.close(status)
        seconds = time.perf_counter() - t0
        result["seconds"] = seconds
        self.state.branches.append(result)
        self.state.branch_seconds += seconds
        self.state.branch_tokens += result["branch_tokens"]
        log.info(
            "branch %s tokens: val %.4f, test %.4f (%.1f s)",
            f"{budget.tokens:,}",
            result["final_val_loss"],
            result["test_loss"],
            seconds,
        )
        return result

    def stopping(self) -> bool:
        """Whether any rank got a stop signal: one decision, so all stop at the same step."""
        return distributed.any_rank(self.stop_signal is not None)

    # -- the loop ---------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._compile_checked:
            return self.step_fn(x, y)
        try:  # torch.compile fails at the first call, not at wrapping (no compiler, old GPU)
            out = self.step_fn(x, y)
        except Exception as e:
            log.warning("torch.compile failed (%s): falling back to eager mode", str(e)[:300])
            self.step_fn = self.model
            out = self.model(x, y)
        self._compile_checked = True
        return out

    def _train_step(self) -> torch.Tensor:
        rt = self.runtime
        accum = self.cfg.optimizer.grad_accum
        loss_sum = None
        for micro in range(accum):
            batch = self.batches.next()
            # Gradients are averaged over the ranks on the last micro-step only.
            with gradient_sync(self.wrapped, micro == accum - 1), rt.autocast():
                _, loss = self._forward(batch[:, :-1], batch[:, 1:])
                (loss / accum if accum > 1 else loss).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        if self.cfg.optimizer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return loss_sum / accum if accum > 1 else loss_sum

    def evaluate_on(self, windows: torch.Tensor) -> dict[str, float]:
        """Loss, perplexity, accuracy and bits per byte on ``windows``."""
        bs = self.cfg.training.batch_size
        with clock.phase("evaluation"):
            return evaluate(self.model, windows, bs, self.runtime, self.token_bytes)

    def _evaluate(self) -> dict[str, float]:
        s = self.state
        ev = self.evaluate_on(self.val_windows)
        s.last_eval = ev
        self.tracker.log_metrics({f"val_{k}": v for k, v in ev.items()}, s.step)
        if ev["loss"] < s.best_val:
            s.best_val = ev["loss"]
            self.save("best.pt")
        self.tracker.flush()
        return ev

    def fit(self) -> LoopState:
        t, s = self.cfg.training, self.state
        tokens_per_step = self.tokens_per_step
        log.info(
            "training: steps %d-%d, %s tokens per step",
            s.step + 1,
            self.total,
            f"{tokens_per_step:,}",
        )
        bar = tqdm(
            total=self.total,
            initial=s.step,
            desc="train",
            unit="step",
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )
        self.model.train()
        window_loss = torch.zeros((), device=self.runtime.device)
        window_steps, window_t0 = 0, time.perf_counter()
        run_t0, wall0 = time.perf_counter(), s.wall_seconds
        steady: tuple[float, int] | None = None  # (time, tokens) when warm-up ended
        try:
            while True:
                for budget in self._due_branches():
                    # Branch time is not trunk time: keep it out of the throughput windows.
                    elapsed = self.branch(budget)["seconds"]
                    window_t0 += elapsed
                    steady = steady and (steady[0] + elapsed, steady[1])
                if s.step >= self.total:
                    break
                window_loss += self._train_step()
                window_steps += 1
                s.step += 1
                s.tokens_seen += tokens_per_step
                s.wall_seconds = wall0 + time.perf_counter() - run_t0
                last = s.step == self.total
                if s.step % t.log_interval == 0 or last:
                    # The ranks' mean: the loss of the whole batch, as one process reports it.
                    loss = distributed.all_sum(window_loss.detach().cpu().clone()).item()
                    loss /= window_steps * self.world.size
                    if not math.isfinite(loss):
                        raise TinyGPTError(
                            f"training diverged: the loss is {loss} at step {s.step}; lower "
                            "optimizer.lr, raise optimizer.schedule.warmup_steps or set "
                            "optimizer.grad_clip"
                        )
                    now = time.perf_counter()
                    tps = window_steps * tokens_per_step / (now - window_t0)
                    lr = self.scheduler.get_last_lr()[0]
                    metrics = {"train_loss": loss, "lr": lr, "tokens_per_sec": tps}
                    if self.peak_flops:
                        metrics["mfu"] = mfu(self.model, tps, self.peak_flops)
                    self.tracker.log_metrics(metrics, s.step)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:,.0f}", refresh=False)
                    window_loss.zero_()
                    window_steps, window_t0 = 0, now
                    if steady is None:
                        steady = (now, s.tokens_seen)
                    elif now > steady[0]:
                        s.steady_tokens_per_sec = (s.tokens_seen - steady[1]) / (now - steady[0])
                if s.step % t.eval_interval == 0 or last:
                    ev = self._evaluate()
                    bar.set_postfix(val=f"{ev['loss']:.4f}", refresh=False)
                if s.step % t.save_interval == 0:
                    self.save(f"step_{s.step}.pt")
                bar.update(1)
                if self.stopping():
                    raise Interrupted(self.stop_signal or signal.SIGTERM)
                if t.stop_at is not None and s.step >= t.stop_at and not last:
                    self.save(f"step_{s.step}.pt")
                    raise Paused(f"paused at step {s.step} (training.stop_at)")
        finally:
            bar.close()
        self.save("final.pt")
        return s
