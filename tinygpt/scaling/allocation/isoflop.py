"""IsoFLOP profiles: Chinchilla's approach 2 (Hoffmann et al. 2022), with bootstrap CIs.

At a fixed compute budget C, loss against log N is a valley: small models are under-sized, large
ones under-trained. A parabola in log N (and one in log D) per budget gives its bottom, N_opt(C)
and D_opt(C); a power law through the bottoms, N_opt = k·C^a and D_opt = k'·C^b, is the
compute-optimal frontier. Runs are resampled within each budget (with replacement) to give each
bottom and each exponent a 95 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.scaling.interval import as_json

BUDGET_RTOL = 0.01  # runs whose C agree within 1 % share a budget
MIN_SIZES = 3
MIN_BUDGETS = 3


def compute_groups(table: pd.DataFrame) -> pd.Series:
    """Each run's compute budget: the one it recorded (``C_budget``), else C within 1 %."""
    if "C_budget" in table and table["C_budget"].notna().all():
        return table["C_budget"].astype(float)
    c = table["C"].to_numpy(float)
    labels = np.empty(len(c))
    order = np.argsort(c)
    start = 0
    for i in range(1, len(c) + 1):
        if i == len(c) or c[order[i]] > c[order[start]] * (1 + BUDGET_RTOL):
            members = order[start:i]
            labels[members] = c[members].mean()
            start = i
    return pd.Series(labels, index=table.index)


@dataclass
class Valley:
    """One compute budget's profile: loss ~ q2·x² + q1·x + q0 with x = ln N (and ln D)."""

    C: float
    sizes: int
    runs: int
    N_opt: float = float("nan")
    N_ci: tuple[float, float] = (float("nan"), float("nan"))
    D_opt: float = float("nan")
    D_ci: tuple[float, float] = (float("nan"), float("nan"))
    loss_min: float = float("nan")
    quadratic: tuple[float, float, float] = (float("nan"),) * 3
    note: str | None = None  # why this budget's bottom is not on the frontier
    boot_n: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_d: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def usable(self) -> bool:
        return self.note is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "sizes": self.sizes,
            "runs": self.runs,
            "N_opt": self.N_opt,
            "N_opt_ci95": as_json(*self.N_ci),
            "D_opt": self.D_opt,
            "D_opt_ci95": as_json(*self.D_ci),
            "loss_min": self.loss_min,
            "quadratic_ln_N": list(self.quadratic),
            "note": self.note,
        }


@dataclass
class Frontier:
    """``value = coefficient · C^exponent`` through the budgets' bottoms."""

    coefficient: float
    exponent: float
    ci95: tuple[float, float]
    boot: np.ndarray = field(repr=False)

    def at(self, c: np.ndarray) -> np.ndarray:
        return self.coefficient * np.asarray(c, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, Any]:
        return {
            "coefficient": self.coefficient,
            "exponent": self.exponent,
            "ci95": as_json(*self.ci95),
        }


@dataclass
class IsoflopView:
    valleys: list[Valley]
    N_opt: Frontier | None
    D_opt: Frontier | None
    table: pd.DataFrame  # the runs with their budget in column "budget"

    def to_dict(self) -> dict[str, Any]:
        return {
            "budgets": [v.to_dict() for v in self.valleys],
            "N_opt": self.N_opt.to_dict() if self.N_opt else None,
            "D_opt": self.D_opt.to_dict() if self.D_opt else None,
        }


def _bottom(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """(x*, y*, coefficients) of the least-squares parabola, None when it opens downward."""
    q = np.polyfit(x, y, 2)
    if not q[0] > 0:
        return None
    xs = -q[1] / (2 * q[0])
    return xs, float(np.polyval(q, xs)), q


def _bootstrap_bottoms(
    x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    out = np.full(n, np.nan)
    for r in range(n):
        i = rng.integers(0, len(x), len(x))
        if np.unique(x[i]).size < MIN_SIZES:
            continue
        found = _bottom(x[i], y[i])
        if found is not None:
            out[r] = found[0]
    return out


def valley(rows: pd.DataFrame, c: float, n_boot: int, rng: np.random.Generator) -> Valley:
    sizes = rows["N"].nunique()
    v = Valley(C=c, sizes=sizes, runs=len(rows))
    if sizes < MIN_SIZES:
        v.note = f"only {sizes} model size(s) at this budget (a parabola needs {MIN_SIZES})"
        return v
    y = rows["loss"].to_numpy(float)
    for var in ("N", "D"):
        x = np.log(rows[var].to_numpy(float))
        found = _bottom(x, y)
        if found is None:
            v.note = (
                f"loss against log {var} bends downward: the minimum is outside the sampled "
                "sizes; add smaller and larger models at this budget"
            )
            return v
        xs, ys, q = found
        boot = _bootstrap_bottoms(x, y, n_boot, rng)
        ci = (
            tuple(np.exp(np.nanpercentile(boot, [2.5, 97.5])))
            if np.isfinite(boot).any()
            else (float("nan"),) * 2
        )
        if var == "N":
            v.N_opt, v.N_ci, v.loss_min, v.quadratic, v.boot_n = np.exp(xs), ci, ys, tuple(q), boot
        else:
            v.D_opt, v.D_ci, v.boot_d = np.exp(xs), ci, boot
        if v.note is None and not x.min() <= xs <= x.max():
            v.note = (
                f"the parabola's minimum in {var} ({np.exp(xs):,.0f}) lies outside the "
                f"sampled range [{np.exp(x.min()):,.0f}, {np.exp(x.max()):,.0f}]: not "
                "extrapolated onto the frontier"
            )
    return v


def _frontier(cs: np.ndarray, log_opt: np.ndarray, boot: np.ndarray) -> Frontier:
    """Least squares of ln opt on ln C; the exponent's CI from the per-budget bootstrap rows."""
    lc = np.log(cs)
    slope, intercept = np.polyfit(lc, log_opt, 1)
    ok = np.isfinite(boot).all(0)
    slopes = np.array([np.polyfit(lc, boot[:, r], 1)[0] for r in np.flatnonzero(ok)])
    ci = tuple(np.percentile(slopes, [2.5, 97.5])) if slopes.size else (float("nan"),) * 2
    return Frontier(float(np.exp(intercept)), float(slope), ci, slopes)


def isoflop(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> IsoflopView | str:
    """The IsoFLOP view of ``table``, or why the runs do not support one."""
    rows = table.assign(budget=compute_groups(table))
    counts = rows.groupby("budget")["N"].nunique()
    if (counts >= MIN_SIZES).sum() < MIN_BUDGETS:
        return (
            f"needs {MIN_BUDGETS} compute budgets (C equal within 1 %) with {MIN_SIZES} model "
            f"sizes each; these runs have {int((counts >= MIN_SIZES).sum())}"
        )
    rng = np.random.default_rng(seed)
    valleys = [valley(g, float(c), n_boot, rng) for c, g in rows.groupby("budget")]
    good = [v for v in valleys if v.usable]
    fronts: dict[str, Frontier | None] = {"N": None, "D": None}
    if len(good) >= 2:
        cs = np.array([v.C for v in good])
        fronts["N"] = _frontier(
            cs, np.log([v.N_opt for v in good]), np.array([v.boot_n for v in good])
        )
        fronts["D"] = _frontier(
            cs, np.log([v.D_opt for v in good]), np.array([v.boot_d for v in good])
        )
    return IsoflopView(valleys, fronts["N"], fronts["D"], rows)
