"""The drawing conventions every figure of the analysis shares: axis labels, readable log
ticks, the held-out marker, one-variable law bands, saving. A leaf: it imports nothing of
tinygpt.scaling, so every room (laws, curves, adaptation, the views) can draw with it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.ticker import (
    EngFormatter,
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

if TYPE_CHECKING:
    from tinygpt.scaling.laws.law import Law

LABELS = {"N": "non-embedding parameters N", "D": "tokens D", "C": "training FLOPs C"}
N_TOTAL = "parameters N (embeddings included)"


def label(table: pd.DataFrame, x: str) -> str:
    """The axis label of a table column; N and C say what they count."""
    if x == "N" and table.attrs.get("parameters") == "total":
        return N_TOTAL
    if x == "C" and table.attrs.get("flops") not in (None, "unstated"):
        return f"{LABELS['C']} ({table.attrs['flops']} count)"
    return LABELS.get(x, x)


HELD_OUT = {"color": "crimson", "marker": "*", "s": 110, "zorder": 5}


def readable_log_axis(axis: Axis, lo: float, hi: float, name: str = "") -> None:
    """Tick labels a reader can use on a log axis, whatever its range.

    Under a decade (a loss axis) matplotlib would label nothing; there ticks go at round linear
    values. Over a decade they go at 1, 2 and 5 per decade, in engineering units for counts.
    """
    if hi / lo < 10:
        ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo <= t <= hi and t > 0]
        axis.set_major_locator(FixedLocator(ticks))
        counts = name in ("N", "D") and lo >= 1000
        axis.set_major_formatter(EngFormatter(sep="") if counts else FuncFormatter(short))
    else:
        decades = np.log10(hi / lo)
        axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if decades < 4 else (1,)))
        if name == "C":
            axis.set_major_formatter(FuncFormatter(short))
        else:
            axis.set_major_formatter(EngFormatter(sep=""))
    axis.set_minor_formatter(NullFormatter())


def save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def short(value: float, _: object = None) -> str:
    return f"{value:.3g}".replace("e+", "e")


def law_band(
    ax: Axes,
    law: Law,
    grid: np.ndarray,
    color: str,
    label: str,
    style: str = "-",
    band_label: str | None = "95% bootstrap band",
) -> None:
    """A one-variable law along ``grid`` with its 95% bootstrap band (where it has one)."""
    x = grid[:, None]
    ax.plot(grid, law.predict(x), style, color=color, label=label, lw=1.6)
    band = law.band(x)
    if band is not None:
        ax.fill_between(grid, *band, color=color, alpha=0.18, lw=0, label=band_label)
