"""The adaptation view of a seal sweep: improvement against inner steps, update tokens and
forgetting, a power law per series of the other swept settings (rank, policy, ...) and the
improvement/forgetting Pareto front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.axes import law_band, readable_log_axis, save
from tinygpt.scaling.laws.law import Law, fit_law
from tinygpt.scaling.settings import FitSettings
from tinygpt.scaling.table.columns import ADAPTATION_COLUMNS

STEPS = "seal.inner_steps"


def power_law(
    rows: pd.DataFrame, x: str, settings: FitSettings | None = None
) -> tuple[Law | None, dict[str, Any]]:
    """improvement = a · x^b, fitted to the runs (every seed) as laws.py fits any law: Huber in
    log space from the start grid, with a bootstrap over runs for the CI of b.

    Runs that did not improve (improvement ≤ 0) have no logarithm and are left out; the summary
    says how many. Returns the law (None where too few points remain) and that summary.
    """
    settings = settings or FitSettings(l1=False)
    data = pd.DataFrame({x: rows[x].astype(float), "improvement": rows["improvement"]})
    keep = data[(data[x] > 0) & (data["improvement"] > 0)]
    summary: dict[str, Any] = {"points": len(keep), "left_out": len(data) - len(keep)}
    if keep[x].nunique() < 2:
        summary["skipped"] = f"{x} takes fewer than 2 values with a positive improvement"
        return None, summary
    try:
        law = fit_law(keep, [x], settings, with_e=False, loss="improvement")
    except TinyGPTError as e:
        summary["skipped"] = str(e)
        return None, summary
    # The law is fitted as A · x^(−α): growth is a negative α.
    a, b = law.params["A"], -law.params["alpha"]
    summary.update(a=a, b=b, formula=f"{a:.3g}·x^{b:.2f}")
    if law.boot is not None:
        ci = law.to_dict()["bootstrap"]["ci95"]["alpha"]
        if ci is not None:  # None: the refits never moved it, no interval
            summary["b_ci95"] = [-ci[1], -ci[0]]
    return law, summary


def pareto_front(improvement: np.ndarray, forgetting: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both (more improvement, less forgetting)."""
    front = np.ones(len(improvement), dtype=bool)
    for i in range(len(improvement)):
        better = (improvement >= improvement[i]) & (forgetting <= forgetting[i])
        strictly = (improvement > improvement[i]) | (forgetting < forgetting[i])
        front[i] = not (better & strictly).any()
    return front


def swept_settings(table: pd.DataFrame) -> list[str]:
    """The swept settings (columns the source kept because they vary), inner steps last."""
    swept = [c for c in table.columns if c not in ADAPTATION_COLUMNS]
    if not swept:
        raise TinyGPTError(
            "the seal runs vary no setting: sweep one, e.g. -m seal.inner_steps=1,3,10 "
            "seal.lora_rank=4,8 or seal/policy=passage,pretrained"
        )
    return sorted(swept, key=lambda c: c == STEPS)


def summarize(table: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """Seeds averaged per combination of the swept settings, with the Pareto front marked."""
    agg = table.groupby(swept).agg(
        improvement=("improvement", "mean"),
        improvement_std=("improvement", "std"),
        forgetting=("forgetting", "mean"),
        update_tokens=("update_tokens", "mean"),
        trainable_parameters=("trainable_parameters", "mean"),
        runs=("run_id", "count"),
    )
    agg = agg.reset_index()
    agg["pareto"] = pareto_front(agg["improvement"].to_numpy(), agg["forgetting"].to_numpy())
    return agg


def series_label(keys: tuple, names: list[str]) -> str:
    """``lora_rank=4, policy=self`` for the settings seal.lora_rank and seal.policy.name."""
    short = [n.removeprefix("seal.").removesuffix(".name") for n in names]
    return ", ".join(f"{n}={k}" for n, k in zip(short, keys, strict=True))


def plot_laws(
    table: pd.DataFrame, series: list[str], path: Path, settings: FitSettings | None = None
) -> dict[str, Any]:
    """Improvement against inner steps and update tokens: the runs, their mean per setting, and
    one fitted power law with its 95% bootstrap band per series of the other settings."""
    fits: dict[str, Any] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    groups = table.groupby(series) if series else [((), table)]
    colors = iter(sns.color_palette(n_colors=max(len(groups), 1)))
    for keys, group in groups:
        label = series_label(keys if isinstance(keys, tuple) else (keys,), series) or "all"
        color = next(colors)
        for ax, x in zip(axes, (STEPS, "update_tokens"), strict=True):
            ax.scatter(group[x], group["improvement"], color=color, alpha=0.4, s=12)
            law, summary = power_law(group, x, settings)
            fits[f"{label} vs {x}"] = summary
            if law is not None:
                grid = np.geomspace(group[x].min(), group[x].max(), 50)
                law_band(ax, law, grid, color, f"{label}: {summary['formula']}", band_label=None)
            else:
                ax.plot([], [], "o", color=color, label=f"{label}: no law (see adaptation.json)")
    for ax, x, name in zip(
        axes, ("inner steps", "update tokens"), (STEPS, "update_tokens"), strict=True
    ):
        ax.set(xscale="log", xlabel=x, ylabel="improvement (target loss drop)")
        lo, hi = table[name].min(), table[name].max()
        if lo > 0 and hi > lo:
            readable_log_axis(ax.xaxis, lo, hi, "D" if name == "update_tokens" else "")
        ax.legend(fontsize=7, title="shaded: 95% bootstrap band", title_fontsize=7)
    save(fig, path)
    return fits


def plot_pareto(agg: pd.DataFrame, swept: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    hue = next((c for c in swept if c != STEPS), None)
    size = STEPS if STEPS in swept else None
    yerr = agg["improvement_std"].fillna(0)
    ax.errorbar(
        agg["forgetting"],
        agg["improvement"],
        yerr=yerr,
        fmt="none",
        ecolor="grey",
        elinewidth=0.8,
        capsize=2,
        label="± std over seeds",
    )
    sns.scatterplot(data=agg, x="forgetting", y="improvement", hue=hue, size=size, ax=ax)
    front = agg[agg["pareto"]].sort_values("forgetting")
    ax.plot(front["forgetting"], front["improvement"], "r--", lw=1.5, label="Pareto front")
    ax.set(xlabel="forgetting (base-domain loss rise)", ylabel="improvement")
    ax.legend(fontsize=7)
    save(fig, path)


def write(
    table: pd.DataFrame, out: Path, settings: FitSettings | None = None
) -> tuple[list[Path], dict[str, Any]]:
    """adaptation.csv, pareto_forgetting.png, adaptation.json, and — when inner steps were
    swept — adaptation_laws.png with a power law per series of the other settings."""
    out.mkdir(parents=True, exist_ok=True)
    swept = swept_settings(table)
    agg = summarize(table, swept)
    sns.set_theme(style="whitegrid")
    paths = []
    fits: dict[str, Any] = {}
    if STEPS in swept:
        paths.append(out / "adaptation_laws.png")
        fits = plot_laws(table, [c for c in swept if c != STEPS], paths[-1], settings)
    paths.append(out / "pareto_forgetting.png")
    plot_pareto(agg, swept, paths[-1])
    paths.append(out / "adaptation.csv")
    agg.to_csv(paths[-1], index=False)
    report = {
        "n_runs": len(table),
        "settings": swept,
        "fits": fits,
        "pareto": agg[agg["pareto"]].to_dict(orient="records"),
    }
    paths.append(out / "adaptation.json")
    paths[-1].write_text(json.dumps(report, indent=2, default=float))
    return paths, report
