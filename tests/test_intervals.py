"""No interval is printed or written as [x, x]: where a resampling cannot move a quantity (one run
per point, a parameter at a bound) the report says so in words and fit.json holds null."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tinygpt_cli
from tinygpt.scaling.interval import NO_INTERVAL, as_json, as_text, resolved

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
MAIN_JOB = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "main_job_losses.csv"
CHEAP = ["fit.bootstrap=100", "fit.forms_bootstrap=20", "fit.forms_folds=1", "plots=false"]


def single_seed_isoflop_grid(path: Path, columns: str = "N,D") -> Path:
    """12 computes, each over the 6-8 sizes of one ladder that give it 3M-3G tokens (as published
    IsoFLOP tables are), one run each, on a Chinchilla-like law with 0.5 % noise."""
    rng = np.random.default_rng(0)
    rows = [f"{columns},loss"]
    ladder = np.geomspace(1e5, 1e11, 37)
    for c in np.geomspace(1e15, 1e18, 12):
        for n in ladder[(ladder >= c / 6 / 3e9) & (ladder <= c / 6 / 3e6)]:
            d = c / (6 * n)
            loss = (1.7 + 406 / n**0.34 + 410 / d**0.28) * np.exp(rng.normal(0, 0.005))
            first = c if columns.startswith("C") else n  # a published table may give C, not N
            rows.append(f"{first},{d},{loss}")
    path.write_text("\n".join(rows) + "\n")
    return path


def degenerate(values) -> list:
    """Every ``ci``-named pair in a fit.json that is [x, x] or holds a NaN."""
    found = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            pair = len(node) == 2 and all(isinstance(x, float | int) for x in node)
            if "ci" in key and pair and not resolved(*map(float, node)):
                found.append((key, node))
            for v in node:
                walk(v, key)

    walk(values)
    return found


@pytest.mark.parametrize(
    "source",
    [
        ["source=csv", f"source.path={MAIN_JOB}", "source.columns.seed=seed"],
        ["source=chinchilla", f"source.path={FIXTURES / 'chinchilla_epoch_data.csv'}"],
        ["source=csv", "source.path={grid}"],
        ["source=csv", "source.path={c_grid}"],
    ],
    ids=["main_job", "chinchilla", "single_seed_grid", "isoflop_table_without_N"],
)
def test_no_zero_width_interval_in_the_report_or_fit_json(tmp_path, cache_dir, source, request):
    grid = single_seed_isoflop_grid(tmp_path / "grid.csv")
    c_grid = single_seed_isoflop_grid(tmp_path / "c_grid.csv", "C,D")  # N from C = 6ND
    args = [a.format(grid=grid, c_grid=c_grid) for a in source]
    proc = tinygpt_cli(*args, *CHEAP, "hydra.run.dir=out", cwd=tmp_path, cache_dir=cache_dir,
                       app="tinygpt.analyze")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    same = re.findall(r"\[([-+0-9.e,]+), \1\]", proc.stdout)
    assert not same and "[nan, nan]" not in proc.stdout, same
    fitted = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert not degenerate(fitted)
    if request.node.callspec.id in ("single_seed_grid", "isoflop_table_without_N"):
        # One run per (N, C): nothing to resample, so the envelope's and the valleys' draws
        # add noise from the profiles' own scatter; both intervals hold the law's a = 0.452.
        assert "1. envelope, σ-drawn ends" in proc.stdout
        assert fitted["isoflop"]["noise"]["from"] == "neighbours"
        for lo, hi in (fitted["envelope"]["N_opt"]["ci95"], fitted["isoflop"]["N_opt"]["ci95"]):
            assert lo < 0.28 / 0.62 < hi


def test_an_interval_is_written_only_where_it_has_a_width():
    assert as_json(0.5, 0.5) is None and as_json(float("nan"), 1.0) is None
    assert as_json(0.4, 0.6) == [0.4, 0.6]
    assert as_text(0.4, 0.6) == "[0.400, 0.600]"
    assert as_text(0.496, 0.496).startswith(f"({NO_INTERVAL}")
