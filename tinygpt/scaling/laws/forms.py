"""Laws of L(N, D) as a choice: the additive form and three with an N–D interaction.

Every form is a prediction of log L from (n, d) = (ln N, ln D) in unconstrained parameters,
fitted by one machinery: the sum of Huber(δ) losses of log residuals, minimised by the batched
BFGS of ``tinygpt.scaling.fit.batched`` from a grid of starts (gradients written out, checked
against torch autograd in the tests), bootstrap
refits resampling runs, and the compute-optimal allocation found numerically on the form itself
(N_opt(C) = argmin_N L(N, C/6N) on a grid in ln N, and a = d ln N_opt / d ln C at the compute
asked for). ``../shared/laws-literature.md`` summarises the forms and where they come from.

- ``chinchilla``: E + A/N^α + B/D^β (Hoffmann et al. 2022): no interaction.
- ``kaplan_q``: E + (A·N^−α + B·D^−β)^q (Kaplan et al. 2020 with E; q < 1 lets the terms
  interact).
- ``farseer_lite``: E + A·N^−α + B·(N/N̄)^κ·D^−(β₀ + β₁·ln(N/N̄)) (a first-order Farseer, Li et
  al. 2025: the D exponent and coefficient move with N; N̄ the geometric mean of the fitted N).
- ``translog``: ln(L − E) quadratic in (ln N, ln D) with the cross term c₅·ln N·ln D.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.fit.batched import (
    HUBER_DELTA,
    Problem,
    batched_bfgs,
    grid_starts,
    huber,
    resample_counts,
)
from tinygpt.scaling.fit.noise import Noise, between_seeds, parametric_draws
from tinygpt.scaling.interval import as_json
from tinygpt.scaling.names import FORMS


def _lse(*terms: torch.Tensor) -> torch.Tensor:
    """log Σ exp(terms), elementwise. Written out: torch.logsumexp over a stacked axis of 2-3
    was 0.7 ms a call here. The shift m carries no gradient (it cancels)."""
    terms = torch.broadcast_tensors(*terms)
    m = terms[0].detach()
    for t in terms[1:]:
        m = torch.maximum(m, t.detach())
    return m + torch.log(sum(torch.exp(t - m) for t in terms))


class Form:
    """A form of L(N, D): its parameter names and formula, log L̂(θ; n, d) for a batch of θ (in
    torch, the definition predictions and bands read) and with its Jacobian (in numpy, what the
    fits minimise with; the tests hold it to the torch one's autograd), and its start grid.
    Each form is one subclass below; ``FORM_SPECS`` is the list of them."""

    name: str
    names: tuple[str, ...]
    formula: str

    def log_pred(self, theta: torch.Tensor, n: torch.Tensor, d: torch.Tensor, centre: float):
        """(B, m) log L̂ for θ (B, p) at m points; ``centre`` = mean ln N of the fitted runs."""
        raise NotImplementedError

    def log_pred_and_jacobian(
        self, t: list[np.ndarray], n: np.ndarray, d: np.ndarray, centre: float
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """log L̂ and its derivative in each of θ's columns ``t`` (each (B, 1)), at (1, m)."""
        raise NotImplementedError

    def grid(self) -> list[list[float]]:
        """Each parameter's start values; the starts are their product."""
        raise NotImplementedError

    def natural(self, theta: np.ndarray) -> dict[str, float]:
        """θ as the form's printed parameters (A, E, q from their logs)."""
        out = {}
        for name, v in zip(self.names, theta, strict=True):
            if name in ("A", "B", "E", "q"):
                out[name] = float(np.exp(v))
            else:
                out[name] = float(v)
        return out

    def starts(self) -> np.ndarray:
        return np.array(list(itertools.product(*self.grid())), dtype=np.float64)


# Every form's log-scale of E starts here.
E_STARTS = [-1.0, 0.0, 1.0]


class Chinchilla(Form):
    """Hoffmann et al.'s additive form, in tinygpt.scaling.fit.batched.Problem's order."""

    name = "chinchilla"
    names = ("A", "B", "alpha", "beta", "E")
    formula = "E + A/N^alpha + B/D^beta"

    def log_pred(self, theta, n, d, centre):
        a, b, alpha, beta, e = _columns(theta)
        return _lse(a - alpha * n, b - beta * d, e)

    def log_pred_and_jacobian(self, t, n, d, centre):
        a, b, alpha, beta, e = t
        y, (w1, w2, we) = _lse_np(a - alpha * n, b - beta * d, e)
        return y, [w1, w2, -w1 * n, -w2 * d, we]

    def starts(self) -> np.ndarray:
        return grid_starts(2, True)  # the replication's 4,500 starts


class KaplanQ(Form):
    name = "kaplan_q"
    names = ("A", "B", "E", "alpha", "beta", "q")
    formula = "E + (A/N^alpha + B/D^beta)^q"

    def log_pred(self, theta, n, d, centre):
        a, b, e, alpha, beta, log_q = _columns(theta)
        return _lse(e, torch.exp(log_q) * _lse(a - alpha * n, b - beta * d))

    def log_pred_and_jacobian(self, t, n, d, centre):
        a, b, e, alpha, beta, log_q = t
        u, (s1, s2) = _lse_np(a - alpha * n, b - beta * d)
        q = np.exp(log_q)
        y, (we, wu) = _lse_np(e, q * u)
        g = wu * q
        return y, [g * s1, g * s2, we, -g * s1 * n, -g * s2 * d, g * u]

    def grid(self) -> list[list[float]]:
        return [[0.0, 8.0]] * 2 + [E_STARTS] + [[0.25, 0.5, 1.0]] * 2 + [np.log([0.3, 0.6, 1.0])]


class FarseerLite(Form):
    name = "farseer_lite"
    names = ("A", "B", "E", "alpha", "beta0", "beta1", "kappa")
    formula = "E + A/N^alpha + B (N/N̄)^kappa / D^(beta0 + beta1 ln(N/N̄))"

    def log_pred(self, theta, n, d, centre):
        a, b, e, alpha, beta0, beta1, kappa = _columns(theta)
        m = n - centre
        return _lse(e, a - alpha * n, b + kappa * m - (beta0 + beta1 * m) * d)

    def log_pred_and_jacobian(self, t, n, d, centre):
        a, b, e, alpha, beta0, beta1, kappa = t
        m = n - centre
        y, (we, w1, w2) = _lse_np(e, a - alpha * n, b + kappa * m - (beta0 + beta1 * m) * d)
        return y, [w1, w2, we, -w1 * n, -w2 * d, -w2 * m * d, w2 * m]

    def grid(self) -> list[list[float]]:
        return [[0.0, 8.0]] * 2 + [E_STARTS, [0.2, 0.5], [0.2, 0.5], [-0.1, 0.1], [-0.5, 0.5]]


# The token axis is centred at a fixed 1M (ln 1e6) for the translog's conditioning.
D_CENTRE = float(np.log(1e6))


class Translog(Form):
    name = "translog"
    names = ("E", "c0", "c1", "c2", "c3", "c4", "c5")
    formula = "E + exp(c0 + c1 n + c2 d + c3 n² + c4 d² + c5 n d), n = ln(N/N̄), d = ln(D/1e6)"

    def log_pred(self, theta, n, d, centre):
        e, c0, c1, c2, c3, c4, c5 = _columns(theta)
        m, dd = n - centre, d - D_CENTRE
        return _lse(e, c0 + c1 * m + c2 * dd + c3 * m * m + c4 * dd * dd + c5 * m * dd)

    def log_pred_and_jacobian(self, t, n, d, centre):
        e, c0, c1, c2, c3, c4, c5 = t
        m, dd = n - centre, d - D_CENTRE
        poly = c0 + c1 * m + c2 * dd + c3 * m * m + c4 * dd * dd + c5 * m * dd
        y, (we, w) = _lse_np(e, poly)
        return y, [we, w, w * m, w * dd, w * m * m, w * dd * dd, w * m * dd]

    def grid(self) -> list[list[float]]:
        return [E_STARTS, [-1.0, 0.0, 1.0], [-0.5, -0.2], [-0.5, -0.2], [0.0], [0.0], [0.0]]


def _columns(theta):
    """θ (B, p) as its p columns, each (B, 1), to broadcast against (m,) points."""
    return [theta[:, i, None] for i in range(theta.shape[1])]


# The registry: every form of fit.forms, by name.
FORMS_LIST: tuple[Form, ...] = (Chinchilla(), KaplanQ(), FarseerLite(), Translog())
FORM_SPECS: dict[str, Form] = {f.name: f for f in FORMS_LIST}


def _lse_np(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log Σ exp(terms) and each term's softmax weight (its derivative), elementwise."""
    terms = np.broadcast_arrays(*terms)
    m = np.maximum.reduce(terms)
    exps = [np.exp(t - m) for t in terms]
    total = sum(exps)
    return m + np.log(total), [e / total for e in exps]


def log_pred_and_jacobian(
    form: Form, theta: np.ndarray, n: np.ndarray, d: np.ndarray, centre: float
) -> tuple[np.ndarray, np.ndarray]:
    """``form.log_pred`` in numpy with its Jacobian in θ: (B, m) and (B, m, p). Written out
    per form (every form is a log-sum-exp of terms linear in θ, once nested): a fit spent most
    of its time in autograd's bookkeeping over these small tensors."""
    y, cols = form.log_pred_and_jacobian(_columns(theta), n[None], d[None], centre)
    return y, np.stack(np.broadcast_arrays(*cols), axis=-1)


class FormProblem:
    """The Huber objective of a form on a table, in the interface ``batched_bfgs`` solves."""

    def __init__(
        self, form: Form, N: np.ndarray, D: np.ndarray, loss: np.ndarray, centre: float,
        delta: float = HUBER_DELTA,
    ) -> None:  # fmt: skip
        self.form, self.centre, self.delta = form, centre, delta
        self.n = np.log(np.asarray(N, dtype=np.float64))
        self.d = np.log(np.asarray(D, dtype=np.float64))
        self.log_y = np.log(np.asarray(loss, dtype=np.float64))

    def value_and_grad(
        self,
        theta: np.ndarray,
        weights: np.ndarray | None = None,
        targets: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objective (B,) and gradient (B, p); ``weights`` (B, m) count points (bootstrap),
        ``targets`` (B, m) replace the log losses per row (a parametric bootstrap's draws)."""
        y, jac = log_pred_and_jacobian(self.form, theta, self.n, self.d, self.centre)
        rho, psi = huber((self.log_y[None] if targets is None else targets) - y, self.delta)
        if weights is not None:
            rho, psi = rho * weights, psi * weights
        return rho.sum(1), -np.einsum("bm,bmp->bp", psi, jac)


@dataclass
class FormFit:
    """A form fitted to a table: θ, its bootstrap ensemble, and what it predicts."""

    form: Form
    theta: np.ndarray
    objective: float
    centre: float
    n_points: int
    boot: np.ndarray | None = None
    # The std of log loss between seeds of one configuration (pooled): what a measurement
    # carries besides the law, added to the bands of predictions of measured means.
    seed_sigma: float = 0.0
    starts: int = 0
    warnings: list[str] = field(default_factory=list)
    noise: Noise | None = None  # what a parametric bootstrap drew from (None: resampling)
    noise_share: float = 0.0  # … the share of it one job's runs drew together

    @property
    def params(self) -> dict[str, float]:
        return self.form.natural(self.theta)

    def log_predict(self, N: np.ndarray, D: np.ndarray, theta: np.ndarray | None = None):
        t = torch.tensor(np.atleast_2d(self.theta if theta is None else theta))
        n = torch.tensor(np.log(np.asarray(N, dtype=np.float64)))
        d = torch.tensor(np.log(np.asarray(D, dtype=np.float64)))
        with torch.no_grad():
            return self.form.log_pred(t, n, d, self.centre).numpy()

    def predict(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        return np.exp(self.log_predict(N, D)[0])

    def band(
        self, N: np.ndarray, D: np.ndarray, seeds: np.ndarray | int = 1, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the mean of ``seeds`` measurements should fall: the bootstrap spread of the
        law and the seeds' own scatter (σ/√seeds), added in quadrature in log space."""
        if self.boot is None:
            return None
        from scipy.stats import norm

        logs = self.log_predict(N, D, self.boot)
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(logs, [tail, 100 - tail], axis=0)
        centre = self.log_predict(N, D)[0]
        z = norm.ppf(1 - (1 - level) / 2)
        noise = z * self.seed_sigma / np.sqrt(np.asarray(seeds, dtype=np.float64))
        down = np.sqrt((centre - lo) ** 2 + noise**2)
        up = np.sqrt((hi - centre) ** 2 + noise**2)
        return np.exp(centre - down), np.exp(centre + up)

    def _ln_n_opt(self, c: float, thetas: np.ndarray) -> np.ndarray:
        """ln N_opt at compute ``c`` per row of ``thetas``: a grid in ln N (D = C/6N ≥ 100,
        N ≥ 100), refined by the parabola through the grid minimum and its neighbours."""
        n_grid = np.linspace(np.log(1e2), np.log(c / 6 / 1e2), 1200)
        N = np.exp(n_grid)
        logs = self.log_predict(N, c / (6 * N), thetas)  # (B, grid)
        raw = np.nanargmin(logs, axis=1)
        i = np.clip(raw, 1, len(n_grid) - 2)
        rows = np.arange(len(i))
        y0, y1, y2 = logs[rows, i - 1], logs[rows, i], logs[rows, i + 1]
        curvature = y0 - 2 * y1 + y2
        shift = np.where(curvature > 0, 0.5 * (y0 - y2) / np.where(curvature > 0, curvature, 1), 0)
        found = n_grid[i] + np.clip(shift, -1, 1) * (n_grid[1] - n_grid[0])
        # A minimum at the grid's edge is no optimum: the form wants N (or D) without bound.
        return np.where((raw == 0) | (raw == len(n_grid) - 1), np.nan, found)

    def allocation(self, c: float, theta: np.ndarray | None = None) -> np.ndarray:
        """a = d ln N_opt / d ln C at compute ``c`` (C = 6ND), for each row of ``theta``."""
        thetas = np.atleast_2d(self.theta if theta is None else theta)
        return (self._ln_n_opt(2 * c, thetas) - self._ln_n_opt(c / 2, thetas)) / np.log(4)

    def n_opt(self, c: float) -> float:
        return float(np.exp(self._ln_n_opt(c, np.atleast_2d(self.theta))[0]))


def fit_form(
    name: str,
    N: np.ndarray,
    D: np.ndarray,
    loss: np.ndarray,
    bootstrap: int = 200,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    starts: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    parametric: bool = False,
) -> FormFit:
    """Fit form ``name`` to runs (N, D, loss), with ``bootstrap`` refits resampling runs (or
    whole ``groups`` of them: a label per run) or, ``parametric``, refitting losses drawn from
    the fit and the noise model (``groups`` sharing part of it), from ``starts`` (θ rows;
    default: the form's own grid)."""
    if name not in FORM_SPECS:
        raise TinyGPTError(f"fit.forms: unknown form {name!r}: choose from {', '.join(FORMS)}")
    form = FORM_SPECS[name]
    N, D, loss = (np.asarray(v, dtype=np.float64) for v in (N, D, loss))
    if len(loss) <= len(form.names):
        raise TinyGPTError(
            f"{len(loss)} runs cannot determine the {len(form.names)} parameters of {name}: "
            "add runs or drop the form from fit.forms"
        )
    return _fit_form(form, N, D, loss, bootstrap, seed, delta, starts, groups, parametric)


def _fit_form(
    form: Form,
    N: np.ndarray,
    D: np.ndarray,
    loss: np.ndarray,
    bootstrap: int,
    seed: int,
    delta: float,
    starts: np.ndarray | None,
    groups: np.ndarray | None,
    parametric: bool = False,
) -> FormFit:
    centre = float(np.log(N).mean())
    problem: Any = FormProblem(form, N, D, loss, centre, delta)
    if form.name == "chinchilla":  # the same objective with analytic gradients, 10x faster
        problem = Problem(np.log(np.c_[N, D]), np.log(loss), True, delta)
    starts = form.starts() if starts is None else starts
    with np.errstate(all="ignore"):
        # The grid's rows stop early (300 iterations, a relative decrease of 1e-9); only the
        # best is polished to the strict tolerance, as tinygpt.scaling.fit.batched.fit does.
        theta, f, _ = batched_bfgs(problem, starts, max_iter=300, ftol=1e-9)
        best = int(np.nanargmin(np.where(np.isfinite(f), f, np.nan)))
        polished, f_best, _ = batched_bfgs(problem, theta[best][None])
    fitted = FormFit(form, polished[0], float(f_best[0]), centre, len(loss), starts=len(starts))
    fitted.seed_sigma = between_seeds(np.c_[N, D], np.log(loss)) or 0.0
    if bootstrap > 0:
        starts = np.broadcast_to(fitted.theta, (bootstrap, len(fitted.theta))).copy()
        counts = draws = None
        if parametric:
            y_hat = fitted.log_predict(N, D)[0]
            points = np.array([f"{n!r}|{d!r}" for n, d in zip(N, D, strict=True)])
            draws, fitted.noise, fitted.noise_share = parametric_draws(
                y_hat, np.log(loss), points, groups, len(fitted.theta), bootstrap, seed
            )
        else:
            counts = resample_counts(bootstrap, len(loss), seed, groups)
        with np.errstate(all="ignore"):
            boot, fb, _ = batched_bfgs(problem, starts, counts, max_iter=500, targets=draws)
        fitted.boot = boot[np.isfinite(fb)]
    return fitted


def to_dict(fit: FormFit, c_max: float) -> dict[str, Any]:
    """The fit for fit.json: parameters, their 95 % CIs, the allocation at ``c_max``."""
    out: dict[str, Any] = {
        "formula": fit.form.formula,
        "params": fit.params,
        "objective": fit.objective,
        "n_points": fit.n_points,
        "starts": fit.starts,
        "seed_sigma_log": fit.seed_sigma,
        "a_at_largest_compute": float(fit.allocation(c_max)[0]),
        "n_opt_at_largest_compute": fit.n_opt(c_max),
    }
    if fit.boot is not None and len(fit.boot):
        nat = np.array([list(fit.form.natural(t).values()) for t in fit.boot])
        # null where the refits never moved a parameter (at a bound): no interval.
        out["ci95"] = {
            k: as_json(np.percentile(nat[:, i], 2.5), np.percentile(nat[:, i], 97.5))
            for i, k in enumerate(fit.form.names)
        }
        a = fit.allocation(c_max, fit.boot)
        if np.isfinite(a).any():
            out["a_ci95"] = as_json(np.nanpercentile(a, 2.5), np.nanpercentile(a, 97.5))
        # Resamples whose compute-optimal N runs off the grid (no optimum at that compute).
        out["a_unbounded_share"] = float(np.mean(~np.isfinite(a)))
    return out
