"""IsoFLOP profiles: Chinchilla's approach 2 (Hoffmann et al. 2022), as Porian et al. (2024) read
them.

At a fixed compute budget C, loss against log N is a valley: small models are under-sized, large
ones under-trained. Each budget's profile (log loss against log N, seeds averaged) is
interpolated with an Akima spline on a fine grid and its lowest point is the budget's N_opt (and
likewise in log D); a bottom at the profile's edge is no optimum and stays off the frontier. One
parabola through a whole profile, as this module used to fit, is pulled by the sizes far from the
bottom (the valley is not symmetric in log N) and moved the exponent by up to 0.07 on a published
study (benchmarks/RESULTS.md, "IsoFLOP on a published study").

Intervals: each profile is redrawn ``n_boot`` times as its losses plus noise from the study's noise
model (tinygpt.scaling.fit.noise: σ from the seeds where runs carry them, else from the profiles'
own scatter about a smooth curve), each redrawn profile gives a bottom, and a bottom's std (floored
at a third of the sizes' spacing, since a bottom cannot be placed more finely than its grid
supports) weighs it in the fit of ln N_opt on ln C. The exponent's 95 % interval is the spread of
that weighted fit over the draws. Resampling runs, as before, cannot move a grid with one run per
(N, C) except by dropping sizes, which gave intervals both wrong and lopsided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import Akima1DInterpolator

from tinygpt.scaling.fit.noise import Noise, of_runs
from tinygpt.scaling.interval import as_json

BUDGET_RTOL = 0.01  # runs whose C agree within 1 % share a budget
MIN_SIZES = 3
MIN_BUDGETS = 3
INTERP = 25  # fine points per gap between sampled sizes (Porian et al.'s interp_num_multiplier)
MIN_STD = 0.33  # a bottom's std is at least this share of the sizes' mean log spacing


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
    """One compute budget's profile and its bottom in N and in D."""

    C: float
    sizes: int
    runs: int
    N_opt: float = float("nan")
    N_ci: tuple[float, float] = (float("nan"), float("nan"))
    N_std: float = float("nan")  # of ln N_opt over the noise draws (floored): its fit weight
    D_opt: float = float("nan")
    D_ci: tuple[float, float] = (float("nan"), float("nan"))
    D_std: float = float("nan")
    loss_min: float = float("nan")
    # The interpolated profile: ln N on the fine grid, and its ln loss (for the figure).
    curve: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.empty(0), np.empty(0)), repr=False
    )
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
            "ln_N_opt_std": self.N_std,
            "D_opt": self.D_opt,
            "D_opt_ci95": as_json(*self.D_ci),
            "loss_min": self.loss_min,
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
    noise: Noise | None = None  # what the intervals' draws were drawn from

    def to_dict(self) -> dict[str, Any]:
        return {
            "budgets": [v.to_dict() for v in self.valleys],
            "N_opt": self.N_opt.to_dict() if self.N_opt else None,
            "D_opt": self.D_opt.to_dict() if self.D_opt else None,
            "noise": {"sigma_log": self.noise.sigma, "from": self.noise.source}
            if self.noise
            else None,
        }


def _profile(rows: pd.DataFrame, var: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ln ``var`` ascending, the mean ln loss there, and how many runs it averages."""
    g = np.log(rows["loss"].astype(float)).groupby(rows[var].astype(float)).agg(["mean", "size"])
    return np.log(g.index.to_numpy(float)), g["mean"].to_numpy(), g["size"].to_numpy(float)


def _bottoms(x: np.ndarray, ys: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x*, y*) of each column of ``ys`` (n, B) through an Akima spline on ``fine``; nan where
    the lowest point is the grid's first or last (the profile falls off its sampled range)."""
    f = Akima1DInterpolator(x, ys, axis=0)(fine)
    i = np.nanargmin(f, axis=0)
    edge = (i == 0) | (i == len(fine) - 1)
    return np.where(edge, np.nan, fine[i]), np.where(edge, np.nan, f[i, np.arange(f.shape[1])])


def _edge_note(var: str, x: np.ndarray, low: bool) -> str:
    side, more = ("smallest", "smaller") if low else ("largest", "larger")
    return (
        f"the profile's lowest loss is at its {side} {var} ({np.exp(x[0 if low else -1]):,.0f}): "
        f"the optimum lies past the sizes run at this budget; add {more} models here"
    )


def valley(
    rows: pd.DataFrame, c: float, n_boot: int, rng: np.random.Generator, sigma: float = 0.0
) -> Valley:
    sizes = rows["N"].nunique()
    v = Valley(C=c, sizes=sizes, runs=len(rows))
    if sizes < MIN_SIZES:
        v.note = f"only {sizes} model size(s) at this budget (a valley needs {MIN_SIZES})"
        return v
    for var in ("N", "D"):
        x, y, k = _profile(rows, var)
        fine = np.linspace(x[0], x[-1], (len(x) - 1) * INTERP + 1)
        (xs,), (ys,) = _bottoms(x, y[:, None], fine)
        if not np.isfinite(xs):
            v.note = _edge_note(var, x, low=bool(np.argmin(y) == 0))
            return v
        draws = y[:, None] + sigma / np.sqrt(k)[:, None] * rng.standard_normal((len(x), n_boot))
        boot = _bottoms(x, draws, fine)[0]
        ok = np.isfinite(boot)
        if n_boot and ok.sum() < n_boot / 2:
            v.note = (
                f"in {1 - ok.mean():.0%} of the noise draws the bottom in {var} falls at the "
                "profile's edge: add sizes beyond the bottom at this budget"
            )
            return v
        std = float(np.std(boot[ok])) if ok.any() else 0.0
        std = max(std, MIN_STD * float(np.mean(np.diff(x)))) * n_boot / max(ok.sum(), 1)
        ci = tuple(np.exp(np.percentile(boot[ok], [2.5, 97.5]))) if ok.any() else (np.nan,) * 2
        # Draws whose bottom fell off the edge are refilled from the others, so that every
        # column of the frontier's draws has a bottom at every budget.
        if ok.any() and not ok.all():
            boot[~ok] = rng.choice(boot[ok], int((~ok).sum()))
        if var == "N":
            v.N_opt, v.N_ci, v.N_std, v.loss_min = np.exp(xs), ci, std, np.exp(ys)
            v.curve, v.boot_n = (fine, Akima1DInterpolator(x, y)(fine)), boot
        else:
            v.D_opt, v.D_ci, v.D_std, v.boot_d = np.exp(xs), ci, std, boot
    return v


def _frontier(cs: np.ndarray, log_opt: np.ndarray, std: np.ndarray, boot: np.ndarray) -> Frontier:
    """Weighted least squares (1/std²) of ln opt on ln C; the exponent's CI from the same fit
    through each column of the budgets' noise draws ``boot`` (budgets × draws)."""
    lc = np.log(cs)
    w = 1 / np.asarray(std) ** 2
    slope, intercept = np.polyfit(lc, log_opt, 1, w=np.sqrt(w))
    if boot.shape[1]:
        X = np.c_[lc, np.ones_like(lc)] * np.sqrt(w)[:, None]
        slopes = np.linalg.lstsq(X, boot * np.sqrt(w)[:, None], rcond=None)[0][0]
        ci = tuple(np.percentile(slopes, [2.5, 97.5]))
    else:
        slopes, ci = np.empty(0), (float("nan"),) * 2
    return Frontier(float(np.exp(intercept)), float(slope), ci, slopes)


def isoflop(
    table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, noise: float | None = None
) -> IsoflopView | str:
    """The IsoFLOP view of ``table``, or why the runs do not support one. ``noise``: σ of a run's
    log loss for the intervals' draws (default: read from the runs,
    ``tinygpt.scaling.fit.noise.of_runs``)."""
    rows = table.assign(budget=compute_groups(table))
    counts = rows.groupby("budget")["N"].nunique()
    if (counts >= MIN_SIZES).sum() < MIN_BUDGETS:
        return (
            f"needs {MIN_BUDGETS} compute budgets (C equal within 1 %) with {MIN_SIZES} model "
            f"sizes each; these runs have {int((counts >= MIN_SIZES).sum())}"
        )
    model = (
        Noise(noise, "setting isoflop.noise")
        if noise is not None
        else of_runs(rows["N"], rows["budget"], rows["loss"])
    )
    sigma = model.sigma if model else 0.0
    rng = np.random.default_rng(seed)
    valleys = [valley(g, float(c), n_boot, rng, sigma) for c, g in rows.groupby("budget")]
    good = [v for v in valleys if v.usable]
    fronts: dict[str, Frontier | None] = {"N": None, "D": None}
    if len(good) >= 2:
        cs = np.array([v.C for v in good])
        fronts["N"] = _frontier(
            cs, np.log([v.N_opt for v in good]), np.array([v.N_std for v in good]),
            np.array([v.boot_n for v in good]),
        )  # fmt: skip
        fronts["D"] = _frontier(
            cs, np.log([v.D_opt for v in good]), np.array([v.D_std for v in good]),
            np.array([v.boot_d for v in good]),
        )  # fmt: skip
    return IsoflopView(valleys, fronts["N"], fronts["D"], rows, model)
