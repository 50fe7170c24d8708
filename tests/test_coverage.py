"""The default intervals hold the truth as often as they say: synthetic studies of the main
job's shape, from the law and the seed noise fitted to the main job itself (a smaller version
of benchmarks/coverage.py), and a single-seed IsoFLOP grid."""

from pathlib import Path

import numpy as np
import pytest

from tinygpt.scaling.coverage import (
    grid_study,
    isoflop_rows,
    main_job_design,
    main_job_noise,
    measure,
)
from tinygpt.scaling.laws.forms import fit_form
from tinygpt.scaling.settings import FitSettings

pytestmark = pytest.mark.slow

MAIN_JOB = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MAIN_JOB = MAIN_JOB / "main_job_losses_lr_law.csv"


def test_the_default_bootstrap_covers_the_main_jobs_intervals():
    design = main_job_design(MAIN_JOB)
    sigma, shared = main_job_noise(design)
    assert 0.01 < sigma < 0.03 and 0.3 < shared < 0.9  # 1.86 % and 0.59 measured
    truth = fit_form("kaplan_q", design["N"], design["D"], design["loss"], bootstrap=0)
    unit = FitSettings().bootstrap_unit.value
    (row,) = measure(truth, design, sigma, shared, 50, (unit,), bootstrap=100, seed=11)
    r = row.to_dict()
    assert r["a_ci_coverage"] >= 0.9 and r["n_opt_ci_coverage"] >= 0.9, r
    assert r["held_out_means_in_band"] >= 0.9 and r["true_law_in_band"] >= 0.9, r


def test_a_single_seed_isoflop_grid_gets_its_exponent_and_an_honest_interval():
    rows = isoflop_rows(50, 0.005, n_boot=200)
    for name in ("isoflop", "envelope"):
        assert abs(rows[name]["mean_error"]) <= 0.02, rows
        assert rows[name]["a_ci_coverage"] >= 0.9, rows
    assert len(grid_study(np.random.default_rng(0), 0.005)["C"].unique()) == 12
