"""A scaling study: the table of runs in, every question it supports answered (an ``Analysis``):
the laws L(X) and L(N, D), the holdout checks, the envelope and IsoFLOP allocations. The views
(``views.files``, ``views.figures``, ``views.text``) read it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.accounting import UNSTATED
from tinygpt.errors import TinyGPTError
from tinygpt.scaling.allocation.envelope import Envelope, cooled_envelope, envelope
from tinygpt.scaling.allocation.isoflop import IsoflopView, compute_groups, isoflop
from tinygpt.scaling.fit.noise import of_runs
from tinygpt.scaling.laws.holdout import Holdout, check, held_out
from tinygpt.scaling.laws.law import FitSettings, Law, fit_law, jobs, protocol_warnings
from tinygpt.scaling.table.columns import SCALING_COLUMNS
from tinygpt.scaling.table.grid import along

log = logging.getLogger("tinygpt.analyze")


@dataclass
class Analysis:
    table: pd.DataFrame
    aggregated: pd.DataFrame
    laws: dict[str, Law] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    holdouts: dict[str, Holdout] = field(default_factory=dict)
    isoflop: IsoflopView | None = None
    envelope: Envelope | None = None
    # What the laws' bootstrap drew: "job" (a seed's runs of one configuration together) or
    # "run", and why where it fell back.
    resampled: str = "run"

    @property
    def conventions(self) -> dict[str, str]:
        attrs = self.table.attrs
        return {k: attrs.get(k, UNSTATED) for k in ("parameters", "flops")}

    @property
    def holdout(self) -> Holdout | None:
        """The headline check: L(N, D) where it was fitted, else L(N)."""
        return self.holdouts.get("L(N, D)") or self.holdouts.get("L(N)")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_runs": len(self.table),
            "source": self.table.attrs.get("source"),
            # What N and C count (tinygpt/accounting.py): every law below is in these units.
            "conventions": self.conventions,
            "laws": {name: law.to_dict() for name, law in self.laws.items()},
            "skipped": self.skipped,
            "bootstrap_unit": self.resampled,
        }
        if self.isoflop is not None:
            out["isoflop"] = self.isoflop.to_dict()
        if self.envelope is not None:
            out["envelope"] = self.envelope.to_dict()
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
            out["holdouts"] = {name: h.to_dict() for name, h in self.holdouts.items()}
        return out


def settings_of(table: pd.DataFrame) -> list[str]:
    """The swept settings: every column beyond the measured ones."""
    return [c for c in table.columns if c not in SCALING_COLUMNS]


def aggregate_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of the loss over seeds of the same configuration."""
    keys = settings_of(table) or ["N", "D"]
    agg = table.groupby(keys, dropna=False).agg(
        N=("N", "mean"),
        D=("D", "mean"),
        C=("C", "mean"),
        loss_mean=("loss", "mean"),
        loss_std=("loss", "std"),
        seeds=("seed", "nunique"),
    )
    return agg.drop(columns=[k for k in keys if k in ("N", "D")], errors="ignore").reset_index()


def _varies(table: pd.DataFrame, col: str, at_least: int = 3) -> bool:
    values = pd.to_numeric(table[col], errors="coerce")
    return bool(values.notna().all() and (values > 0).all() and values.nunique() >= at_least)


def _one_to_one(table: pd.DataFrame, x: str, y: str) -> bool:
    """A setting and N or D that determine each other: ``training.tokens`` of a budget sweep
    and D, a width sweep's ``model.d_model`` (or a peak LR tuned per width) and N."""
    pairs = table[[x, y]].drop_duplicates()
    return len(pairs) == pairs[x].nunique() == pairs[y].nunique()


def resampling(table: pd.DataFrame, unit: str) -> str:
    """What the bootstrap draws on this table, in words for the report and fit.json."""
    if unit == "run":
        return "run (fit.bootstrap_unit=run)"
    if unit == "noise":
        return (
            "noise (parametric: new losses drawn from the fitted law and the seeds' noise, "
            "a job's runs sharing part of it)"
            if jobs(table, unit) is not None
            else "noise (parametric: new losses drawn from the fitted law and its residuals)"
        )
    if jobs(table, unit) is None:
        return "run (jobs cannot be told apart: one seed, or no seed column)"
    return "job (a seed's runs of one configuration together)"


def analyze(table: pd.DataFrame, settings: FitSettings | None = None) -> Analysis:
    """Fit every law the table supports: L(X) for N, D, C and swept numeric settings; L(N, D);
    then refit the laws in N without the held-out runs and predict them (``fit.holdout``)."""
    settings = settings or FitSettings()
    if table.empty:
        raise TinyGPTError("no runs to analyse")
    if not np.isfinite(table["loss"].astype(float)).all():
        bad = int((~np.isfinite(table["loss"].astype(float))).sum())
        log.warning("%d runs with a NaN/infinite loss are left out", bad)
        table = table[np.isfinite(table["loss"].astype(float))]
    held_out(table, settings.holdout)  # a bad rule fails before any fitting
    agg = aggregate_seeds(table)
    result = Analysis(table, agg, resampled=resampling(table, settings.bootstrap_unit))
    seeds = agg["seeds"]
    candidates = ["N", "D", "C"] + [c for c in settings_of(table) if c not in ("N", "D", "C")]
    for x in candidates:
        if x not in table or not _varies(table, x):
            result.skipped[f"L({x})"] = f"{x} takes fewer than 3 distinct positive values"
            continue
        same = [y for y in ("D", "N") if x not in ("N", "D", "C") and _one_to_one(table, x, y)]
        if same:
            result.skipped[f"L({x})"] = f"{x} determines {same[0]} one to one: see L({same[0]})"
            continue
        rows = along(table, x)
        data = rows.assign(**{x: pd.to_numeric(rows[x])})
        for with_e in (True, False):
            try:
                law = fit_law(data, [x], settings, with_e=with_e)
            except TinyGPTError as e:
                result.skipped[f"L({x})" + ("" if with_e else " pure")] = str(e)
                continue
            law.warnings = protocol_warnings(rows, x, seeds)
            result.laws[law.name] = law
    if _varies(table, "N", 2) and _varies(table, "D", 2):
        try:
            law = fit_law(table, ["N", "D"], settings)
            law.warnings = protocol_warnings(table, "N,D", seeds)
            result.laws[law.name] = law
        except TinyGPTError as e:
            result.skipped["L(N, D)"] = str(e)
    else:
        result.skipped["L(N, D)"] = "needs at least 2 model sizes and 2 token budgets"
    env = _envelope(table, settings)
    if isinstance(env, str):
        result.skipped["envelope"] = env
    else:
        result.envelope = env
    view = isoflop(table, settings.bootstrap, settings.bootstrap_seed)
    if isinstance(view, str):
        result.skipped["IsoFLOP"] = view
    else:
        result.isoflop = view
    if not result.laws:
        raise TinyGPTError(
            "no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
        )
    _check_holdouts(result, settings)
    return result


def _envelope(table: pd.DataFrame, settings: FitSettings) -> Envelope | str:
    """Approach 1 on the runs' cooled ends where sizes were run at several budgets (a WSD
    grid), else on every evaluation of every run (where the source has them) and every end."""
    boot = {"n_boot": settings.bootstrap, "seed": settings.bootstrap_seed}
    sizes = pd.to_numeric(table["N"], errors="coerce")
    if not (np.isfinite(sizes) & (sizes > 0)).all():
        return "the table has no model size N for every run (map source.columns.N, or give C and D)"
    if (table.groupby("N")["D"].nunique() >= 2).sum() >= 3:
        # One seed per size: the interval's draws add noise from the study's noise model, read
        # along N within each compute budget (an IsoFLOP grid), else within each token budget.
        noise = of_runs(table["N"], compute_groups(table), table["loss"]) or of_runs(
            table["N"], table["D"], table["loss"]
        )
        return cooled_envelope(table, **boot, sigma=noise.sigma if noise else 0.0)
    points = table[["run_id", "N", "D", "C", "loss"]]
    evaluations = pd.DataFrame(table.attrs.get("curves", []), columns=points.columns)
    # An empty frame is all object columns: concatenated, it would make N, D, C objects too.
    parts = [evaluations, points] if len(evaluations) else [points]
    curves = pd.concat(parts, ignore_index=True)
    numeric = ["N", "D", "C", "loss"]
    return envelope(curves.assign(**{k: curves[k].astype(float) for k in numeric}), **boot)


def _check_holdouts(result: Analysis, settings: FitSettings) -> None:
    for name, variables in (("L(N)", ["N"]), ("L(C)", ["C"]), ("L(N, D)", ["N", "D"])):
        if name not in result.laws:
            continue
        rows = along(result.table, variables[0]) if len(variables) == 1 else result.table
        rule = held_out(rows, settings.holdout)
        if rule is None:
            return
        try:
            result.holdouts[name] = check(rows, rule[0], rule[1], variables, settings)
        except TinyGPTError as e:
            result.skipped[f"holdout {name}"] = str(e)
