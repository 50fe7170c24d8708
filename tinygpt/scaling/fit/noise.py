"""How much one run's loss scatters: the noise model a parametric bootstrap draws from.

A grid with one run per point cannot be resampled into an interval (each resample holds the same
few losses); what varies between reruns is the seed. Porian et al. (2024, analysis.py) therefore
draw each bootstrap profile as the measured losses plus noise from a seed-noise model. Here the
model is one number, σ: the std of a run's log loss about what its configuration would give on
average. Where runs carry seeds it is their pooled scatter; where they do not it is read off the
profiles themselves by a difference estimator (Gasser, Sargent & Engel 1986, with a cubic through
four neighbours in place of their chord through two), so the profile's smooth shape cancels. On a
single-seed grid that σ holds more than seed noise: whatever makes one size sit off the smooth
valley (its shape, its tuning) counts too, and a rerun with new seeds would not remove it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Noise:
    """σ of one run's log loss, and where it was read."""

    sigma: float
    source: str  # "seeds" (pooled scatter between seeds) or "neighbours" (difference estimator)


def _labels(point: np.ndarray) -> np.ndarray:
    """An integer per distinct point: ``point`` holds a label per run, or a row of values."""
    return np.unique(np.asarray(point), axis=0, return_inverse=True)[1].ravel()


def between_seeds(point: np.ndarray, log_loss: np.ndarray) -> float | None:
    """Pooled within-point std of log loss (``point``: a label or a row of values per run);
    None where no point has two runs."""
    keys = _labels(point)
    log_loss = np.asarray(log_loss, dtype=float)
    ss = dof = 0.0
    for k in np.unique(keys):
        y = log_loss[keys == k]
        if len(y) > 1:
            ss += float(((y - y.mean()) ** 2).sum())
            dof += len(y) - 1
    return float(np.sqrt(ss / dof)) if dof else None


def _lagrange(xs: np.ndarray, x: float) -> np.ndarray:
    """Weights w with Σ w_j·f(xs_j) = p(x), p the polynomial through the points ``xs``."""
    w = np.ones(len(xs))
    for j in range(len(xs)):
        others = np.delete(xs, j)
        w[j] = np.prod((x - others) / (xs[j] - others))
    return w


def between_neighbours(
    profiles: Iterable[tuple[np.ndarray, np.ndarray]], reach: int = 2
) -> float | None:
    """σ from each point's distance to the cubic through its two neighbours on either side
    (``reach``; one, a chord, where a profile is shorter), pooled over ``profiles`` of
    (x ascending, y): ε̃ = Σ w_j·y_j − y with E[ε̃²] = (1 + Σ w_j²)·σ² for independent noise
    on a profile smooth to that order. A valley's curvature biases the chord's estimate upward
    (several-fold on a coarse profile); the cubic's cancels it to third order."""
    terms: list[float] = []
    for x, y in profiles:
        k = reach if len(x) >= 2 * reach + 1 else 1
        for i in range(k, len(x) - k):
            idx = np.r_[i - k : i, i + 1 : i + k + 1]
            w = _lagrange(x[idx], x[i])
            terms.append(float(w @ y[idx] - y[i]) ** 2 / (1 + float(w @ w)))
    return float(np.sqrt(np.mean(terms))) if terms else None


def of_runs(x: np.ndarray, group: np.ndarray, loss: np.ndarray) -> Noise | None:
    """The study's noise model: the seeds' scatter where some (x, group) ran twice, else the
    scatter of each group's profile along ln x (mean log loss per x) about a smooth curve."""
    x, group = np.asarray(x, dtype=float), np.asarray(group, dtype=float)
    y = np.log(np.asarray(loss, dtype=float))
    seeds = between_seeds(np.c_[x, group], y)
    if seeds is not None:
        return Noise(seeds, "seeds")
    profiles = []
    for g in np.unique(group):
        mine = group == g
        xs, inverse = np.unique(x[mine], return_inverse=True)
        profiles.append((np.log(xs), np.bincount(inverse, y[mine]) / np.bincount(inverse)))
    found = between_neighbours(profiles)
    return Noise(found, "neighbours") if found is not None else None


def job_share(point: np.ndarray, job: np.ndarray, log_loss: np.ndarray) -> float:
    """The share of the seed variance one job's runs have in common (a WSD trunk's branches
    carry its luck): from each run's deviation e from its point's mean over seeds (points with
    two runs or more), Σ e_i·e_j over pairs of runs of one job at different points, over the
    same pairs' Σ (e_i² + e_j²)/2. Both sums shrink alike by (1 − 1/seeds), so the ratio needs
    no correction. 0 where no job has two such runs."""
    job = _labels(job)
    y = np.asarray(log_loss, dtype=float)
    p_index = _labels(point)
    counts = np.bincount(p_index)
    e = y - (np.bincount(p_index, y) / counts)[p_index]
    keep = counts[p_index] > 1
    cross = square = 0.0
    for j in np.unique(job[keep]):
        mine = e[keep & (job == j)]
        if len(mine) > 1:
            cross += float((mine.sum() ** 2 - (mine**2).sum()) / 2)
            square += float((len(mine) - 1) * (mine**2).sum() / 2)
    return float(np.clip(cross / square, 0.0, 1.0)) if square > 0 else 0.0


def parametric_draws(
    fitted: np.ndarray,
    log_loss: np.ndarray,
    point: np.ndarray,
    job: np.ndarray | None,
    n_params: int,
    n_boot: int,
    seed: int,
) -> tuple[np.ndarray, Noise, float]:
    """(n_boot, n) log losses drawn as the fitted law plus noise from the study's noise model:
    σ from the seeds' scatter at repeated ``point``s (else the fit's residuals, with its
    ``n_params`` counted off), of which the share ``job_share`` is one draw per ``job`` and the
    rest one per run. Also returns the model and the share."""
    y = np.asarray(log_loss, dtype=float)
    keys = _labels(point)
    sigma = between_seeds(keys, y)
    if sigma is not None:
        model = Noise(sigma, "seeds")
    else:
        resid = y - fitted
        model = Noise(float(np.sqrt((resid**2).sum() / max(len(y) - n_params, 1))), "residuals")
    share = job_share(keys, job, y) if job is not None else 0.0
    z = shared_normal(np.random.default_rng(seed), n_boot, job, share, len(y))
    return fitted[None, :] + model.sigma * z, model, share


def shared_normal(
    rng: np.random.Generator, draws: int, job: np.ndarray | None, share: float, n: int
) -> np.ndarray:
    """(draws, n) standard normals of which the share ``share`` of the variance is one draw per
    ``job`` label (None: every run its own)."""
    own = rng.standard_normal((draws, n))
    if job is None or share <= 0:
        return own
    index = _labels(job)
    common = rng.standard_normal((draws, index.max() + 1))[:, index]
    return np.sqrt(share) * common + np.sqrt(1 - share) * own
