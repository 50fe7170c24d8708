"""Simulated studies for `tinygpt-plan`: a known law, noisy runs, and a second round spent three
ways at equal compute — planned (tinygpt.scaling.plan.choose), a uniform grid over the
candidates, and
more seeds of the first round's grid — each refitted for real, its target's 95 % CI measured
and checked against the truth. benchmarks/plan_rounds.py runs many; tests run a few.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygpt.scaling.laws.forms import FORM_SPECS, FormFit, fit_form
from tinygpt.scaling.plan.choose import DECAY, Job, Size, Target, choose

# A law at this lab's scale (non-embedding N 2e3-8e5, D 2e5-6e6): E + A/N^α + B/D^β.
TRUE = {"A": 60.0, "B": 400.0, "alpha": 0.35, "beta": 0.35, "E": 2.5}
# The presets' non-embedding N and Kaplan FLOPs per token (tinygpt.scaling.plan.round.preset_size
# with parameters=non_embedding, flops=kaplan; a test keeps them equal).
SIZES = [
    Size("d8", 1_760, 22_848),
    Size("d12", 3_792, 41_184),
    Size("d16", 6_592, 64_128),
    Size("d24", 14_496, 123_840),
    Size("d32", 25_472, 201_984),
    Size("d48", 84_912, 620_064),
    Size("d64", 150_080, 1_047_936),
    Size("d96", 447_552, 2_980_224),
    Size("d128", 793_344, 5_153_280),
]
FIRST_SIZES = ("d16", "d24", "d32", "d48")
FIRST_BUDGETS = (200_000.0, 400_000.0, 800_000.0)
LADDER = [200_000.0 * 2**k for k in range(6)]  # 200k ... 6.4M


def true_fit() -> FormFit:
    form = FORM_SPECS["chinchilla"]
    # tinygpt.scaling.fit.batched.Problem's order: ln A, ln B, α, β, ln E.
    theta = np.array([np.log(TRUE["A"]), np.log(TRUE["B"]), TRUE["alpha"], TRUE["beta"],
                      np.log(TRUE["E"])])  # fmt: skip
    return FormFit(form, theta, 0.0, 0.0, 0)


def observe(rng: np.random.Generator, points: list[tuple[float, float]], sigma: float):
    N = np.array([p[0] for p in points])
    D = np.array([p[1] for p in points])
    loss = true_fit().predict(N, D) * np.exp(rng.normal(0, sigma, len(points)))
    return N, D, loss


def cost(jobs: list[Job]) -> float:
    return sum(j.flops(DECAY) for j in jobs)


def grid_jobs(sizes: list[Size], budgets: list[float], seed: int) -> list[Job]:
    return [Job(s, seed, sorted(budgets)) for s in sizes]


def first_round() -> list[Job]:
    by = {s.name: s for s in SIZES}
    return grid_jobs([by[n] for n in FIRST_SIZES], list(FIRST_BUDGETS), 1)


def uniform_grid(flops: float) -> list[Job]:
    """The widest k sizes x k budgets, evenly spread over the candidates, that fits ``flops``."""
    best: list[Job] = []
    for k in range(2, min(len(SIZES), len(LADDER)) + 1):
        sizes = [SIZES[i] for i in np.linspace(0, len(SIZES) - 1, k).round().astype(int)]
        budgets = [LADDER[i] for i in np.linspace(0, len(LADDER) - 1, k).round().astype(int)]
        jobs = grid_jobs(sizes, budgets, 2)
        if cost(jobs) <= flops:
            best = jobs
    if not best:  # the two smallest sizes at the ladder's ends
        best = grid_jobs(SIZES[:2], [LADDER[0], LADDER[-1]], 2)
    return best


def more_seeds(flops: float) -> list[Job]:
    """The first round's grid again with new seeds, as many whole copies as fit."""
    jobs: list[Job] = []
    seed = 2
    while True:
        more = [Job(j.size, seed, list(j.budgets)) for j in first_round()]
        if cost(jobs + more) > flops:
            return jobs or more
        jobs += more
        seed += 1


def points(jobs: list[Job]) -> list[tuple[float, float]]:
    return [(j.size.N, d) for j in jobs for d in j.budgets]


@dataclass
class Arm:
    width: float  # the target's 95 % CI width after the round
    covered: bool
    flops: float


def study(seed: int, target: Target, sigma: float = 0.01, bootstrap: int = 200) -> dict:
    """One simulated study: the first round, then each arm's second round refitted."""
    rng = np.random.default_rng(seed)
    first = points(first_round())
    N1, D1, L1 = observe(rng, first, sigma)
    fit1 = fit_form("chinchilla", N1, D1, L1, bootstrap, seed)
    flops = cost(first_round())
    truth = float(target.values(true_fit(), true_fit().theta[None])[0])
    plan = choose(fit1, target, SIZES, LADDER, flops, 2, 3, DECAY, noise_sigma=sigma)
    arms = {"planned": plan.jobs, "grid": uniform_grid(flops), "seeds": more_seeds(flops)}
    out = {"truth": truth, "predicted_narrowing": plan.narrowing}
    for name, jobs in arms.items():
        N2, D2, L2 = observe(rng, points(jobs), sigma)
        fit = fit_form("chinchilla", np.r_[N1, N2], np.r_[D1, D2], np.r_[L1, L2], bootstrap, seed)
        t = target.values(fit, fit.boot)
        t = t[np.isfinite(t)]
        lo, hi = np.percentile(t, [2.5, 97.5])
        out[name] = Arm(float(hi - lo), bool(lo <= truth <= hi), cost(jobs))
    return out
