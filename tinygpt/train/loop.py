"""The training loop: accumulation, clipping, schedule, evaluation, checkpoints, metrics, and
cooldown branches.

The loss is read back from the device only at log intervals, so the loop never waits on the
accelerator between steps. With ``training.budgets`` and a WSD schedule the loop trains one
constant-LR trunk to the largest budget; at each smaller budget's branch point it runs that
budget's decay from the trunk's state, evaluates, records, and puts the trunk back exactly.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tinygpt import checkpoint, distributed
from tinygpt.data.dataset import EVAL_SEED, BatchSampler, DeviceBatches, TokenData
from tinygpt.errors import TinyGPTError
from tinygpt.hardware import Runtime
from tinygpt.model import TinyGPT
from tinygpt.timing import clock
from tinygpt.tracking.mlflow_run import Tracker
from tinygpt.train.branches import Branching, BranchTracker, budgets, tokens_per_step, total_steps
from tinygpt.train.mfu import device_peak, mfu
from tinygpt.train.optim import build_optimizer, build_schedule, build_scheduler
from tinygpt.train.stops import Interrupted, Paused

log = logging.getLogger("tinygpt")


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


class Trainer(Branching):
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
