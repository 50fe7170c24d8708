"""What to train next: the runs that most shrink the uncertainty of a target, within a budget.

A fitted form carries a bootstrap ensemble of laws θ_b. A target is a function of θ: the
compute-optimal size at a compute past the sweep (``n_opt``), the loss of a model not yet trained
(``loss``), or the allocation exponent (``exponent``). A new run at (N, D) would be observed as
y = log L(N, D; θ) + noise; how much it would narrow the target is read off the ensemble itself,
as an ensemble Kalman update does: with t_b the target and Y_b the predictions of the candidate
runs for each member,

    Var(t | y) = Var(t) − Cov(t, Y) (Cov(Y, Y) + R)⁻¹ Cov(Y, t),    R = diag(σ² / seeds),

which is the expected spread after refitting with simulated observations drawn from the ensemble
and the seeds' scatter, without refitting (linear-Gaussian; benchmarks/plan_rounds.py checks it by
refitting for real). Runs are chosen greedily by variance removed per FLOP, priced as the WSD
branches train them: a (model, seed) job costs its trunk to its largest budget plus a decay of
``decay_fraction`` of each smaller one, so a budget ladder on one trunk is nearly free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.laws.forms import FormFit

TARGETS = ("n_opt", "loss", "exponent")
DECAY = 0.1  # the main job's WSD decay fraction


@dataclass(frozen=True)
class Size:
    """A model a run could train: its preset, N as the law counts it, and FLOPs per token."""

    name: str
    N: float
    flops_per_token: float


@dataclass(frozen=True)
class Target:
    """What the next round should pin down."""

    kind: str
    at_flops: float | None = None  # n_opt, exponent
    N: float | None = None  # loss
    D: float | None = None  # loss

    def describe(self) -> str:
        if self.kind == "n_opt":
            return f"N_opt at C = {self.at_flops:.3g} FLOPs"
        if self.kind == "exponent":
            return f"the allocation exponent a (N_opt ∝ C^a) at C = {self.at_flops:.3g}"
        return f"the loss at N = {self.N:,.0f}, D = {self.D:,.0f}"

    def values(self, fit: FormFit, thetas: np.ndarray) -> np.ndarray:
        """The target per row of ``thetas``, on the scale its CI is symmetric in (logs for
        N_opt and the loss); NaN where a member has no optimum."""
        if self.kind == "n_opt":
            return fit._ln_n_opt(float(self.at_flops), thetas)
        if self.kind == "exponent":
            return fit.allocation(float(self.at_flops), thetas)
        return fit.log_predict(np.array([self.N]), np.array([self.D]), thetas)[:, 0]

    def natural(self, v: np.ndarray) -> np.ndarray:
        return v if self.kind == "exponent" else np.exp(v)


@dataclass
class Job:
    """One (model, seed) job of the next round: a WSD trunk and its branches."""

    size: Size
    seed: int
    budgets: list[float] = field(default_factory=list)

    def flops(self, decay_fraction: float, budgets: list[float] | None = None) -> float:
        b = sorted(self.budgets if budgets is None else budgets)
        if not b:
            return 0.0
        return self.size.flops_per_token * (b[-1] + decay_fraction * sum(b[:-1]))


@dataclass
class Plan:
    target: Target
    jobs: list[Job]
    flops: float
    budget_flops: float
    centre: float
    ci_before: tuple[float, float]
    ci_after: tuple[float, float]
    members: int
    dropped_members: int
    noise_sigma: float
    decay_fraction: float

    @property
    def narrowing(self) -> float:
        before = self.ci_before[1] - self.ci_before[0]
        after = self.ci_after[1] - self.ci_after[0]
        return before / after if after > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.describe(),
            "target_kind": self.target.kind,
            "flops": self.flops,
            "budget_flops": self.budget_flops,
            "estimate": self.centre,
            "ci95_before": list(self.ci_before),
            "ci95_after_predicted": list(self.ci_after),
            "narrowing": self.narrowing,
            "ensemble_members": self.members,
            "members_without_target": self.dropped_members,
            "noise_sigma_log": self.noise_sigma,
            "runs": [
                {
                    "model": j.size.name,
                    "N": j.size.N,
                    "seed": j.seed,
                    "budgets": j.budgets,
                    "flops": j.flops(self.decay_fraction),
                }
                for j in self.jobs
            ],
        }


def posterior_variance(t: np.ndarray, Y: np.ndarray, noise: np.ndarray) -> float:
    """Var(t | Y observed with noise variances ``noise``), from the ensemble (rows = members)."""
    if Y.shape[1] == 0:
        return float(np.var(t, ddof=1))
    tc = t - t.mean()
    Yc = Y - Y.mean(0)
    n = len(t) - 1
    c_yy = Yc.T @ Yc / n + np.diag(noise)
    c_ty = Yc.T @ tc / n
    return float(tc @ tc / n - c_ty @ np.linalg.solve(c_yy, c_ty))


def choose(
    fit: FormFit,
    target: Target,
    sizes: list[Size],
    budgets: list[float],
    flops: float,
    seeds_start: int = 1,
    max_seeds: int = 3,
    decay_fraction: float = DECAY,
    noise_sigma: float | None = None,
) -> Plan:
    """Greedy: add the (size, budget) observation with the most target variance removed per
    FLOP of its marginal cost, until ``flops`` is spent. A size gets up to ``max_seeds`` jobs
    (seeds ``seeds_start``, ``seeds_start`` + 1, …); a budget goes to the first of its jobs
    that lacks it."""
    if fit.boot is None or len(fit.boot) < 20:
        raise TinyGPTError("planning needs the fit's bootstrap ensemble: set plan.bootstrap>=20")
    t_all = target.values(fit, fit.boot)
    keep = np.isfinite(t_all)
    if keep.sum() < 20:
        raise TinyGPTError(
            f"{target.describe()}: only {int(keep.sum())} of {len(t_all)} bootstrap laws have it "
            "(the rest want N or D without bound): pick a compute nearer the sweep or another form"
        )
    thetas, t = fit.boot[keep], t_all[keep]
    sigma = fit.seed_sigma if noise_sigma is None else noise_sigma
    sigma = max(sigma, 1e-3)  # a law is never known better than a run can be reproduced
    cands = [(s, float(d)) for s in sizes for d in budgets]
    pred = {
        s.name: fit.log_predict(np.full(len(budgets), s.N), np.asarray(budgets, float), thetas)
        for s in sizes
    }  # (members, budgets) per size
    column = {(s.name, float(d)): pred[s.name][:, i] for s in sizes for i, d in enumerate(budgets)}
    jobs: dict[str, list[Job]] = {s.name: [] for s in sizes}
    Y = np.empty((len(t), 0))  # the chosen runs' predictions, a column each
    spent = 0.0
    var_now = var0 = posterior_variance(t, Y, np.empty(0))
    while True:
        best, best_gain, best_cost, best_job = None, 0.0, 0.0, None
        for size, d in cands:
            job, cost = _slot(jobs[size.name], size, d, seeds_start, max_seeds, decay_fraction)
            if job is None or spent + cost > flops:
                continue
            Yc = np.c_[Y, column[(size.name, d)]]
            var = posterior_variance(t, Yc, np.full(Yc.shape[1], sigma**2))
            gain = (var_now - var) / cost
            if gain > best_gain:
                best, best_gain, best_cost, best_job = (size, d), gain, cost, job
        if best is None:
            break
        size, d = best
        if best_job not in jobs[size.name]:
            jobs[size.name].append(best_job)
        best_job.budgets = sorted([*best_job.budgets, d])
        spent += best_cost
        Y = np.c_[Y, column[(size.name, d)]]
        var_now = posterior_variance(t, Y, np.full(Y.shape[1], sigma**2))
    centre = float(np.median(t))
    lo, hi = np.percentile(t, [2.5, 97.5])
    # The ensemble's own 95 % interval, narrowed by the predicted ratio of standard deviations.
    shrink = float(np.sqrt(max(var_now, 0.0) / var0)) if var0 > 0 else 0.0
    after = (centre - (centre - lo) * shrink, centre + (hi - centre) * shrink)
    return Plan(
        target,
        [j for js in jobs.values() for j in js],
        spent,
        flops,
        float(target.natural(np.array(centre))),
        tuple(float(v) for v in target.natural(np.array([lo, hi]))),
        tuple(float(v) for v in target.natural(np.array(after))),
        int(keep.sum()),
        int((~keep).sum()),
        sigma,
        decay_fraction,
    )


def _slot(
    jobs: list[Job], size: Size, d: float, seeds_start: int, max_seeds: int, decay: float
) -> tuple[Job | None, float]:
    """The job budget ``d`` would go to and the FLOPs it adds (None: every seed has it)."""
    for job in jobs:
        if d not in job.budgets:
            return job, job.flops(decay, [*job.budgets, d]) - job.flops(decay)
    if len(jobs) >= max_seeds:
        return None, 0.0
    job = Job(size, seeds_start + len(jobs))
    return job, job.flops(decay, [d])
