"""The adaptation view of a seal sweep: improvement against inner steps, update tokens and
forgetting, with per-rank power laws and the improvement/forgetting Pareto front."""

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

STEPS, RANK = "seal.inner_steps", "seal.lora_rank"


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


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    for col in (STEPS, RANK):
        if col not in table:
            raise TinyGPTError(f"the seal runs do not vary {col}: sweep it (-m {col}=1,3,10)")
    agg = table.groupby([RANK, STEPS]).agg(
        improvement=("improvement", "mean"), improvement_std=("improvement", "std"),
        forgetting=("forgetting", "mean"), update_tokens=("update_tokens", "mean"),
        trainable_parameters=("trainable_parameters", "mean"), runs=("run_id", "count"),
    )  # fmt: skip
    agg = agg.reset_index()
    agg["pareto"] = pareto_front(agg["improvement"].to_numpy(), agg["forgetting"].to_numpy())
    return agg


def write(table: pd.DataFrame, out: Path) -> tuple[list[Path], dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    agg = summarize(table)
    fits: dict[str, Any] = {}
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for rank, group in agg.groupby(RANK):
        g = group.sort_values(STEPS)
        for ax, x in zip(axes, (STEPS, "update_tokens"), strict=True):
            ax.plot(g[x], g["improvement"], "o", label=f"rank {rank}")
            law = power_law(g[x].to_numpy(float), g["improvement"].to_numpy(float))
            fits[f"rank {rank} vs {x}"] = law
            if law:
                grid = np.geomspace(g[x].min(), g[x].max(), 50)
                ax.plot(grid, law["a"] * grid ** law["b"], "-",
                        label=f"rank {rank}: {law['a']:.3g}·x^{law['b']:.2f}")  # fmt: skip
    for ax, x in zip(axes, ("inner steps", "update tokens"), strict=True):
        ax.set(xscale="log", xlabel=x, ylabel="improvement (target loss drop)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    laws_png = out / "adaptation_laws.png"
    fig.savefig(laws_png, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    sns.scatterplot(data=agg, x="forgetting", y="improvement", hue=RANK, size=STEPS, ax=ax)
    front = agg[agg["pareto"]].sort_values("forgetting")
    ax.plot(front["forgetting"], front["improvement"], "r--", lw=1.5, label="Pareto front")
    ax.set(xlabel="forgetting (base-domain loss rise)", ylabel="improvement")
    ax.legend(fontsize=7)
    fig.tight_layout()
    pareto_png = out / "pareto_forgetting.png"
    fig.savefig(pareto_png, dpi=120)
    plt.close(fig)

    csv = out / "adaptation.csv"
    agg.to_csv(csv, index=False)
    report = {"n_runs": len(table), "fits": fits,
              "pareto": agg[agg["pareto"]].to_dict(orient="records")}  # fmt: skip
    (out / "adaptation.json").write_text(json.dumps(report, indent=2, default=float))
    return [laws_png, pareto_png, csv, out / "adaptation.json"], report
