"""Synthetic scaling studies with a known law and known seed noise: what an interval is worth.

A study is the main job's shape — 5 sizes × 4 budgets × 2 seeds — drawn from a known
E + A/N^α + B/D^β with log-normal seed noise; the largest size is held out, the law is fitted on
the rest, and each held-out configuration's measured seed mean is checked against two nominal 95 %
bands: the parameters' bootstrap alone (the band ``tinygpt.scaling.laws.law.Law.band`` draws), and
the band for a measured mean (``tinygpt.scaling.laws.forms.FormFit.band``: the bootstrap and the
seeds' own scatter σ/√seeds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tinygpt.scaling.laws.forms import fit_form
from tinygpt.scaling.laws.law import jobs

TRUE = {"E": 2.5, "A": 15.0, "alpha": 0.35, "B": 300.0, "beta": 0.4}
SIZES = np.array([6.6e3, 1.4e4, 2.5e4, 5.6e4, 1.5e5])
BUDGETS = np.array([2e5, 4e5, 8e5, 1.6e6])


def truth(N: np.ndarray, D: np.ndarray) -> np.ndarray:
    p = TRUE
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def runs(
    loss: Callable[[float, float], float],
    sizes: Iterable[float],
    budgets: Iterable[float],
    seeds: Iterable[int] = (1, 2),
    noise: float = 0.002,
    seed: int = 0,
) -> pd.DataFrame:
    """Every size at every token budget for every seed, as an analysis reads runs: run_id, N, D,
    C = 6ND, seed and ``loss(N, D)`` with log-normal seed noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"run_id": f"{n:.0f}-{d:.0f}-{s}", "N": n, "D": d, "C": 6 * n * d, "seed": s,
             "loss": loss(n, d) * np.exp(rng.normal(0, noise))}
            for n in sizes
            for d in budgets
            for s in seeds
        ]
    )  # fmt: skip


def study(
    rng: np.random.Generator, sigma: float, seeds: int = 2, shared: float = 0.0
) -> pd.DataFrame:
    """Every size at every budget for every seed, with log-normal noise of std ``sigma`` of which
    the share ``shared`` of the variance is one draw per (size, seed): a job's deviation that
    all its budgets carry, as WSD branches of one trunk do (0.84-0.97 correlated between budgets
    on the main job)."""
    N, D = (a.ravel() for a in np.meshgrid(SIZES, BUDGETS, indexing="ij"))
    rows = []
    for s in range(seeds):
        job = np.repeat(rng.standard_normal(len(SIZES)), len(BUDGETS))
        own = rng.standard_normal(len(N))
        noise = sigma * (np.sqrt(shared) * job + np.sqrt(1 - shared) * own)
        rows.append(pd.DataFrame({"N": N, "D": D, "seed": s, "loss": truth(N, D) * np.exp(noise)}))
    return pd.concat(rows, ignore_index=True)


@dataclass
class Coverage:
    studies: int
    points: int
    parameters_only: float  # share of held-out measured means inside the bootstrap-only band
    with_seeds: float  # … inside the band for a measured mean
    truth_with_seeds: float  # share of true law values inside the band for a measured mean


# A 243-start cut of the replication's grid (the synthetic law is well conditioned; every study
# is fitted from the same generic starts, none placed near the truth).
STARTS = np.array(
    list(itertools.product([0.0, 5.0, 10.0], [0.0, 5.0, 10.0], [0.25, 0.5, 1.0], [0.25, 0.5, 1.0],
                           [-1.0, 0.0, 1.0]))
)  # fmt: skip


def coverage(
    n_studies: int,
    sigma: float = 0.01,
    bootstrap: int = 200,
    seed: int = 0,
    shared: float = 0.0,
    unit: str = "run",
) -> Coverage:
    """Both bands' coverage of the held-out largest size over ``n_studies`` synthetic studies
    (seed noise ``sigma``, its ``shared`` part common to a job's budgets), the bootstrap drawing
    ``unit``s: single runs or whole jobs (``tinygpt.scaling.laws.law.jobs``).

    Both come from one fit per study: its bootstrap percentiles alone (the parameters' band) and
    with the seeds' scatter added (the band for a measured mean)."""
    rng = np.random.default_rng(seed)
    inside_old = inside_new = inside_truth = total = 0
    for i in range(n_studies):
        table = study(rng, sigma, shared=shared)
        held = np.isclose(table["N"], SIZES[-1])
        fit_rows, test = table[~held], table[held]
        means = test.groupby("D", as_index=False)["loss"].agg(["mean", "size"]).reset_index()
        N = np.full(len(means), SIZES[-1])
        D = means["D"].to_numpy()
        measured = means["mean"].to_numpy()
        form = fit_form(
            "chinchilla", fit_rows["N"], fit_rows["D"], fit_rows["loss"], bootstrap, seed + i,
            starts=STARTS, groups=jobs(fit_rows, unit),
        )  # fmt: skip
        lo, hi = form.band(N, D, np.inf)
        inside_old += int(((measured >= lo) & (measured <= hi)).sum())
        lo, hi = form.band(N, D, means["size"].to_numpy())
        inside_new += int(((measured >= lo) & (measured <= hi)).sum())
        t = truth(N, D)
        inside_truth += int(((t >= lo) & (t <= hi)).sum())
        total += len(measured)
    return Coverage(n_studies, total, inside_old / total, inside_new / total, inside_truth / total)
