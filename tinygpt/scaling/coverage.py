"""What a nominal 95 % interval is worth: synthetic studies drawn from a known law and a known
noise model, fitted as the analysis fits them, counted against the truth (benchmarks/coverage.py
prints it; tests/test_coverage.py asserts it for the defaults).

A study has the shape of a real one — its (N, D, seed) rows — and losses drawn from a law
(``truth``, a fitted form) times log-normal seed noise of std σ, of which the share ``shared`` of
the variance is one draw per job (size and seed: a WSD trunk's branches carry its luck). The
largest size is held out, as ``fit.holdout=largest`` does; each study is fitted with each
bootstrap unit and every interval the forms view prints is checked: a = d ln N_opt / d ln C at
the largest compute, N_opt there, the band for each held-out measured mean, and the true law
inside that band. ``isoflop_rows`` does the same for the IsoFLOP valleys and the envelope on
single-seed IsoFLOP grids (``grid_study``) from the Epoch AI replication's Chinchilla law.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.scaling.allocation.envelope import cooled_envelope
from tinygpt.scaling.allocation.isoflop import isoflop
from tinygpt.scaling.fit.noise import between_seeds, job_share
from tinygpt.scaling.laws.forms import FormFit, fit_form
from tinygpt.scaling.laws.law import resampling

# The Epoch AI replication's fit of Chinchilla's data (shared/scaling-data/README.md).
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.34781, "beta": 0.36585}


@dataclass
class Rows:
    """One bootstrap unit's counts over the studies."""

    unit: str
    studies: int = 0
    a_hits: int = 0
    n_opt_hits: int = 0
    band_hits: int = 0
    law_hits: int = 0
    points: int = 0
    a_widths: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "unit": self.unit,
            "studies": self.studies,
            "a_ci_coverage": self.a_hits / self.studies,
            "a_ci_median_width": float(np.median(self.a_widths)),
            "n_opt_ci_coverage": self.n_opt_hits / self.studies,
            "held_out_means_in_band": self.band_hits / self.points,
            "true_law_in_band": self.law_hits / self.points,
        }


def draw(
    truth: FormFit, design: pd.DataFrame, sigma: float, shared: float, rng: np.random.Generator
) -> pd.DataFrame:
    """``design``'s rows (N, D, seed) with losses from ``truth`` and the noise model."""
    job = design["N"].astype(str) + "|" + design["seed"].astype(str)
    labels, index = np.unique(job, return_inverse=True)
    z = np.sqrt(shared) * rng.standard_normal(len(labels))[index] + np.sqrt(
        1 - shared
    ) * rng.standard_normal(len(design))
    return design.assign(loss=truth.predict(design["N"], design["D"]) * np.exp(sigma * z))


def measure(
    truth: FormFit,
    design: pd.DataFrame,
    sigma: float,
    shared: float,
    studies: int,
    units: tuple[str, ...] = ("run", "job", "noise"),
    bootstrap: int = 200,
    seed: int = 0,
) -> list[Rows]:
    """Each unit's coverage of the truth over ``studies`` studies (the same studies for every
    unit, so the units differ only in how they draw)."""
    rng = np.random.default_rng(seed)
    largest = design["N"].max()
    fit_rows = ~np.isclose(design["N"], largest)
    c_max = float((6 * design["N"] * design["D"])[fit_rows].max())
    true_a = float(truth.allocation(c_max)[0])
    true_n = truth.n_opt(c_max)
    out = {u: Rows(u) for u in units}
    for i in range(studies):
        table = draw(truth, design, sigma, shared, rng)
        rows, held = table[fit_rows], table[~fit_rows]
        means = held.groupby("D")["loss"].agg(["mean", "size"])
        D = means.index.to_numpy(float)
        N = np.full(len(D), largest)
        for unit in units:
            fit = fit_form(
                truth.form.name, rows["N"], rows["D"], rows["loss"], bootstrap, seed + i,
                **resampling(rows, unit),
            )  # fmt: skip
            r = out[unit]
            r.studies += 1
            a = fit.allocation(c_max, fit.boot)
            a = a[np.isfinite(a)]
            lo, hi = np.percentile(a, [2.5, 97.5]) if a.size else (np.nan, np.nan)
            r.a_hits += int(lo <= true_a <= hi)
            r.a_widths.append(hi - lo)
            ln_n = fit._ln_n_opt(c_max, fit.boot)
            ln_n = ln_n[np.isfinite(ln_n)]
            if ln_n.size:
                n_lo, n_hi = np.exp(np.percentile(ln_n, [2.5, 97.5]))
                r.n_opt_hits += int(n_lo <= true_n <= n_hi)
            b_lo, b_hi = fit.band(N, D, means["size"].to_numpy())
            measured = means["mean"].to_numpy()
            r.band_hits += int(((measured >= b_lo) & (measured <= b_hi)).sum())
            t = truth.predict(N, D)
            r.law_hits += int(((t >= b_lo) & (t <= b_hi)).sum())
            r.points += len(D)
    return list(out.values())


def main_job_noise(t: pd.DataFrame) -> tuple[float, float]:
    """A stored main job's seed noise: σ of log loss and the share a job's runs have in common."""
    y = np.log(t["loss"].to_numpy())
    points = t[["N", "D"]].to_numpy(float)
    return float(between_seeds(points, y)), job_share(points, t[["N", "seed"]].to_numpy(float), y)


def grid_study(rng: np.random.Generator, sigma: float) -> pd.DataFrame:
    p = EPOCH
    a = p["beta"] / (p["alpha"] + p["beta"])
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    rows = []
    ladder = 1e7 * 1.4 ** np.arange(40)  # the sizes a study trains, shared by its budgets
    for c in 1e18 * 2.0 ** np.arange(12):
        n_opt, f = G * (c / 6) ** a, rng.uniform(2.5, 8)  # 6-13 sizes about the optimum
        for n in ladder[(ladder > n_opt / f) & (ladder < n_opt * f)]:
            d = c / (6 * n)
            loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
            rows.append({"N": n, "D": d, "C": c, "C_budget": c, "seed": 1,
                         "loss": loss * np.exp(rng.normal(0, sigma))})  # fmt: skip
    return pd.DataFrame(rows)


def isoflop_rows(studies: int, sigma: float, n_boot: int) -> dict[str, dict[str, float]]:
    a_true = EPOCH["beta"] / (EPOCH["alpha"] + EPOCH["beta"])
    rng = np.random.default_rng(7)
    found: dict[str, list[tuple[float, float, float]]] = {"isoflop": [], "envelope": []}
    for i in range(studies):
        t = grid_study(rng, sigma)
        view = isoflop(t, n_boot=n_boot, seed=i)
        found["isoflop"].append((view.N_opt.exponent, *view.N_opt.ci95))
        env = cooled_envelope(t, n_boot=n_boot, seed=i, sigma=view.noise.sigma)
        found["envelope"].append((env.n_exponent, *env.n_ci95))
    out = {}
    for name, values in found.items():
        v = np.array(values)
        out[name] = {
            "studies": studies,
            "a_true": a_true,
            "mean_error": float((v[:, 0] - a_true).mean()),
            "mean_abs_error": float(np.abs(v[:, 0] - a_true).mean()),
            "a_ci_coverage": float(((v[:, 1] <= a_true) & (a_true <= v[:, 2])).mean()),
            "a_ci_median_width": float(np.median(v[:, 2] - v[:, 1])),
        }
    return out


def main_job_design(path: Path) -> pd.DataFrame:
    """A stored main job's runs (benchmarks/results/main_job_losses_*.csv) as N (total), D,
    seed and loss."""
    raw = pd.read_csv(path)
    return pd.DataFrame({"N": raw["N_total"].astype(float), "D": raw["D"].astype(float),
                         "seed": raw["seed"], "loss": raw["loss"]})  # fmt: skip
