"""The analysis as files: points.csv, aggregated.csv, fit.json and the figures."""

from __future__ import annotations

import json
from pathlib import Path

from tinygpt.scaling.study import Analysis
from tinygpt.scaling.views import figures


def write(analysis: Analysis, out: Path, plots: bool = True) -> list[Path]:
    """points.csv, aggregated.csv, fit.json and the figures; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "points.csv", out / "aggregated.csv", out / "fit.json"]
    # Every row says what its N and C count: a points.csv read on its own keeps its units.
    conv = analysis.conventions
    analysis.table.assign(N_counts=conv["parameters"], C_counts=conv["flops"]).to_csv(
        paths[0], index=False
    )
    analysis.aggregated.to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(analysis.to_dict(), indent=2, default=float))
    if plots:
        paths += figures.draw_all(analysis, out)
    return paths
