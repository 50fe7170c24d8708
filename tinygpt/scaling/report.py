"""The analysis as a Python API: a table of runs in, fitted laws (an ``Analysis``) and files
out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling import plots as figures
from tinygpt.scaling.analysis import Analysis
from tinygpt.scaling.columns import SCALING_COLUMNS
from tinygpt.scaling.envelope import Envelope, cooled_envelope, envelope
from tinygpt.scaling.grid import along
from tinygpt.scaling.holdout import check, held_out
from tinygpt.scaling.isoflop import isoflop
from tinygpt.scaling.laws import FitSettings, fit_law, protocol_warnings

log = logging.getLogger("tinygpt.analyze")


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
    result = Analysis(table, agg)
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
    if (table.groupby("N")["D"].nunique() >= 2).sum() >= 3:
        return cooled_envelope(table, **boot)
    points = table[["run_id", "N", "D", "C", "loss"]]
    curves = pd.concat(
        [pd.DataFrame(table.attrs.get("curves", []), columns=points.columns), points],
        ignore_index=True,
    )
    return envelope(curves, **boot)


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


def write(analysis: Analysis, out: Path, plots: bool = True) -> list[Path]:
    """points.csv, aggregated.csv, fit.json and the figures; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "points.csv", out / "aggregated.csv", out / "fit.json"]
    analysis.table.to_csv(paths[0], index=False)
    analysis.aggregated.to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(analysis.to_dict(), indent=2, default=float))
    if plots:
        paths += figures.draw_all(analysis, out)
    return paths
