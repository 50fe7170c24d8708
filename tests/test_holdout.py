"""Laws checked on runs they never saw, on an (N, D) grid drawn from a known law."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.axes import readable_log_axis
from tinygpt.scaling.laws.law import FitSettings
from tinygpt.scaling.laws.synthetic import runs
from tinygpt.scaling.study import analyze
from tinygpt.scaling.table.grid import along
from tinygpt.scaling.views.files import write
from tinygpt.scaling.views.text import holdout_report

TRUTH = {"E": 1.8, "A": 60.0, "B": 40.0, "alpha": 0.36, "beta": 0.30}


def true_loss(n, d):
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]


def grid(noise: float = 0.003, seed: int = 0) -> pd.DataFrame:
    """5 sizes x 4 budgets x 2 seeds, as the main job lays them out."""
    sizes, budgets = np.geomspace(1e4, 3e5, 5), (1e5, 2e5, 4e5, 8e5)
    table = runs(true_loss, sizes, budgets, noise=noise, seed=seed)
    return table.assign(**{"training.tokens": table["D"]})


@pytest.fixture(scope="module")
def analysis():
    return analyze(grid(), FitSettings(bootstrap=200, l1=False, holdout="largest"))


def test_holdout_predicts_the_largest_model_of_a_known_law(analysis):
    check = analysis.holdout
    assert check is not None and check.law.name == "L(N, D)"
    assert check.law.n_points == 32  # the 4 smaller sizes x 4 budgets x 2 seeds
    pts = check.points
    assert len(pts) == 4 and set(pts["N"]) == {3e5}
    truth = true_loss(pts["N"], pts["D"])
    # The law never saw N = 3e5, yet predicts the noise-free loss there within 1 %.
    assert np.all(np.abs(pts["predicted"] / truth - 1) < 0.01)
    assert check.max_abs_relative_error < 0.01
    assert np.all(pts["ci_low"] < pts["predicted"]) and np.all(pts["predicted"] < pts["ci_high"])
    d = check.to_dict()
    assert d["points"][0].keys() >= {"N", "D", "loss", "predicted", "relative_error", "ci95"}


def test_each_held_out_point_carries_its_seeds_range(analysis):
    table = grid()
    for p in analysis.holdout.to_dict()["points"]:
        runs = table[(table["N"] == p["N"]) & (table["D"] == p["D"])]["loss"]
        assert p["seeds"] == 2 and p["seed_range"] == [runs.min(), runs.max()]
        assert runs.min() < p["loss"] < runs.max()
    line = holdout_report(analysis.holdout).splitlines()[1]
    lo, hi = analysis.holdout.points.loc[0, ["loss_min", "loss_max"]]
    assert f"(seeds {lo:.4f}–{hi:.4f})" in line


def test_one_variable_laws_are_read_along_the_grid(analysis):
    assert analysis.laws["L(N)"].n_points == 10  # 5 sizes at the largest budget
    assert analysis.laws["L(D)"].n_points == 8  # 4 budgets of the largest model
    assert analysis.holdouts["L(N)"].points["D"].tolist() == [8e5]
    assert "determines D one to one" in analysis.skipped["L(training.tokens)"]
    rows = along(analysis.table, "N")
    assert set(rows["D"]) == {8e5}


def test_fit_json_carries_the_holdout(analysis, tmp_path):
    paths = write(analysis, tmp_path)
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["holdout"]["law"] == "L(N, D)"
    assert fit["holdout"]["max_abs_relative_error"] == pytest.approx(
        analysis.holdout.max_abs_relative_error
    )
    assert {p.name for p in paths} >= {"scaling_N.png", "loss_vs_tokens.png", "iso_loss.png"}


def test_compute_above_holds_out_exactly_the_larger_runs():
    table = grid()
    threshold = 1e12
    a = analyze(table, FitSettings(bootstrap=0, l1=False, holdout=f"compute_above:{threshold}"))
    held = a.holdouts["L(N, D)"].points
    expected = table[table["C"] > threshold].groupby(["N", "D"]).ngroups
    assert len(held) == expected and (held["C"] > threshold).all()
    assert a.holdouts["L(N, D)"].law.n_points == int((table["C"] <= threshold).sum())


def test_no_holdout_and_bad_rules():
    a = analyze(grid(), FitSettings(bootstrap=0, l1=False, holdout="none"))
    assert a.holdout is None and "holdout" not in a.to_dict()
    with pytest.raises(TinyGPTError, match="fit.holdout=smallest is not a holdout rule"):
        analyze(grid(), FitSettings(bootstrap=0, l1=False, holdout="smallest"))
    with pytest.raises(TinyGPTError, match="is not a FLOP count"):
        analyze(grid(), FitSettings(bootstrap=0, l1=False, holdout="compute_above:lots"))


@pytest.mark.parametrize(("lo", "hi"), [(2.2, 3.5), (1.9, 2.05), (1e4, 3e5)])
def test_log_axes_always_carry_readable_labels(lo, hi):
    fig, ax = plt.subplots()
    ax.set(yscale="log", ylim=(lo, hi))
    readable_log_axis(ax.yaxis, lo, hi)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    plt.close(fig)
    assert len(labels) >= 3 and len(ticks) >= 3, labels
