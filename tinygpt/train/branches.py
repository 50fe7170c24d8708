"""WSD cooldown branches: many token budgets from one run, in one module.

A run with ``training.budgets`` and a WSD schedule trains one constant-LR trunk to the largest
budget; at each smaller budget's branch point (``Budget.start``) ``Branching.branch`` runs that
budget's decay from the trunk's state, evaluates, records, and puts the trunk back exactly. Here:
a run's length in steps, each budget's branch point, the branch itself (a mixin of the
``Trainer``), its MLflow child runs and the job's summary of what the branches cost.
"""

from __future__ import annotations

import copy
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from tinygpt import checkpoint
from tinygpt.accounting import Counts
from tinygpt.errors import TinyGPTError
from tinygpt.tracking.mlflow_run import Store, Tracker, flatten, with_retry
from tinygpt.train.optim import build_schedule, build_scheduler
from tinygpt.train.schedules import WSD
from tinygpt.train.stops import Interrupted

if TYPE_CHECKING:
    from tinygpt.train.loop import Trainer

log = logging.getLogger("tinygpt")


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


BranchTracker = Callable[[Budget], Tracker]


class Branching:
    """The ``Trainer``'s cooldown branches (it provides the model, optimizer, state and loop)."""

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
            result = budget_entry(
                self.model, self.tokens_per_step, budget.tokens, start, budget.steps, val,
                test["loss"],
            )  # fmt: skip
            tracker.log_metrics({f"val_{k}": v for k, v in val.items()}, budget.steps)
            tracker.log_metrics({k: v for k, v in result.items() if k != "trunk"}, budget.steps)
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


def budget_entry(
    model: Any,
    per_step: int,
    tokens: int,
    start: int,
    steps: int,
    val: dict[str, float],
    test_loss: float,
    trunk: bool = False,
) -> dict[str, Any]:
    """One budget's entry of results.json, the same keys for a branch and for the trunk."""
    return {
        "budget_tokens": tokens,
        "branch_step": start,  # where its decay left the trunk
        "total_steps": steps,
        "tokens_seen": steps * per_step,
        "branch_tokens": (steps - start) * per_step,  # the decay's tokens
        "final_val_loss": val.get("loss"),
        "final_val_perplexity": val.get("perplexity"),
        "final_val_accuracy": val.get("accuracy"),
        "final_val_bpb": val.get("bpb"),
        "test_loss": test_loss,
        **Counts.of(model).metrics(steps * per_step),  # N and C under every convention
        "trunk": trunk,
    }


def branch_summary(trainer: Trainer, test_loss: float) -> dict[str, Any]:
    """What the branches measured and cost, beside what separate runs would have cost."""
    s, per_step = trainer.state, trainer.tokens_per_step
    trunk = budget_entry(
        trainer.model, per_step, trainer.budgets[-1].tokens,
        trainer.schedule.decay_start(trainer.total), s.step, s.last_eval, test_loss, trunk=True,
    )  # fmt: skip
    trunk["seconds"] = s.wall_seconds - s.branch_seconds
    points = sorted([*s.branches, trunk], key=lambda b: b["budget_tokens"])
    return {
        "budgets": points,
        "trunk_seconds": s.wall_seconds - s.branch_seconds,
        "branch_seconds": s.branch_seconds,
        "trunk_tokens": s.tokens_seen,
        "branch_tokens": s.branch_tokens,
        # Tokens the same budgets would cost as separate runs from scratch.
        "separate_runs_tokens": sum(b.steps for b in trainer.budgets) * per_step,
    }


def branch_runs(tracker: Tracker, cfg: DictConfig, compute: dict[int, float]) -> BranchTracker:
    """Each budget of a branched job as an MLflow child run of the job's run.

    A branch run carries the job's params with ``training.tokens`` set to its budget, so the
    analysis reads it as one more (N, D, loss) point. A branch that runs again (its job was
    killed mid-branch) reopens its run instead of adding a second one.
    """
    if not tracker.enabled:
        return lambda budget: Tracker.disabled()
    client = tracker.client
    job = with_retry(lambda: client.get_run(tracker.run_id))
    store = Store(client, job.info.experiment_id, tracker.uri)
    params = flatten(OmegaConf.to_container(cfg, resolve=True))

    def open_branch(budget: Budget) -> Tracker:
        where = (
            f"tags.mlflow.parentRunId = '{tracker.run_id}' and tags.budget_tokens = "
            f"'{budget.tokens}'"
        )
        previous = store.find_runs(where)
        run_id = previous[0].info.run_id if previous else None
        tags = {
            "kind": "branch",
            "budget_tokens": str(budget.tokens),
            "job_config_hash": job.data.tags.get("config_hash", ""),
        }
        name = f"{job.info.run_name} D={budget.tokens:,}"
        branch = Tracker.start(store, name, tags, run_id=run_id, parent_run_id=tracker.run_id)
        if run_id is None:
            branch.log_params({**params, "training.tokens": budget.tokens})
        if budget.tokens in compute:
            branch.log_metrics({"compute_budget": compute[budget.tokens]}, budget.steps)
        return branch

    return open_branch
