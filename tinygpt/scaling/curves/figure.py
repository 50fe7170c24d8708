"""The curves view's figure: measured loss curves, a whole-curve law's predictions and bands,
and the LR schedules beneath."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import EngFormatter, FuncFormatter

from tinygpt.scaling.axes import save, short


def curves_figure(curves: list, fitted: dict, fit_on: set[str], law_name: str, path: Path) -> Path:
    """Whole-curve law ``law_name``: per model size, the measured curves (solid; thick where
    fitted), the law's predictions (dashed) with their 95 % band, and the LR schedules beneath."""
    sizes = list(fitted)
    fig, axes = plt.subplots(
        2,
        len(sizes),
        figsize=(7.5 * len(sizes), 6.5),
        sharex="col",
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    palette = sns.color_palette("tab10", 10)
    for col, size in enumerate(sizes):
        law = fitted[size]
        top, bottom = axes[0, col], axes[1, col]
        group = [c for c in curves if size == c.N]
        shown = []
        for i, c in enumerate(group):
            color = palette[i % 10]
            kept = c.after(0)
            fitted_run = c.name in fit_on
            pred = law.predict(kept)
            if len(kept.steps) == 1:  # a cooldown branch: its final loss alone
                band = law.band(kept)
                if band is not None:
                    top.vlines(kept.steps, *band, color=color, lw=3, alpha=0.4)
                top.scatter(kept.steps, kept.loss, color=color, marker="o", s=36, zorder=4,
                            label=f"{c.name} (measured o, predicted x)")  # fmt: skip
                top.scatter(kept.steps, pred, color=color, marker="x", s=50, zorder=4)
                bottom.plot(np.arange(len(c.lr)), c.lr, ":", color=color, lw=1.0)
                shown.append(kept.loss)
                continue
            top.plot(
                kept.steps,
                kept.loss,
                "-",
                color=color,
                lw=2.4 if fitted_run else 1.0,
                label=f"{c.name} (fitted)" if fitted_run else c.name,
            )
            top.plot(kept.steps, pred, "--", color=color, lw=1.0)
            band = None if fitted_run else law.band(kept)
            if band is not None:
                top.fill_between(kept.steps, *band, color=color, alpha=0.15, lw=0)
            shown.append(kept.loss)
            bottom.plot(np.arange(len(c.lr)), c.lr, color=color, lw=1.2)
        values = np.concatenate(shown)
        # The first points after the warmup sit far above the rest: leave them off the scale.
        lo, hi = values.min(), np.quantile(values, 0.9)
        top.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        size_text = "" if size is None else f", N = {size:,.0f}"
        top.set_title(
            f"{law_name}{size_text}: measured (solid), predicted (dashed) with 95% band",
            fontsize=10,
        )
        top.set_ylabel("validation loss")
        top.legend(fontsize=8, ncol=2, loc="upper right")
        top.grid(alpha=0.3)
        bottom.set_ylabel("learning rate")
        bottom.set_xlabel("step")
        bottom.yaxis.set_major_formatter(FuncFormatter(short))
        bottom.xaxis.set_major_formatter(EngFormatter(sep=""))
        bottom.grid(alpha=0.3)
    return save(fig, path)
