"""Seaborn figures of a fitted analysis: scaling curves, residuals, iso-loss contours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from tinygpt.scaling.axes import HELD_OUT, LABELS, label, law_band, readable_log_axis, save
from tinygpt.scaling.interval import as_text
from tinygpt.scaling.table.grid import along

if TYPE_CHECKING:
    from tinygpt.scaling.laws.holdout import Holdout
    from tinygpt.scaling.study import Analysis


def scaling_curve(analysis: Analysis, x: str, out: Path) -> Path:
    rows = along(analysis.table, x).assign(**{x: lambda t: t[x].astype(float)})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    check = analysis.holdouts.get(f"L({x})")
    held = np.isin(rows["run_id"], []) if check is None else _held_rows(rows, check, x)
    stats = rows.groupby(x)["loss"].agg(["mean", "std"]).reset_index()
    ax.scatter(rows[x], rows["loss"], color="grey", alpha=0.35, s=14, label="runs")
    ax.errorbar(
        stats[x],
        stats["mean"],
        yerr=stats["std"].fillna(0),
        fmt="o",
        color="black",
        ms=4,
        capsize=3,
        label="mean ± std over seeds",
    )
    lo, hi = rows[x].min(), rows[x].max()
    grid = np.geomspace(lo, hi, 200)
    law = analysis.laws.get(f"L({x})")
    if law is not None:
        law_band(ax, law, grid, "tab:blue", law.formula())
    pure = analysis.laws.get(f"L({x}) pure")
    if pure is not None:
        ax.plot(grid, pure.predict(grid[:, None]), ":", color="tab:grey", label=pure.formula())
    if check is not None:
        fitted = rows[~held][x]
        # The law fitted without the held-out runs, drawn past its fitted range to them.
        reach = np.geomspace(fitted.min(), hi * 1.15, 200)
        law_band(
            ax,
            check.law,
            reach,
            "tab:orange",
            f"fitted without held-out: {check.law.formula()}",
            "--",
        )
        pts = check.points
        ax.scatter(
            pts[x],
            pts["loss"],
            label=f"held out (max |error| {check.max_abs_relative_error:.2%})",
            **HELD_OUT,
        )
    ax.set(
        xscale="log", yscale="log", xlabel=label(analysis.table, x), ylabel="final validation loss"
    )
    ax.set_title(_slice_title(analysis.table, rows, x), fontsize=8)
    readable_log_axis(ax.xaxis, *ax.get_xlim(), x)
    readable_log_axis(ax.yaxis, *ax.get_ylim())
    ax.legend(fontsize=6.5, loc="upper right")
    return save(fig, out / f"scaling_{x.replace('.', '_')}.png")


def _held_rows(rows: pd.DataFrame, check: Holdout, x: str) -> np.ndarray:
    return np.isin(rows[x].to_numpy(), check.points[x].to_numpy())


def _slice_title(table: pd.DataFrame, rows: pd.DataFrame, x: str) -> str:
    if len(rows) == len(table):
        return ""
    if x == "D":
        return f"along the largest model, N = {rows['N'].max():,.0f}"
    return f"along the largest budget, D = {rows['D'].max():,.0f} tokens"


def loss_vs_tokens(analysis: Analysis, out: Path) -> Path | None:
    """Loss against D, one line per model size, with the fitted L(N, D) surface over each."""
    law = analysis.laws.get("L(N, D)")
    if law is None:
        return None
    t = analysis.table
    check = analysis.holdouts.get("L(N, D)")
    sizes = sorted(t["N"].unique())
    colors = sns.color_palette("viridis", len(sizes))
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    grid = np.geomspace(t["D"].min() / 1.3, t["D"].max() * 1.3, 150)
    for n, color in zip(sizes, colors, strict=True):
        rows = t[t["N"] == n]
        stats = rows.groupby("D")["loss"].agg(["mean", "std"]).reset_index()
        is_held = check is not None and np.isclose(check.points["N"], n).any()
        ax.errorbar(
            stats["D"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            fmt="*" if is_held else "o",
            ms=9 if is_held else 4,
            color=color,
            capsize=2,
            label=f"N = {n:,.0f}" + (" (held out)" if is_held else ""),
        )
        x = np.stack([np.full_like(grid, n), grid], 1)
        fit = check.law if is_held else law
        ax.plot(grid, fit.predict(x), "--" if is_held else "-", color=color, lw=1.2)
        band = fit.band(x)
        if band is not None:
            ax.fill_between(grid, *band, color=color, alpha=0.15, lw=0)
    ax.set(xscale="log", yscale="log", xlabel=LABELS["D"], ylabel="final validation loss")
    title = law.formula()
    if check is not None:
        title += (
            f"\ndashed: fitted without the held-out model, max |error| "
            f"{check.max_abs_relative_error:.2%}"
        )
    ax.set_title(title, fontsize=8)
    readable_log_axis(ax.xaxis, *ax.get_xlim(), "D")
    readable_log_axis(ax.yaxis, *ax.get_ylim())
    ax.legend(fontsize=7, loc="upper right")
    return save(fig, out / "loss_vs_tokens.png")


def residuals(analysis: Analysis, out: Path) -> Path:
    laws = [law for law in analysis.laws.values() if law.with_e and len(law.variables) == 1]
    fig, axes = plt.subplots(1, len(laws), figsize=(4 * len(laws), 3.4), squeeze=False)
    for ax, law in zip(axes[0], laws, strict=True):
        x = law.variables[0]
        values = along(analysis.table, x)[x].astype(float) if len(law.variables) == 1 else None
        sns.scatterplot(x=values, y=law.residuals, ax=ax, s=18)
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log", xlabel=x, ylabel="log L − log L̂", title=law.name)
        readable_log_axis(ax.xaxis, *ax.get_xlim(), x)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return save(fig, out / "residuals.png")


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
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=label(analysis.table, "N"),
        ylabel=LABELS["D"],
        title=law.formula(),
    )
    ax.title.set_fontsize(8)
    readable_log_axis(ax.xaxis, *ax.get_xlim(), "N")
    readable_log_axis(ax.yaxis, *ax.get_ylim(), "D")
    ax.legend(fontsize=8)
    return save(fig, out / "iso_loss.png")


def isoflop_profiles(analysis: Analysis, out: Path) -> Path | None:
    """Left: loss against N per compute budget, its parabola and bottom (with the bottom's 95 %
    interval). Right: the bottoms against C, the fitted frontier and L(N, D)'s where fitted."""
    view = analysis.isoflop
    if view is None:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = sns.color_palette("rocket", len(view.valleys))
    for v, color in zip(view.valleys, colors, strict=True):
        rows = view.table[view.table["budget"] == v.C]
        left.scatter(rows["N"], rows["loss"], color=color, s=16, alpha=0.7, label=f"C = {v.C:.2g}")
        if np.isfinite(v.N_opt):
            x, y = v.curve
            left.plot(np.exp(x), np.exp(y), color=color, lw=1.2)
            left.errorbar(
                [v.N_opt],
                [v.loss_min],
                xerr=[[v.N_opt - v.N_ci[0]], [v.N_ci[1] - v.N_opt]],
                fmt="D",
                color=color,
                ms=6,
                capsize=3,
                mec="black",
            )
    left.set(
        xscale="log",
        yscale="log",
        xlabel=label(analysis.table, "N"),
        ylabel="final validation loss",
        title="IsoFLOP profiles: an Akima spline in log N per budget",
    )
    readable_log_axis(left.xaxis, *left.get_xlim(), "N")
    readable_log_axis(left.yaxis, *left.get_ylim())
    left.legend(fontsize=7)
    left.title.set_fontsize(9)
    good = [v for v in view.valleys if v.usable]
    cs = np.array([v.C for v in good])
    if good:
        lo = [v.N_opt - v.N_ci[0] for v in good]
        hi = [v.N_ci[1] - v.N_opt for v in good]
        right.errorbar(
            cs,
            [v.N_opt for v in good],
            yerr=[lo, hi],
            fmt="D",
            color="black",
            capsize=3,
            label="IsoFLOP bottoms (95% CI)",
        )
    grid = np.geomspace(view.table["budget"].min() / 2, view.table["budget"].max() * 2, 100)
    if view.N_opt is not None:
        f = view.N_opt
        right.plot(
            grid,
            f.at(grid),
            "-",
            color="tab:red",
            label=f"N_opt = {f.coefficient:.3g}·C^{f.exponent:.3f} {as_text(*f.ci95)}",
        )
    law = analysis.laws.get("L(N, D)")
    if law is not None:
        opt = law.to_dict()["compute_optimal"]
        right.plot(
            grid,
            opt["G"] * (grid / 6) ** opt["n_exponent"],
            "--",
            color="tab:blue",
            label=f"L(N, D): N_opt ∝ C^{opt['n_exponent']:.3f}",
        )
    right.set(
        xscale="log",
        yscale="log",
        xlabel=label(analysis.table, "C"),
        ylabel="compute-optimal N"
        + (" (embeddings included)" if analysis.table.attrs.get("parameters") == "total" else ""),
        title="the compute-optimal frontier",
    )
    right.title.set_fontsize(9)
    readable_log_axis(right.xaxis, *right.get_xlim(), "C")
    readable_log_axis(right.yaxis, *right.get_ylim(), "N")
    right.legend(fontsize=7)
    return save(fig, out / "isoflop.png")


def draw_all(analysis: Analysis, out: Path) -> list[Path]:
    sns.set_theme(style="whitegrid")
    xs = sorted({law.variables[0] for law in analysis.laws.values() if len(law.variables) == 1})
    paths = [scaling_curve(analysis, x, out) for x in xs]
    if any(law.with_e and len(law.variables) == 1 for law in analysis.laws.values()):
        paths.append(residuals(analysis, out))
    extra = [
        iso_loss(analysis, out),
        loss_vs_tokens(analysis, out),
        isoflop_profiles(analysis, out),
    ]
    return paths + [p for p in extra if p is not None]


def forms_figure(
    table: pd.DataFrame, held: pd.Series | None, reports: dict, selected: str, path: Path
) -> Path:
    """The law forms side by side. Left: every size's measured means against D with the selected
    form, fitted without the held-out model, over each (dashed where it extrapolates to the
    held-out one). Right: the held-out model alone, each form's prediction as a line and the
    selected one's band for a mean of its seeds."""
    sns.set_theme(style="whitegrid")
    held = pd.Series(False, index=table.index) if held is None else held
    grid = np.geomspace(table["D"].min() / 1.3, table["D"].max() * 1.3, 150)
    means = table.groupby(["N", "D"], as_index=False)["loss"].agg(["mean", "min", "max", "size"])
    held_n = set(table.loc[held, "N"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    sizes = sorted(table["N"].unique())
    colors = sns.color_palette("viridis", len(sizes))
    best = reports[selected].fit
    for n, color in zip(sizes, colors, strict=True):
        rows = means[means["N"] == n]
        out = n in held_n
        left.errorbar(
            rows["D"], rows["mean"], yerr=[rows["mean"] - rows["min"], rows["max"] - rows["mean"]],
            fmt="*" if out else "o", ms=9 if out else 4, color=color, capsize=2,
            label=f"N = {n:,.0f}" + (" (held out)" if out else ""),
        )  # fmt: skip
        left.plot(grid, best.predict(np.full_like(grid, n), grid), "--" if out else "-",
                  color=color, lw=1.2)  # fmt: skip
    left.set_title(f"selected by forward CV: {selected}\n{best.form.formula}", fontsize=8)
    left.legend(fontsize=7, loc="upper right")
    if held_n:
        n = max(held_n)
        rows = means[means["N"] == n]
        form_colors = sns.color_palette("tab10", len(reports))
        for (name, rep), color in zip(reports.items(), form_colors, strict=True):
            if rep.fit is None:
                continue
            lw, alpha = (2.2, 1.0) if name == selected else (1.2, 0.8)
            tag = name + (" (selected)" if name == selected else "")
            line = rep.fit.predict(np.full_like(grid, n), grid)
            right.plot(grid, line, color=color, lw=lw, alpha=alpha, label=tag)
            if name == selected:
                band = rep.fit.band(np.full_like(grid, n), grid, int(rows["size"].max()))
                if band is not None:
                    right.fill_between(grid, *band, color=color, alpha=0.15, lw=0,
                                       label="its 95% band for a mean of the seeds")  # fmt: skip
        right.errorbar(
            rows["D"], rows["mean"], yerr=[rows["mean"] - rows["min"], rows["max"] - rows["mean"]],
            fmt="*", ms=11, color="crimson", capsize=2, label="measured (seeds' range)", zorder=5,
        )  # fmt: skip
        right.set_title(f"the held-out model, N = {n:,.0f}: each form fitted without it",
                        fontsize=8)  # fmt: skip
        right.legend(fontsize=7, loc="upper right")
    for ax in (left, right):
        ax.set(xscale="log", yscale="log", xlabel=LABELS["D"])
        readable_log_axis(ax.xaxis, *ax.get_xlim(), "D")
    left.set_ylabel("final validation loss")
    readable_log_axis(left.yaxis, *left.get_ylim())
    return save(fig, path)
