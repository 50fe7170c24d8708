"""The training loop: accumulation, clipping, schedule, evaluation, checkpoints, metrics.

The loss is read back from the device only at log intervals, so the loop never waits on the
accelerator between steps.
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
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from tinygpt.data.dataset import BatchSampler, DeviceBatches, TokenData
from tinygpt.errors import TinyGPTError
from tinygpt.hardware import Runtime
from tinygpt.model import TinyGPT
from tinygpt.tracking.mlflow_run import Tracker
from tinygpt.train import checkpoint
from tinygpt.train.mfu import device_peak, mfu
from tinygpt.train.optim import build_optimizer, build_scheduler

log = logging.getLogger("tinygpt")
EVAL_SEED = 1234  # the same validation windows for every run and every evaluation


class Interrupted(Exception):
    """A stop signal arrived; raised between steps so the state is consistent."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class Paused(Exception):
    """``training.stop_at`` reached: the run is checkpointed and can be resumed."""


def total_steps(cfg: DictConfig) -> int:
    t = cfg.training
    if t.max_steps is not None:
        return int(t.max_steps)
    if t.tokens is None:
        raise TinyGPTError("set a run length: training.tokens=<budget> or training.max_steps=<n>")
    per_step = t.batch_size * cfg.model.context * cfg.optimizer.grad_accum
    return max(1, math.ceil(t.tokens / per_step))


@dataclass
class LoopState:
    step: int = 0
    tokens_seen: int = 0
    best_val: float = float("inf")
    wall_seconds: float = 0.0
    # Throughput after the first log window (warm-up and compilation excluded).
    steady_tokens_per_sec: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, windows: torch.Tensor, batch_size: int, runtime: Runtime
) -> dict[str, float]:
    """Mean next-token loss and top-1 accuracy over a fixed set of windows."""
    model.eval()
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device)
    n = 0
    for chunk in windows.split(batch_size):
        chunk = chunk.to(runtime.device, non_blocking=True)
        x, y = chunk[:, :-1], chunk[:, 1:]
        with runtime.autocast():
            logits, loss = model(x, y)
        loss_sum += loss.float() * y.numel()
        correct += (logits.argmax(-1) == y).sum()
        n += y.numel()
    model.train()
    loss = (loss_sum / n).item()
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "accuracy": (correct / n).item(),
    }


def fixed_windows(tokens: np.ndarray, cfg: DictConfig) -> torch.Tensor:
    sampler = BatchSampler(tokens, cfg.training.batch_size, cfg.model.context, EVAL_SEED)
    return torch.from_numpy(sampler.windows(cfg.training.eval_batches * cfg.training.batch_size))


class Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        model: TinyGPT,
        data: TokenData,
        runtime: Runtime,
        tracker: Tracker,
        out_dir: Path,
    ) -> None:
        self.cfg, self.model, self.data, self.runtime = cfg, model, data, runtime
        self.tracker, self.out_dir = tracker, out_dir
        self.total = total_steps(cfg)
        self.optimizer = build_optimizer(model, cfg.optimizer, runtime.device)
        self.scheduler = build_scheduler(self.optimizer, cfg.optimizer, self.total)
        self.sampler = BatchSampler(
            data.splits["train"], cfg.training.batch_size, cfg.model.context, cfg.seed
        )
        self.batches = DeviceBatches(self.sampler, runtime.device)
        self.val_windows = fixed_windows(data.splits["val"], cfg)
        self.state = LoopState()
        self.stop_signal: int | None = None  # set by a signal handler, acted on between steps
        self.step_fn = runtime.compiled(model) if runtime.compile else model
        self.peak_flops = device_peak(runtime.device, runtime.precision)
        self._compile_checked = not runtime.compile

    # -- checkpoints ------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "step": s.step,
            "tokens_seen": s.tokens_seen,
            "best_val": s.best_val,
            "wall_seconds": s.wall_seconds,
            "model_config": dict(vars(self.model.cfg)),
            "tokenizer": self.data.tokenizer.to_dict(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "mlflow_run_id": self.tracker.run_id,
        }

    def save(self, name: str) -> Path:
        path = self.out_dir / name
        checkpoint.save(path, self.payload())
        return path

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        self.state = LoopState(
            step=ckpt["step"],
            tokens_seen=ckpt["tokens_seen"],
            best_val=ckpt["best_val"],
            wall_seconds=ckpt["wall_seconds"],
        )
        checkpoint.set_rng_state(ckpt["rng"])

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
        for _ in range(accum):
            batch = self.batches.next()
            with rt.autocast():
                _, loss = self._forward(batch[:, :-1], batch[:, 1:])
            (loss / accum if accum > 1 else loss).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        if self.cfg.optimizer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return loss_sum / accum if accum > 1 else loss_sum

    def _evaluate(self) -> dict[str, float]:
        s = self.state
        ev = evaluate(self.model, self.val_windows, self.cfg.training.batch_size, self.runtime)
        s.last_eval = ev
        self.tracker.log_metrics({f"val_{k}": v for k, v in ev.items()}, s.step)
        if ev["loss"] < s.best_val:
            s.best_val = ev["loss"]
            self.save("best.pt")
        self.tracker.flush()
        return ev

    def fit(self) -> LoopState:
        t, s = self.cfg.training, self.state
        tokens_per_step = t.batch_size * self.cfg.model.context * self.cfg.optimizer.grad_accum
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
            while s.step < self.total:
                window_loss += self._train_step()
                window_steps += 1
                s.step += 1
                s.tokens_seen += tokens_per_step
                s.wall_seconds = wall0 + time.perf_counter() - run_t0
                last = s.step == self.total
                if s.step % t.log_interval == 0 or last:
                    loss = (window_loss / window_steps).item()
                    if not math.isfinite(loss):
                        raise TinyGPTError(
                            f"training diverged: the loss is {loss} at step {s.step}; lower "
                            "optimizer.lr, raise optimizer.warmup_steps or set optimizer.grad_clip"
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
                if self.stop_signal is not None:
                    raise Interrupted(self.stop_signal)
                if t.stop_at is not None and s.step >= t.stop_at and not last:
                    self.save(f"step_{s.step}.pt")
                    raise Paused(f"paused at step {s.step} (training.stop_at)")
        finally:
            bar.close()
        self.save("final.pt")
        return s
