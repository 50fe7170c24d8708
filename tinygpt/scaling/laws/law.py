"""Scaling laws fitted to a table of runs: one-variable laws, the joint L(N, D), CIs, allocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.fit.batched import Problem, bootstrap, fit, fit_l1
from tinygpt.scaling.fit.noise import Noise, parametric_draws
from tinygpt.scaling.interval import resolved
from tinygpt.scaling.settings import FitSettings
from tinygpt.scaling.table.columns import SCALING_COLUMNS


@dataclass
class Law:
    """A fitted law: named parameters, their bootstrap spread, goodness of fit, warnings."""

    name: str
    variables: list[str]
    with_e: bool
    theta: np.ndarray
    objective: float
    n_points: int
    r2: float
    rmse: float
    residuals: np.ndarray
    boot: np.ndarray | None = None
    l1_theta: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    # The fit's effort, for a reader judging convergence: starts solved, BFGS iterations taken.
    starts: int = 0
    iterations: int = 0
    noise: Noise | None = None  # what a parametric bootstrap drew from (None: resampling)
    noise_share: float = 0.0  # … the share of it one job's runs drew together

    def param_names(self) -> list[str]:
        k = len(self.variables)
        coefs = ["A", "B", "C"][:k] if k > 1 else ["A"]
        exps = ["alpha", "beta", "gamma"][:k] if k > 1 else ["alpha"]
        return [*coefs, *exps, *(["E"] if self.with_e else [])]

    def natural(self, theta: np.ndarray) -> np.ndarray:
        """θ (log A, α, log E) -> (A, α, E); works on (p,) or (B, p)."""
        out = np.array(theta, dtype=np.float64)
        k = len(self.variables)
        out[..., :k] = np.exp(out[..., :k])
        if self.with_e:
            out[..., 2 * k] = np.exp(out[..., 2 * k])
        return out

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.param_names(), map(float, self.natural(self.theta)), strict=True))

    def predict(self, x: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """Loss at points ``x`` (n, k) in natural units; (B, n) for B parameter rows ``theta``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        prob = Problem(np.log(x), np.zeros(len(x)), self.with_e)
        if theta is None:
            return np.exp(prob.predict(self.theta[None])[0])
        return np.exp(prob.predict(np.atleast_2d(theta)))

    def band(self, x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray] | None:
        """The bootstrap band of the prediction at ``x``: (low, high), or None without one."""
        if self.boot is None:
            return None
        preds = self.predict(x, self.boot)
        tail = 100 * (1 - level) / 2
        return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)

    def formula(self) -> str:
        p = self.params
        k = len(self.variables)
        parts = [
            f"{p[c]:.4g}/{v}^{p[e]:.4f}"
            for c, e, v in zip(
                self.param_names()[:k], self.param_names()[k : 2 * k], self.variables, strict=True
            )
        ]
        if self.with_e:
            parts.insert(0, f"{p['E']:.4f}")
        return f"L({', '.join(self.variables)}) = " + " + ".join(parts)

    def unresolved(self) -> list[str]:
        """Parameters every bootstrap refit left where the fit put them (within 1e-4, relative):
        the objective is flat in them there (an E driven to ~0, say), so their percentile
        interval [x, x] would claim a precision the data do not have."""
        if self.boot is None or len(self.boot) < 2:
            return []
        nat = self.natural(self.boot)
        spread = np.ptp(nat, axis=0) <= 1e-4 * np.abs(nat).max(axis=0)
        return [name for name, flat in zip(self.param_names(), spread, strict=True) if flat]

    def exponent_ci(self) -> tuple[float, float] | None:
        """The bootstrap 95 % interval of the allocation exponent a = β/(α+β) of L(N, D)."""
        if self.boot is None or len(self.variables) != 2:
            return None
        nat, names = self.natural(self.boot), self.param_names()
        alpha, beta = nat[:, names.index("alpha")], nat[:, names.index("beta")]
        lo, hi = np.percentile(beta / (alpha + beta), [2.5, 97.5])
        return float(lo), float(hi)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "formula": self.formula(),
            "variables": self.variables,
            "params": self.params,
            "objective": self.objective,
            "n_points": self.n_points,
            "r2_log": self.r2,
            "rmse_log": self.rmse,
            "warnings": self.warnings,
            "optimizer": {"starts": self.starts, "iterations": self.iterations},
        }
        if self.boot is not None:
            nat = self.natural(self.boot)
            d["bootstrap"] = {
                "n": len(nat),
                "se": dict(zip(self.param_names(), nat.std(0, ddof=1).tolist(), strict=True)),
                # null for a parameter the refits never moved (``unresolved``): no interval.
                "ci95": {
                    name: None
                    if name in self.unresolved()
                    else [
                        float(np.percentile(nat[:, i], 2.5)),
                        float(np.percentile(nat[:, i], 97.5)),
                    ]
                    for i, name in enumerate(self.param_names())
                },
                "unresolved": self.unresolved(),
            }
        if self.l1_theta is not None:
            d["l1_params"] = dict(
                zip(self.param_names(), map(float, self.natural(self.l1_theta)), strict=True)
            )
        if len(self.variables) == 2 and self.with_e:
            d["compute_optimal"] = compute_optimal(self.params)
            ci = self.exponent_ci()
            d["compute_optimal"]["n_exponent_ci95"] = list(ci) if ci and resolved(*ci) else None
        return d


def jobs(df: pd.DataFrame, unit: str = "run") -> np.ndarray | None:
    """The bootstrap's unit for each row: None where every run is drawn on its own
    (``fit.bootstrap_unit=run``, or runs without seeds); else a label shared by the runs of one
    seed and configuration (N and every swept setting but the token budget), which on a WSD
    grid are the branches of one trunk and elsewhere share an init and a data order."""
    if unit == "run" or "seed" not in df or df["seed"].nunique() < 2:  # BootstrapUnit is a str
        return None  # one seed (or none recorded): nothing ties a run to others
    keys = [c for c in df.columns if c not in SCALING_COLUMNS and c != "training.tokens"]
    keys = [*(["N"] if "N" in df else []), "seed", *keys]
    return df[keys].astype(str).agg("|".join, axis=1).to_numpy()


def resampling(df: pd.DataFrame, unit: str = "run") -> dict[str, Any]:
    """How a form's bootstrap draws under ``fit.bootstrap_unit``: ``fit_form``'s ``groups`` and
    ``parametric`` arguments, so that every caller draws the same way."""
    return {"groups": jobs(df, unit), "parametric": unit == "noise"}


def fit_law(
    df: pd.DataFrame,
    variables: list[str],
    settings: FitSettings,
    with_e: bool = True,
    loss: str = "loss",
) -> Law:
    """Fit ``loss ~ [E +] Σ A_j / X_j^α_j`` to the rows of ``df`` (one row per run)."""
    data = df[[*variables, loss]].astype(float)
    if data.isna().any().any() or not np.isfinite(data.to_numpy()).all():
        raise TinyGPTError(
            f"NaN or infinite values in {[*variables, loss]}: drop the runs that diverged"
        )
    if (data <= 0).any().any():
        raise TinyGPTError(f"{[*variables, loss]} must be positive to fit a power law")
    n_params = 2 * len(variables) + int(with_e)
    if len(data) <= n_params:
        raise TinyGPTError(
            f"{len(data)} points cannot determine the {n_params} parameters of "
            f"L({', '.join(variables)}): add runs (more sizes or seeds)"
        )
    problem = Problem(
        np.log(data[variables].to_numpy()), np.log(data[loss].to_numpy()), with_e, settings.delta
    )
    best = fit(problem)
    resid = problem.log_y - problem.predict(best.theta[None])[0]
    ss_tot = ((problem.log_y - problem.log_y.mean()) ** 2).sum()
    law = Law(
        name=f"L({', '.join(variables)})" + ("" if with_e else " pure"),
        variables=list(variables),
        with_e=with_e,
        theta=best.theta,
        objective=best.objective,
        n_points=len(data),
        r2=float(1 - (resid**2).sum() / max(ss_tot, 1e-300)),
        rmse=float(np.sqrt((resid**2).mean())),
        residuals=resid,
        starts=best.n_starts,
        iterations=best.iterations,
    )
    if settings.bootstrap > 0:
        groups, draws = jobs(df, settings.bootstrap_unit), None
        if settings.bootstrap_unit == "noise":
            points = data[variables].astype(str).agg("|".join, axis=1).to_numpy()
            draws, law.noise, law.noise_share = parametric_draws(
                problem.predict(best.theta[None])[0], problem.log_y, points, groups,
                len(best.theta), settings.bootstrap, settings.bootstrap_seed,
            )  # fmt: skip
        law.boot, _ = bootstrap(
            problem, best.theta, settings.bootstrap, settings.bootstrap_seed, groups, draws
        )
    if settings.l1:
        law.l1_theta = fit_l1(problem, best.theta).theta
    return law


def compute_optimal(p: dict[str, float]) -> dict[str, Any]:
    """Chinchilla's allocation for C = 6ND: N_opt = G (C/6)^a, D_opt = G⁻¹ (C/6)^b."""
    alpha, beta, A, B = p["alpha"], p["beta"], p["A"], p["B"]
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    budgets = [1e15, 1e18, 1e21, 1e24]
    n_opt = [G * (c / 6) ** a for c in budgets]
    d_opt = [(c / 6) ** b / G for c in budgets]
    return {
        "n_exponent": a,
        "d_exponent": b,
        "G": G,
        "at": [
            {"C": c, "N_opt": n, "D_opt": d, "tokens_per_parameter": d / n}
            for c, n, d in zip(budgets, n_opt, d_opt, strict=True)
        ],
    }


def compute_optimal_at(opt: dict[str, Any], c: float) -> tuple[float, float]:
    """(N_opt, D_opt) at compute ``c`` from ``compute_optimal``'s result."""
    return opt["G"] * (c / 6) ** opt["n_exponent"], (c / 6) ** opt["d_exponent"] / opt["G"]


def protocol_warnings(df: pd.DataFrame, variable: str, seeds: pd.Series | None) -> list[str]:
    """The checks a scaling study owes its reader, as warnings."""
    out = []
    if variable == "N" and df["N"].max() / df["N"].min() < 10:
        out.append(
            f"model sizes span only {df['N'].max() / df['N'].min():.1f}x in N (< 10x): "
            "the exponent is poorly constrained"
        )
    if variable == "N" and "D" in df and df.groupby("N")["D"].mean().nunique() > 1:
        out.append("token budgets differ across model sizes: L(N) mixes model and data scaling")
    if seeds is not None and seeds.min() < 2:
        out.append(f"some points have only {int(seeds.min())} seed (< 2): no error bars there")
    return out
