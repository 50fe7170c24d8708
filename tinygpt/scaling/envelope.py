"""Chinchilla's approach 1: the envelope of training curves.

Every evaluation of every run is a (C spent, loss) point. In each log-spaced FLOP bucket the
lowest loss is the best any size reached with that compute; the sizes (and token counts) that
reach it trace N_opt(C) and D_opt(C), and a line through their logs gives the exponents. Buckets
won by the smallest or the largest size are left out: their optimum may lie beyond the sizes run.
Runs are resampled with replacement for 95 % intervals. Intermediate evaluations of a WSD trunk
are taken at its constant LR, before any cooldown, so they lie above what a run ending there
would reach; the cooled-down ends (each budget's branch) are in the envelope too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MIN_BUCKETS = 3


@dataclass
class Envelope:
    points: pd.DataFrame  # per bucket: C, loss, N, D of the best point
    n_exponent: float
    n_ci95: tuple[float, float]
    d_exponent: float
    d_ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": len(self.points),
            "N_opt": {"exponent": self.n_exponent, "ci95": list(self.n_ci95)},
            "D_opt": {"exponent": self.d_exponent, "ci95": list(self.d_ci95)},
        }


def _slopes(c: np.ndarray, n: np.ndarray, d: np.ndarray) -> tuple[float, float] | None:
    if len(c) < MIN_BUCKETS or np.unique(n).size < 2:
        return None
    lc = np.log(c)
    return float(np.polyfit(lc, np.log(n), 1)[0]), float(np.polyfit(lc, np.log(d), 1)[0])


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
    loss, at = np.full(shape, np.inf), {k: np.full(shape, np.nan) for k in ("N", "D", "C")}
    row = {r: i for i, r in enumerate(runs)}
    ri, bi = best["run_id"].map(row).to_numpy(), best["bucket"].to_numpy()
    loss[ri, bi] = best["loss"].to_numpy(float)
    for k in at:
        at[k][ri, bi] = best[k].to_numpy(float)

    n_min, n_max = curves["N"].min(), curves["N"].max()

    def winners(idx: np.ndarray) -> tuple[np.ndarray, ...]:
        sub = loss[idx]
        win = sub.argmin(0)
        n_win = at["N"][idx[win], np.arange(buckets)]
        # A bucket won by the smallest or largest size sampled may have its optimum beyond it.
        ok = np.isfinite(sub.min(0)) & (n_win > n_min) & (n_win < n_max)
        cols = np.arange(buckets)[ok]
        return (*(at[k][idx[win[ok]], cols] for k in ("C", "N", "D")), sub.min(0)[ok])

    c, n, d, best_loss = winners(np.arange(len(runs)))
    slopes = _slopes(c, n, d)
    if slopes is None:
        return (
            f"the envelope has {len(c)} FLOP buckets won by a size inside the sampled range and "
            f"{np.unique(n).size} such size(s): needs {MIN_BUCKETS} buckets and 2 sizes"
        )
    rng = np.random.default_rng(seed)
    boot = [_slopes(*winners(rng.integers(0, len(runs), len(runs)))[:3]) for _ in range(n_boot)]
    b = np.array([x for x in boot if x is not None] or [(np.nan, np.nan)])
    points = pd.DataFrame({"C": c, "N": n, "D": d, "loss": best_loss})
    return Envelope(
        points,
        slopes[0],
        tuple(np.percentile(b[:, 0], [2.5, 97.5])),
        slopes[1],
        tuple(np.percentile(b[:, 1], [2.5, 97.5])),
    )
