"""Chinchilla's approach 1: the envelope of loss curves.

At each compute C, the lowest loss any size reaches with C FLOPs is the best that compute buys;
the sizes (and token counts) that reach it trace N_opt(C) and D_opt(C), and a line through their
logs gives the exponents. Two readings of "the loss a size reaches with C FLOPs":

- ``cooled_envelope``: the runs' final losses, each at the end of its own schedule (every WSD
  budget's cooldown branch, every cosine run), joined per size and seed by straight lines in
  (ln C, ln L). Where sizes were run at several budgets this is the honest curve: what a run
  ending at that C reaches.
- ``envelope``: every evaluation of every run, in log-spaced FLOP buckets. Evaluations taken
  mid-schedule (a WSD trunk before its cooldown) lie above what a run ending there would
  reach, so this reading favours whichever runs are cooled there; it is for studies that ran
  each size once.

A compute counts only where the best size has a smaller and a larger size beside it at that C:
won by the smallest (or largest) size that reaches it, the optimum may lie past it. (On a grid
of budgets that stops short of the optimum every C is won by the smallest size that reaches it:
the envelope says so instead of drawing the budgets' edge as a frontier.) Runs (or, cooled,
each size's seeds) are resampled with replacement for 95 % intervals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.scaling.interval import as_json

MIN_BUCKETS = 3


@dataclass
class Envelope:
    points: pd.DataFrame  # per compute counted: C, loss, N, D of the best size there
    n_exponent: float
    n_ci95: tuple[float, float]
    d_exponent: float
    d_ci95: tuple[float, float]
    reads: str = "training curves"  # or "cooled ends"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reads": self.reads,
            "buckets": len(self.points),
            "N_opt": {"exponent": self.n_exponent, "ci95": as_json(*self.n_ci95)},
            "D_opt": {"exponent": self.d_exponent, "ci95": as_json(*self.d_ci95)},
        }


# Per size (rows, ascending N) and compute (columns): the loss there (inf where the size has no
# point), and the C and D of that point.
Table = tuple[np.ndarray, np.ndarray, np.ndarray]


def _slopes(c: np.ndarray, n: np.ndarray, d: np.ndarray) -> tuple[float, float] | None:
    if len(c) < MIN_BUCKETS or np.unique(n).size < 2:
        return None
    lc = np.log(c)
    return float(np.polyfit(lc, np.log(n), 1)[0]), float(np.polyfit(lc, np.log(d), 1)[0])


def _winners(sizes: np.ndarray, table: Table) -> tuple[np.ndarray, ...]:
    """C, N, D and loss at every compute whose best size has a size below and above it there."""
    loss, c, d = table
    present = np.isfinite(loss)
    cols = np.flatnonzero(present.any(0))
    win = np.argmin(loss[:, cols], 0)
    first = present[:, cols].argmax(0)
    last = len(sizes) - 1 - present[::-1, cols].argmax(0)
    ok = (win > first) & (win < last)
    w, k = win[ok], cols[ok]
    return c[w, k], sizes[w], d[w, k], loss[w, k]


def _frontier(
    sizes: np.ndarray,
    full: Table,
    resample: Callable[[np.random.Generator], Table],
    n_boot: int,
    seed: int,
    reads: str,
) -> Envelope | str:
    c, n, d, best = _winners(sizes, full)
    slopes = _slopes(c, n, d)
    if slopes is None:
        counted = f"{len(c)} compute(s) where the best size has a smaller and a larger one by it"
        return (
            f"reading the {reads}: {counted} ({np.unique(n).size} distinct best sizes); needs "
            f"{MIN_BUCKETS} and 2. Where the smallest size that reaches a compute is always the "
            "best, the optimum lies past the longest budgets: train the smaller sizes longer"
        )
    rng = np.random.default_rng(seed)
    boot = [_slopes(*_winners(sizes, resample(rng))[:3]) for _ in range(n_boot)]
    b = np.array([x for x in boot if x is not None] or [(np.nan, np.nan)])
    return Envelope(
        pd.DataFrame({"C": c, "N": n, "D": d, "loss": best}),
        slopes[0],
        tuple(np.percentile(b[:, 0], [2.5, 97.5])),
        slopes[1],
        tuple(np.percentile(b[:, 1], [2.5, 97.5])),
        reads,
    )


def envelope(
    curves: pd.DataFrame, buckets: int = 20, n_boot: int = 1000, seed: int = 0
) -> Envelope | str:
    """``curves``: run_id, N, D, C, loss for every evaluation of every run."""
    if curves.empty or curves["N"].nunique() < 3:
        return "needs the evaluations of runs of at least 3 model sizes"
    edges = np.geomspace(curves["C"].min(), curves["C"].max() * (1 + 1e-9), buckets + 1)
    curves = curves.assign(bucket=np.digitize(curves["C"], edges[1:-1]))
    # Each run's best point per bucket: (runs x buckets) tables the bootstrap indexes into.
    best = curves.loc[curves.groupby(["run_id", "bucket"])["loss"].idxmin()]
    # Runs in an order of what they measured, not of their random ids: the same study in two
    # stores draws the same bootstrap resamples (the interval was moving between reruns).
    key = best.groupby("run_id").agg(N=("N", "max"), D=("D", "max"), loss=("loss", "min"))
    runs = key.sort_values(["N", "D", "loss"]).index.to_numpy()
    shape = (len(runs), buckets)
    loss, at = np.full(shape, np.inf), {k: np.full(shape, np.nan) for k in ("C", "D")}
    row = {r: i for i, r in enumerate(runs)}
    ri, bi = best["run_id"].map(row).to_numpy(), best["bucket"].to_numpy()
    loss[ri, bi] = best["loss"].to_numpy(float)
    for k in at:
        at[k][ri, bi] = best[k].to_numpy(float)
    sizes = np.sort(key["N"].unique())
    size_of = np.searchsorted(sizes, key.loc[runs, "N"].to_numpy())

    cols = np.arange(buckets)

    def per_size(idx: np.ndarray) -> Table:
        """Each size's best run in each bucket, among the runs ``idx``."""
        t_loss = np.full((len(sizes), buckets), np.inf)
        t_c, t_d = np.full_like(t_loss, np.nan), np.full_like(t_loss, np.nan)
        for s in range(len(sizes)):
            mine = idx[size_of[idx] == s]
            if mine.size:
                pick = mine[loss[mine].argmin(0)]
                for table, source in ((t_loss, loss), (t_c, at["C"]), (t_d, at["D"])):
                    table[s] = source[pick, cols]
        return t_loss, t_c, t_d

    return _frontier(
        sizes,
        per_size(np.arange(len(runs))),
        lambda rng: per_size(rng.integers(0, len(runs), len(runs))),
        n_boot,
        seed,
        "training curves",
    )


def cooled_envelope(
    ends: pd.DataFrame, points: int = 30, n_boot: int = 1000, seed: int = 0, sigma: float = 0.0
) -> Envelope | str:
    """``ends``: N, D, C, loss (and seed, where there is one) of runs that each ended their own
    schedule. A size's curve is its runs of one seed joined in (ln C, ln L); a size's loss at C
    is the mean over its seeds of ln L there, on ``points`` log-spaced computes. The interval
    resamples each size's seeds; where every size ran one seed there is nothing to resample,
    and each draw instead adds noise of std ``sigma`` (a run's log loss, from the study's noise
    model, tinygpt.scaling.fit.noise) to every run before joining."""
    if ends.empty or ends["N"].nunique() < 3:
        return "needs runs of at least 3 model sizes"
    by_seed = "seed" in ends and ends["seed"].notna().all()
    grid = np.geomspace(ends["C"].min(), ends["C"].max(), points)
    lg = np.log(grid)
    sizes = np.sort(ends["N"].unique())
    # Per size, its seeds' runs as (ln C ascending, ln L).
    runs: list[list[tuple[np.ndarray, np.ndarray]]] = []
    for n in sizes:
        size, rows = ends[ends["N"] == n], []
        for _, g in size.groupby("seed") if by_seed else [(None, size)]:
            g = g.groupby("C", as_index=False)["loss"].mean().sort_values("C")
            if len(g) >= 2:
                rows.append((np.log(g["C"].to_numpy(float)), np.log(g["loss"].to_numpy(float))))
        runs.append(rows)
    if sum(len(r) > 0 for r in runs) < 3:
        return "needs at least 3 model sizes run at 2 or more budgets"

    def on_grid(lc: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = (lg >= lc[0] - 1e-12) & (lg <= lc[-1] + 1e-12)
        return np.where(inside, np.interp(lg, lc, y), np.nan)

    curves = [np.array([on_grid(*r) for r in rows]).reshape(-1, points) for rows in runs]
    # C = flops_per_token(N) * D, so D at any C on a size's curve is C over its FLOPs per token.
    per_token = (ends["C"] / ends["D"]).groupby(ends["N"]).median()
    d = grid[None, :] / per_token.loc[sizes].to_numpy()[:, None]
    c = np.broadcast_to(grid, d.shape)

    def table(pick: list[np.ndarray]) -> Table:
        with warnings.catch_warnings():  # a compute no seed of a size reaches: nan, then inf
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.array([np.nanmean(r, 0) if len(r) else np.full(points, np.nan) for r in pick])
        return np.where(np.isfinite(mean), np.exp(mean), np.inf), c, d

    def reseeded(rng: np.random.Generator) -> Table:
        return table([r[rng.integers(0, len(r), len(r))] for r in curves])

    def renoised(rng: np.random.Generator) -> Table:
        return table(
            [
                np.array(
                    [on_grid(lc, y + sigma * rng.standard_normal(len(y))) for lc, y in rows]
                ).reshape(-1, points)
                for rows in runs
            ]
        )

    single = max(len(r) for r in runs) <= 1
    return _frontier(
        sizes,
        table(curves),
        renoised if single and sigma > 0 else reseeded,
        n_boot,
        seed,
        "σ-drawn ends" if single and sigma > 0 else "cooled ends",
    )
