"""An IsoFLOP study end to end on the shipped corpus: `tinygpt -m experiment=isoflop`, then
`tinygpt-analyze`, small enough for CI."""

import json

import numpy as np
import pytest

from tests.conftest import tinygpt_cli

pytestmark = pytest.mark.slow

# model=d32 replaces the experiment's sweep over presets; the widths are swept instead.
SMALL = [
    "model=d32",
    "model.d_model=6,8,12,16,24",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.context=32",
    "training.batch_size=8",
    "training.eval_batches=2",
    "optimizer.schedule.warmup_steps=2",
    "seed=1",
    "tracking.log_model=false",
]


def test_isoflop_study_gives_a_frontier_with_finite_cis(tmp_path, cache_dir):
    budgets = "isoflop.budgets=[4e9,8e9,1.6e10]"  # the lowest loss is inside 6-24 at each
    sweep = tinygpt_cli(
        "-m", "experiment=isoflop", budgets, *SMALL, cwd=tmp_path, timeout=900, cache_dir=cache_dir
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "Launching 5 jobs" in sweep.stdout + sweep.stderr
    analysis = tinygpt_cli(
        "fit.bootstrap=200", cwd=tmp_path, cache_dir=cache_dir, app="tinygpt.analyze"
    )
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    assert "IsoFLOP profiles" in analysis.stdout and "2. IsoFLOP valleys" in analysis.stdout
    fit = json.loads(next(tmp_path.glob("analysis/*/*/fit.json")).read_text())
    iso = fit["isoflop"]
    assert len(iso["budgets"]) == 3
    for budget in iso["budgets"]:
        assert budget["sizes"] >= 3
    for key in ("N_opt", "D_opt"):
        assert np.isfinite(iso[key]["exponent"]) and np.isfinite(iso[key]["ci95"]).all()
        lo, hi = iso[key]["ci95"]
        assert lo <= iso[key]["exponent"] <= hi
    assert (next(tmp_path.glob("analysis/*/*/isoflop.png"))).stat().st_size > 10_000
