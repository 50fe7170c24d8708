"""Seaborn figures of a fitted analysis: scaling curves, residuals, iso-loss contours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import NullFormatter

if TYPE_CHECKING:
    from tinygpt.scaling.report import Analysis

LABELS = {"N": "non-embedding parameters N", "D": "tokens D", "C": "training FLOPs C"}


def scaling_curve(analysis: Analysis, x: str, out: Path) -> Path:
    agg = analysis.aggregated
    fig, ax = plt.subplots(figsize=(6, 4.2))
    sns.scatterplot(data=analysis.table, x=x, y="loss", ax=ax, alpha=0.35, color="grey",
                    label="runs")  # fmt: skip
    if x in agg:
        ax.errorbar(agg[x], agg["loss_mean"], yerr=agg["loss_std"].fillna(0), fmt="o",
                    color="black", capsize=3, label="mean ± std over seeds")  # fmt: skip
    grid = np.geomspace(
        analysis.table[x].astype(float).min(), analysis.table[x].astype(float).max(), 200
    )
    for name, style in ((f"L({x})", "-"), (f"L({x}) pure", "--")):
        law = analysis.laws.get(name)
        if law is not None:
            ax.plot(grid, law.predict(grid[:, None]), style, label=law.formula())
    ax.set(xscale="log", yscale="log", xlabel=LABELS.get(x, x), ylabel="final validation loss")
    for axis in (ax.xaxis, ax.yaxis):  # minor log ticks' labels collide on a narrow range
        axis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"scaling_{x.replace('.', '_')}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def residuals(analysis: Analysis, out: Path) -> Path:
    laws = [law for law in analysis.laws.values() if law.with_e]
    fig, axes = plt.subplots(1, len(laws), figsize=(4 * len(laws), 3.4), squeeze=False)
    for ax, law in zip(axes[0], laws, strict=True):
        x = law.variables[0]
        sns.scatterplot(x=analysis.table[x].astype(float), y=law.residuals, ax=ax, s=18)
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log", xlabel=x, ylabel="log L − log L̂", title=law.name)
    fig.tight_layout()
    path = out / "residuals.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def iso_loss(analysis: Analysis, out: Path) -> Path | None:
    law = analysis.laws.get("L(N, D)")
    if law is None:
        return None
    t = analysis.table
    n = np.geomspace(t["N"].min() / 3, t["N"].max() * 3, 120)
    d = np.geomspace(t["D"].min() / 3, t["D"].max() * 3, 120)
    nn, dd = np.meshgrid(n, d)
    loss = law.predict(np.stack([nn.ravel(), dd.ravel()], 1)).reshape(nn.shape)
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    cs = ax.contour(nn, dd, loss, levels=12, cmap="viridis")
    ax.clabel(cs, fontsize=7, fmt="%.2f")
    sns.scatterplot(data=t, x="N", y="D", hue="loss", palette="viridis", s=14, ax=ax, legend=False)
    opt = law.to_dict()["compute_optimal"]
    c = np.geomspace((6 * nn * dd).min(), (6 * nn * dd).max(), 100)
    n_opt = opt["G"] * (c / 6) ** opt["n_exponent"]
    d_opt = (c / 6) ** opt["d_exponent"] / opt["G"]
    keep = (n_opt >= n[0]) & (n_opt <= n[-1]) & (d_opt >= d[0]) & (d_opt <= d[-1])
    ax.plot(n_opt[keep], d_opt[keep], "r-", lw=2, label="compute-optimal frontier")
    ax.set(xscale="log", yscale="log", xlabel=LABELS["N"], ylabel=LABELS["D"],
           title=law.formula())  # fmt: skip
    ax.title.set_fontsize(8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "iso_loss.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_all(analysis: Analysis, out: Path) -> list[Path]:
    sns.set_theme(style="whitegrid")
    xs = sorted({law.variables[0] for law in analysis.laws.values() if len(law.variables) == 1})
    paths = [scaling_curve(analysis, x, out) for x in xs]
    if any(law.with_e and len(law.variables) == 1 for law in analysis.laws.values()):
        paths.append(residuals(analysis, out))
    contour = iso_loss(analysis, out)
    return paths + ([contour] if contour else [])
