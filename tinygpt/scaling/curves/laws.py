"""Whole loss curves under any LR schedule: laws of L(step) given the LR at every step.

Two laws, each fitted on a few curves and used to predict the curves of other schedules:

- the **multi-power law** (Luo et al. 2025, arXiv:2503.12811; thu-yao-01-luo/MultiPowerLaw)
  ``L(t) = L0 + A·S1(t)^−α − B·Σ_k (η_{k−1} − η_k)·G(η_k^−γ·S_k(t))``,
  ``G(x) = 1 − (C·x + 1)^−β``, ``S1(t) = Σ_{τ≤t} η_τ`` (the warmup's area included, as the
  paper's S_W), ``S_k(t) = Σ_{τ=k..t} η_τ``;
- **Tissue et al. 2024** ("Scaling Law with Learning Rate Annealing", arXiv:2408.11029)
  ``L(t) = L0 + A·S1(t)^−α − C·S2(t)``, ``S2(t) = Σ_{i≤t} m_i``,
  ``m_i = λ·m_{i−1} + (η_{i−1} − η_i)``, counting only the LR's moves after the warmup (the
  paper leaves the warmup's rise out of the annealing area); λ is profiled over a grid.

Conventions (those of the MultiPowerLaw repository): ``lr[t]`` is the LR of the t-th update
(t = 1 … T), ``lr[0] = 0`` is the LR before training, and the loss at step t is measured after
t updates. Both laws minimise the sum of Huber(δ = 1e-3) losses of log-residuals over the
fitted curves' points (gradients by torch autograd): the multi-power law with the MultiPowerLaw
repository's recipe (a grid start, then at most 200 AdamW steps) or by L-BFGS to the optimum
(``optimizer="lbfgs"``), Tissue's four parameters by L-BFGS. Bands: a moving-block bootstrap of
each fitted curve's log-residuals (blocks keep their autocorrelation), refitted by the same
recipe; each refit's prediction times each fitted point's exp(residual), and the 2.5–97.5 %
percentiles of that mixture: a band for a measured point.

Over 400 lines on purpose: both laws, their shared solvers and the block bootstrap read as one
argument (a law is only as good as the recipe that fits it), as nanoGPT keeps its model whole.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.names import CURVE_LAWS, CURVE_OPTIMIZERS
from tinygpt.scaling.table.curves import Curve

HUBER_DELTA = 1e-3
LAWS = CURVE_LAWS
# The multi-power law's sum over k runs over blocks of up to this many consecutive steps whose
# LR moves the same way, each at its gap-weighted centre: exact to ~1e-6 of the loss on the
# published curves (tests/test_curves.py), and 16× less work on a cosine decay.
BLOCK = 16
TISSUE_LAMBDAS = (0.99, 0.995, 0.999, 0.9995)


def huber(r: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


# ---------------------------------------------------------------------------------------------
# The laws: precomputed per-curve features, a prediction from log-parameters


class _MPLFeatures:
    """What the multi-power law needs of a curve, as tensors: S1 at each point, and for every
    block of LR moves its summed gap, its LR and the LR area from it to each point."""

    def __init__(self, curve: Curve, block: int = BLOCK) -> None:
        lr, steps = curve.lr, curve.steps
        S = np.cumsum(lr)
        gap = np.diff(lr)  # gap[k−1] = η_k − η_{k−1}, k = 1 … T
        ks = np.nonzero(gap)[0] + 1
        # Blocks: consecutive k, one sign, at most `block` long, never across an evaluated step
        # (so a block lies wholly before or after each point).
        cuts = np.ones(len(ks), dtype=bool)
        if len(ks):
            cont = (np.diff(ks) == 1) & (np.sign(gap[ks[1:] - 1]) == np.sign(gap[ks[:-1] - 1]))
            cont &= ~np.isin(ks[1:] - 1, steps)
            cuts[1:] = ~cont
            run_id = np.cumsum(cuts) - 1
            pos = np.arange(len(ks)) - np.flatnonzero(cuts)[run_id]
            cuts |= pos % block == 0
        bid = np.cumsum(cuts) - 1
        nb = int(bid[-1]) + 1 if len(ks) else 0
        g, w = gap[ks - 1], np.abs(gap[ks - 1])
        wsum = np.bincount(bid, w, nb)
        eta = np.bincount(bid, w * lr[ks], nb) / wsum
        s_before = np.bincount(bid, w * S[ks - 1], nb) / wsum  # Σ_{τ<k} η_τ at the centre
        last = np.zeros(nb, dtype=np.int64)
        np.maximum.at(last, bid, ks)
        inside = last[None, :] <= steps[:, None]
        area = np.where(inside, S[steps][:, None] - s_before[None, :], 0.0)
        self.S1 = torch.tensor(S[steps])
        self.eta = torch.tensor(eta)
        self.area = torch.tensor(area)
        self.gap = torch.tensor(np.bincount(bid, g, nb))


class Form:
    """A curve law: parameter names, starting points and a prediction from log-parameters."""

    name: str
    names: tuple[str, ...]

    def features(self, curve: Curve, hyper: float | None) -> Any:
        raise NotImplementedError

    def predict(self, p: torch.Tensor, feats: Any) -> torch.Tensor:
        """The loss at the curve's points for the natural parameters ``p``."""
        raise NotImplementedError

    def hypers(self) -> tuple[float | None, ...]:
        """Values of a parameter profiled on a grid rather than fitted (Tissue's λ)."""
        return (None,)

    def starts(self, curves: list[Curve]) -> list[np.ndarray]:
        raise NotImplementedError

    def formula(self, p: dict[str, float]) -> str:
        raise NotImplementedError


def _power_start(curves: list[Curve]) -> tuple[float, float, np.ndarray]:
    """The MultiPowerLaw repository's initialisation: a line through log(L − min L + 0.01)
    against log S1 gives A and α; L0 near the lowest loss."""
    lo = min(c.loss.min() for c in curves)
    xs = np.concatenate([np.log(np.cumsum(c.lr)[c.steps]) for c in curves])
    ys = np.concatenate([np.log(c.loss - lo + 0.01) for c in curves])
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(np.exp(intercept)), float(-slope), np.linspace(lo - 0.2, lo + 0.2, 5)


class MultiPower(Form):
    name = "mpl"
    names = ("L0", "A", "alpha", "B", "C", "beta", "gamma")

    def __init__(self, block: int = BLOCK) -> None:
        self.block = block

    def features(self, curve: Curve, hyper: float | None) -> _MPLFeatures:
        return _MPLFeatures(curve, self.block)

    def predict(self, p: torch.Tensor, f: _MPLFeatures) -> torch.Tensor:
        L0, A, alpha, B, C, beta, gamma = p
        x = C * f.eta.pow(-gamma) * f.area
        drop = (f.gap * (1 - (1 + x).pow(-beta))).sum(-1)
        return L0 + A * f.S1.pow(-alpha) + B * drop

    def starts(self, curves: list[Curve]) -> list[np.ndarray]:
        """The repository's two stages: a grid of 135 starts for the 4-parameter proxy
        L0 + A·S1^−α − B·(η_peak − η_t), its best kept; then C = 1, β = γ = 0.5."""
        A0, alpha0, L0s = _power_start(curves)
        peak = max(c.lr.max() for c in curves)
        s1 = [np.cumsum(c.lr)[c.steps] for c in curves]
        drop = [peak - c.lr[c.steps] for c in curves]

        def proxy(p: np.ndarray) -> float:
            L0, A, alpha, B = p
            out = 0.0
            for c, s, d in zip(curves, s1, drop, strict=True):
                pred = L0 + A * s ** (-alpha) - B * d
                if (pred <= 0).any():
                    return 1e10
                r = np.log(c.loss) - np.log(pred)
                a = np.abs(r)
                out += np.where(
                    a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)
                ).sum()
            return out

        grid = itertools.product(
            L0s,
            np.linspace(A0 - 0.1, A0 + 0.1, 3),
            np.linspace(alpha0 - 0.1, alpha0 + 0.1, 3),
            np.linspace(100, 1000, 3),
        )
        best, best_fun = None, np.inf
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # far starts overflow by design
            for p0 in grid:
                res = minimize(proxy, p0, method="L-BFGS-B", bounds=[(1e-6, None)] * 4)
                if res.fun < best_fun:
                    best, best_fun = res.x, res.fun
        L0, A, alpha, B = np.maximum(best, 1e-6)
        return [np.array([L0, A, alpha, B, 1.0, 0.5, 0.5])]

    def formula(self, p: dict[str, float]) -> str:
        return (
            f"L(t) = {p['L0']:.4f} + {p['A']:.4g}·S1^-{p['alpha']:.4f} − {p['B']:.4g}·Σ Δη·"
            f"[1 − (1 + {p['C']:.4g}·η^-{p['gamma']:.4f}·S_k)^-{p['beta']:.4f}]"
        )


class Tissue(Form):
    name = "tissue"
    names = ("L0", "A", "alpha", "C")

    def __init__(self, lambdas: tuple[float, ...] = TISSUE_LAMBDAS) -> None:
        self.lambdas = lambdas

    def hypers(self) -> tuple[float | None, ...]:
        return self.lambdas

    def features(self, curve: Curve, hyper: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        from scipy.signal import lfilter

        lam = 0.999 if hyper is None else hyper
        lr = curve.lr
        down = np.zeros_like(lr)
        down[1:] = lr[:-1] - lr[1:]
        down[: curve.warmup + 1] = 0.0  # the warmup's rise is not annealing
        m = lfilter([1.0], [1.0, -lam], down)  # m_i = λ m_{i−1} + (η_{i−1} − η_i)
        S2 = np.cumsum(m)
        return torch.tensor(np.cumsum(lr)[curve.steps]), torch.tensor(S2[curve.steps])

    def predict(self, p: torch.Tensor, f: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        L0, A, alpha, C = p
        S1, S2 = f
        return L0 + A * S1.pow(-alpha) - C * S2

    def starts(self, curves: list[Curve]) -> list[np.ndarray]:
        A0, alpha0, L0s = _power_start(curves)
        return [np.array([L0, A0, max(alpha0, 0.05), C]) for L0 in L0s for C in (1.0, 100.0)]

    def formula(self, p: dict[str, float]) -> str:
        return (
            f"L(t) = {p['L0']:.4f} + {p['A']:.4g}·S1^-{p['alpha']:.4f} − {p['C']:.4g}·S2"
            f"  (λ = {p['lambda']})"
        )


FORMS: dict[str, type[Form]] = {"mpl": MultiPower, "tissue": Tissue}


# ---------------------------------------------------------------------------------------------
# Fitting

OPTIMIZERS = CURVE_OPTIMIZERS
# The MultiPowerLaw repository's AdamW stage (src/config.py): two LRs, at most 200 steps,
# stopped after 20 without improvement or at a gradient norm below 1e-5.
ADAMW_LRS = (5e-2, 5e-3)  # coefficients (L0, A, B, C) | exponents (alpha, beta, gamma)
ADAMW_STEPS, ADAMW_PATIENCE, ADAMW_GRAD_NORM = 200, 20, 1e-5


def _total(form: Form, p: torch.Tensor, feats: list, targets: list[torch.Tensor]) -> torch.Tensor:
    """Σ Huber(log L − log L̂) over every point of every curve."""
    total = torch.zeros((), dtype=torch.float64)
    for f, y in zip(feats, targets, strict=True):
        pred = form.predict(p, f)
        total = total + huber(y - torch.log(pred.clamp(min=1e-10))).sum()
    return total


def _lbfgs(form: Form, feats: list, targets: list, p0: np.ndarray) -> tuple[np.ndarray, int]:
    """L-BFGS on log-parameters (every parameter is positive) to the objective's optimum."""

    def fun(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.tensor(theta_np, dtype=torch.float64, requires_grad=True)
        total = _total(form, torch.exp(theta), feats, targets)
        total.backward()
        grad = theta.grad.numpy().copy()
        value = float(total.detach())
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return 1e10, np.zeros_like(theta_np)
        return value, grad

    res = minimize(
        fun,
        np.log(p0),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-30, 30)] * len(p0),
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return np.exp(res.x), int(res.nit)


def _adamw(form: Form, feats: list, targets: list, p0: np.ndarray) -> tuple[np.ndarray, int]:
    """The MultiPowerLaw repository's stage 2: torch AdamW (its default weight decay, 0.01) in
    natural parameters, coefficients and exponents as two groups at their own LRs; the best
    point seen is kept."""
    is_exp = np.array([n in ("alpha", "beta", "gamma") for n in form.names])
    coef = torch.tensor(p0[~is_exp], dtype=torch.float64, requires_grad=True)
    expo = torch.tensor(p0[is_exp], dtype=torch.float64, requires_grad=True)
    order = torch.tensor(np.argsort(np.r_[np.flatnonzero(~is_exp), np.flatnonzero(is_exp)]))
    opt = torch.optim.AdamW(
        [{"params": [coef], "lr": ADAMW_LRS[0]}, {"params": [expo], "lr": ADAMW_LRS[1]}]
    )
    best, best_loss, stale, steps = p0.copy(), np.inf, 0, 0
    while steps < ADAMW_STEPS:
        steps += 1
        opt.zero_grad()
        p = torch.cat([coef, expo])[order]
        total = _total(form, p, feats, targets)
        total.backward()
        value = float(total.detach())
        if not np.isfinite(value):
            break
        if value < best_loss:
            best, best_loss, stale = p.detach().numpy().copy(), value, 0
        else:
            stale += 1
        grad_norm = float(torch.cat([coef.grad, expo.grad]).norm())
        if stale >= ADAMW_PATIENCE or grad_norm < ADAMW_GRAD_NORM:
            break
        opt.step()
    return best, steps


SOLVERS = {"adamw": _adamw, "lbfgs": _lbfgs}


@dataclass
class CurveLaw:
    """A law fitted to some curves: its parameters, and predictions with bootstrap bands."""

    form: Form
    p: np.ndarray  # natural parameters, in ``form.names`` order
    hyper: float | None
    objective: float
    fitted_on: list[str]
    optimizer: str
    iterations: int = 0
    seconds: float = 0.0
    boot: list[np.ndarray] = field(default_factory=list)
    boot_seconds: float = 0.0
    # log L − log L̂ at every fitted point: the scatter a measured point carries besides the law.
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def params(self) -> dict[str, float]:
        out = dict(zip(self.form.names, map(float, self.p), strict=True))
        if self.hyper is not None:
            out["lambda"] = self.hyper
        return out

    def formula(self) -> str:
        return self.form.formula(self.params)

    def _predict(self, f: Any, p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.form.predict(torch.tensor(p), f).numpy()

    def predict(self, curve: Curve) -> np.ndarray:
        return self._predict(self.form.features(curve, self.hyper), self.p)

    def band(self, curve: Curve, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
        """Where a measured point should fall: every bootstrap law's prediction times every
        fitted point's exp(residual), and the percentiles of that mixture. The parameters'
        spread alone is a band for the law, not for a measurement (it covered 4–21 % of the
        published curves' points; benchmarks/RESULTS.md)."""
        if not self.boot:
            return None
        f = self.form.features(curve, self.hyper)
        preds = np.log(np.stack([self._predict(f, p) for p in self.boot]))  # (B, n)
        noise = self.residuals if len(self.residuals) else np.zeros(1)
        mix = (preds[:, None, :] + noise[None, :, None]).reshape(-1, preds.shape[1])
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(mix, [tail, 100 - tail], axis=0)
        return np.exp(lo), np.exp(hi)


def fit_curves(
    curves: list[Curve],
    law: str = "mpl",
    optimizer: str = "adamw",
    bootstrap: int = 0,
    seed: int = 0,
    block: int = 10,
) -> CurveLaw:
    """Fit ``law`` to ``curves`` (their points after the warmup) and bootstrap its bands.

    ``optimizer``: ``adamw``, the MultiPowerLaw repository's recipe (its grid start, then at most
    200 AdamW steps: an early-stopped fit that stays near the start), or ``lbfgs``, the
    objective's optimum from the same start. Tissue's four parameters are always solved to the
    optimum (L-BFGS, as OLMo's ``tissue_fit``), from several starts and every λ of the grid.
    """
    if law not in FORMS:
        raise TinyGPTError(f"fit.curves.laws: unknown law {law!r}: choose from {', '.join(LAWS)}")
    if optimizer not in SOLVERS:
        raise TinyGPTError(
            f"fit.curves.optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    form = FORMS[law]()
    solver = SOLVERS[optimizer] if law == "mpl" else _lbfgs
    curves = [c.after(0) for c in curves]
    n_points = sum(len(c.steps) for c in curves)
    if n_points <= len(form.names) + 1:
        raise TinyGPTError(
            f"{n_points} points after the warmup cannot fit the {len(form.names)} parameters of "
            f"{law}: fit on more or longer curves (fit.curves.fit_on)"
        )
    t0 = time.perf_counter()
    targets = [torch.tensor(np.log(c.loss)) for c in curves]
    starts = form.starts(curves)
    best: tuple[np.ndarray, float, int, float | None, np.ndarray] | None = None
    for hyper in form.hypers():
        feats = [form.features(c, hyper) for c in curves]
        for s in starts:
            p, nit = solver(form, feats, targets, s)
            with torch.no_grad():
                obj = float(_total(form, torch.tensor(p), feats, targets))
            if np.isfinite(obj) and (best is None or obj < best[1]):
                best = (p, obj, nit, hyper, s)
    if best is None:
        raise TinyGPTError(f"{law}: no start reached a finite fit: check the curves' losses")
    fitted = CurveLaw(
        form, best[0], best[3], best[1], [c.name for c in curves], optimizer, best[2],
        time.perf_counter() - t0,
    )  # fmt: skip
    fitted.residuals = np.concatenate([np.log(c.loss) - np.log(fitted.predict(c)) for c in curves])
    if bootstrap > 0:
        t1 = time.perf_counter()
        fitted.boot = _block_bootstrap(fitted, curves, solver, best[4], bootstrap, seed, block)
        fitted.boot_seconds = time.perf_counter() - t1
    return fitted


def _block_bootstrap(
    law: CurveLaw,
    curves: list[Curve],
    solver: Any,
    start: np.ndarray,
    n: int,
    seed: int,
    block: int,
) -> list[np.ndarray]:
    """Refits, by the same recipe from the same start, to the fitted curves with their
    log-residuals resampled in moving blocks of ``block`` points (residuals of neighbouring
    evaluations are correlated: resampling them one by one would understate the spread)."""
    rng = np.random.default_rng(seed)
    form = law.form
    feats = [form.features(c, law.hyper) for c in curves]
    fitted = [np.log(law.predict(c)) for c in curves]
    resid = [np.log(c.loss) - f for c, f in zip(curves, fitted, strict=True)]
    out = []
    for _ in range(n):
        targets = []
        for f, r in zip(fitted, resid, strict=True):
            size = min(block, len(r))
            first = rng.integers(0, len(r) - size + 1, size=-(-len(r) // size))
            boot_r = np.concatenate([r[s : s + size] for s in first])[: len(r)]
            targets.append(torch.tensor(f + boot_r))
        p, _ = solver(form, feats, targets, start)
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Scoring predictions


def score(law: CurveLaw, curve: Curve) -> dict[str, Any]:
    """How well ``law`` predicts ``curve`` (after its warmup): relative errors and coverage."""
    c = curve.after(0)
    pred = law.predict(c)
    rel = (pred - c.loss) / c.loss
    out: dict[str, Any] = {
        "points": len(c.steps),
        "final_relative_error": float(rel[-1]),
        "mean_relative_error": float(np.abs(rel).mean()),
        "max_relative_error": float(np.abs(rel).max()),
    }
    band = law.band(c)
    if band is not None:
        out["inside_band"] = float(((c.loss >= band[0]) & (c.loss <= band[1])).mean())
        out["final_band"] = [float(band[0][-1]), float(band[1][-1])]
    return out
