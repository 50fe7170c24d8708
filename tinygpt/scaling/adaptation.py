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

STEPS = "seal.inner_steps"


def power_law(x: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    """improvement = a · x^b by least squares in log space (needs ≥ 2 positive points)."""
    keep = (x > 0) & (y > 0)
    if keep.sum() < 2 or np.unique(x[keep]).size < 2:
        return None
    b, log_a = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return {"a": float(np.exp(log_a)), "b": float(b), "points": int(keep.sum())}


def pareto_front(improvement: np.ndarray, forgetting: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both (more improvement, less forgetting)."""
    front = np.ones(len(improvement), dtype=bool)
    for i in range(len(improvement)):
        better = (improvement >= improvement[i]) & (forgetting <= forgetting[i])
        strictly = (improvement > improvement[i]) | (forgetting < forgetting[i])
        front[i] = not (better & strictly).any()
    return front


MEASURED = {
    "run_id",
    "seed",
    "improvement",
    "forgetting",
    "update_tokens",
    "edit_tokens",
    "trainable_parameters",
}


def settings(table: pd.DataFrame) -> list[str]:
    """The swept settings (columns the source kept because they vary), inner steps last."""
    swept = [c for c in table.columns if c not in MEASURED]
    if not swept:
        raise TinyGPTError(
            "the seal runs vary no setting: sweep one, e.g. -m seal.inner_steps=1,3,10 "
            "seal.lora_rank=4,8 or seal.policy=passage,pretrained"
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
    return ", ".join(f"{n.removeprefix('seal.')}={k}" for n, k in zip(names, keys, strict=True))


def plot_laws(agg: pd.DataFrame, series: list[str], path: Path) -> dict[str, Any]:
    """Improvement against inner steps and update tokens, one fitted power law per series."""
    fits: dict[str, Any] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    groups = agg.groupby(series) if series else [((), agg)]
    for keys, group in groups:
        label = series_label(keys if isinstance(keys, tuple) else (keys,), series) or "all"
        g = group.sort_values(STEPS)
        for ax, x in zip(axes, (STEPS, "update_tokens"), strict=True):
            ax.plot(g[x], g["improvement"], "o", label=label)
            law = power_law(g[x].to_numpy(float), g["improvement"].to_numpy(float))
            fits[f"{label} vs {x}"] = law
            if law:
                grid = np.geomspace(g[x].min(), g[x].max(), 50)
                ax.plot(
                    grid,
                    law["a"] * grid ** law["b"],
                    "-",
                    label=f"{label}: {law['a']:.3g}·x^{law['b']:.2f}",
                )
    for ax, x in zip(axes, ("inner steps", "update tokens"), strict=True):
        ax.set(xscale="log", xlabel=x, ylabel="improvement (target loss drop)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fits


def plot_pareto(agg: pd.DataFrame, swept: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    hue = next((c for c in swept if c != STEPS), None)
    size = STEPS if STEPS in swept else None
    sns.scatterplot(data=agg, x="forgetting", y="improvement", hue=hue, size=size, ax=ax)
    front = agg[agg["pareto"]].sort_values("forgetting")
    ax.plot(front["forgetting"], front["improvement"], "r--", lw=1.5, label="Pareto front")
    ax.set(xlabel="forgetting (base-domain loss rise)", ylabel="improvement")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(table: pd.DataFrame, out: Path) -> tuple[list[Path], dict[str, Any]]:
    """adaptation.csv, pareto_forgetting.png, adaptation.json, and — when inner steps were
    swept — adaptation_laws.png with a power law per series of the other settings."""
    out.mkdir(parents=True, exist_ok=True)
    swept = settings(table)
    agg = summarize(table, swept)
    sns.set_theme(style="whitegrid")
    paths = []
    fits: dict[str, Any] = {}
    if STEPS in swept:
        paths.append(out / "adaptation_laws.png")
        fits = plot_laws(agg, [c for c in swept if c != STEPS], paths[-1])
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
