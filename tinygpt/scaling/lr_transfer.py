"""The LR-transfer view of a sweep over ``optimizer.lr``: loss against LR per width (and per
parametrization), each width's optimum from a parabola in log2 LR around its best grid point, and
how far the optimum drifts from the narrowest width to the widest.

The optimum's 95 % interval is a bootstrap over seeds (each LR's seeds resampled); with one seed
per cell there is none, and the grid spacing (one octave) bounds what the parabola can tell.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError

LR = "optimizer.lr"
WIDTH = "model.d_model"
SERIES = "model.parametrization"


@dataclass(frozen=True)
class Optimum:
    series: str
    width: float
    lr: float  # the parabola's vertex, or the best grid point where the parabola cannot say
    best_grid_lr: float
    loss: float  # the best cell's mean loss
    ci95: tuple[float, float] | None
    note: str | None  # why the vertex was not used


def vertex(log_lr: np.ndarray, loss: np.ndarray) -> tuple[float, str | None]:
    """log2 LR of the minimum of the parabola through the best point and its two neighbours. The
    best grid point itself, with a note, where it sits on the grid's edge or the parabola opens
    downward. (Wider fits are pulled off the optimum: loss rises far more steeply above the best
    LR than below it.)"""
    order = np.argsort(log_lr)
    x, y = log_lr[order], loss[order]
    best = int(np.argmin(y))
    if best in (0, len(x) - 1):
        side = "smallest" if best == 0 else "largest"
        return float(x[best]), f"best at the grid's {side} LR: extend optimizer.lr that way"
    a, b, _ = np.polyfit(x[best - 1 : best + 2], y[best - 1 : best + 2], 2)
    if a <= 0:
        return float(x[best]), "the parabola opens downward: the best grid point is used"
    return float(np.clip(-b / (2 * a), x[best - 1], x[best + 1])), None


def optima(table: pd.DataFrame, boot: int = 1000, seed: int = 0) -> list[Optimum]:
    width = WIDTH if WIDTH in table else "N"
    series = table[SERIES] if SERIES in table else pd.Series("all", index=table.index)
    rng = np.random.default_rng(seed)
    found = []
    for (name, w), cell in table.assign(_series=series).groupby(["_series", width]):
        per_lr = cell.groupby(LR)["loss"].agg(list)
        if len(per_lr) < 3:
            continue
        lrs = np.log2(per_lr.index.to_numpy(float))
        means = np.array([np.mean(v) for v in per_lr])
        x, note = vertex(lrs, means)
        ci = None
        if note is None and min(len(v) for v in per_lr) >= 2:
            draws = [
                vertex(lrs, np.array([np.mean(rng.choice(v, len(v))) for v in per_lr]))[0]
                for _ in range(boot)
            ]
            lo, hi = np.percentile(draws, [2.5, 97.5])
            ci = (float(2**lo), float(2**hi))
        best = int(np.argmin(means))
        found.append(
            Optimum(
                str(name),
                float(w),
                float(2**x),
                float(2 ** lrs[best]),
                float(means[best]),
                ci,
                note,
            )
        )
    if not found:
        raise TinyGPTError(
            "the LR-transfer view needs at least 3 values of optimizer.lr per width: sweep e.g. "
            "-m optimizer.lr=1e-3,2e-3,4e-3,8e-3"
        )
    return found


def drift(found: list[Optimum]) -> dict[str, dict[str, float]]:
    """Per series: the optimum at the widest width over the one at the narrowest."""
    out = {}
    for name in sorted({o.series for o in found}):
        rows = sorted((o for o in found if o.series == name), key=lambda o: o.width)
        if len(rows) >= 2:
            ratio = rows[-1].lr / rows[0].lr
            out[name] = {
                "from_width": rows[0].width,
                "to_width": rows[-1].width,
                "ratio": ratio,
                "octaves": float(np.log2(ratio)),
            }
    return out


def report(found: list[Optimum], drifts: dict[str, dict[str, float]]) -> str:
    lines = ["  LR transfer: the optimum per width (parabola in log2 LR around the best point)"]
    for o in sorted(found, key=lambda o: (o.series, o.width)):
        ci = f" [{o.ci95[0]:.3g}, {o.ci95[1]:.3g}]" if o.ci95 else ""
        note = f"  ({o.note})" if o.note else ""
        lines.append(
            f"    {o.series:4} width {o.width:>6,.0f}: lr* = {o.lr:.3g}{ci}, best grid lr "
            f"{o.best_grid_lr:.3g}, loss {o.loss:.4f}{note}"
        )
    for name, d in drifts.items():
        lines.append(
            f"    {name}: lr* drifts ×{d['ratio']:.2f} ({d['octaves']:+.2f} octaves) from width "
            f"{d['from_width']:,.0f} to {d['to_width']:,.0f}"
        )
    return "\n".join(lines)


def plot(table: pd.DataFrame, found: list[Optimum], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import seaborn as sns

    from tinygpt.scaling.axes import save

    width = WIDTH if WIDTH in table else "N"
    names = sorted({o.series for o in found})
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), sharey=True)
    series = table[SERIES] if SERIES in table else pd.Series("all", index=table.index)
    widths = sorted(table[width].unique())
    colors = dict(zip(widths, sns.color_palette("viridis", len(widths)), strict=True))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        rows = table[series == name]
        for w, cell in rows.groupby(width):
            stats = cell.groupby(LR)["loss"].agg(["mean", "min", "max"]).sort_index()
            err = [stats["mean"] - stats["min"], stats["max"] - stats["mean"]]
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=err,
                marker="o",
                ms=4,
                capsize=3,
                color=colors[w],
                label=f"width {w:,.0f}",
            )
            o = next((o for o in found if o.series == name and o.width == w), None)
            if o is not None:
                ax.axvline(o.lr, color=colors[w], ls=":", lw=1)
                if o.ci95:
                    ax.axvspan(*o.ci95, color=colors[w], alpha=0.12, lw=0)
        ax.set_xscale("log", base=2)
        seeds = rows.groupby([width, LR])["loss"].size().min()
        ax.set(
            xlabel="peak learning rate (log2 axis)",
            title=f"parametrization: {name} ({seeds} seed{'s' if seeds > 1 else ''} per point)",
        )
        legend = "dotted: optimum" + (", band: its 95% CI" if any(o.ci95 for o in found) else "")
        ax.legend(fontsize=8, title=legend, title_fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("final validation loss (mean; bars: seed range)")
    return save(fig, path)


def write(table: pd.DataFrame, out: Path, plots: bool = True) -> tuple[list[Path], str]:
    """lr_transfer.csv (every run), lr_transfer.json (optima and drift), lr_transfer.png."""
    out.mkdir(parents=True, exist_ok=True)
    found = optima(table)
    drifts = drift(found)
    paths = [out / "lr_transfer.csv", out / "lr_transfer.json"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(
        json.dumps({"optima": [asdict(o) for o in found], "drift": drifts}, indent=2)
    )
    if plots:
        paths.append(plot(table, found, out / "lr_transfer.png"))
    return paths, report(found, drifts)
