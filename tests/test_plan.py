"""tinygpt-plan: the ensemble's expected posterior spread, the greedy choice, simulated rounds
against a grid and more seeds, and the CLI end to end on a CSV and on an MLflow sweep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import initialize_config_dir
from mlflow.tracking import MlflowClient

from tests.conftest import tinygpt_cli
from tinygpt.app import config_dir
from tinygpt.scaling.plan.choose import Job, Target, choose, posterior_variance
from tinygpt.scaling.plan.round import budget_ladder, preset_size
from tinygpt.scaling.plan.simulate import (
    FIRST_BUDGETS,
    LADDER,
    SIZES,
    first_round,
    observe,
    points,
    study,
    true_fit,
)


def test_the_simulations_sizes_are_the_presets():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        kaplan = {"parameters": "non_embedding", "flops": "kaplan"}
        for size in SIZES:
            assert preset_size(size.name, **kaplan) == size
        # Under the main job's preset every width has 2 layers of 2 heads: d64 is the N = 100,096
        # of its sweep, not the 3-layer preset's 150,080.
        assert preset_size("d64", "scaling", **kaplan).N == 100_096
        assert preset_size("d16", "scaling", **kaplan) == SIZES[2]
        # The defaults, the analysis's: the tied 1,024 x 16 embedding and the 128 x 16 position
        # table counted, and the readout's 6·V·d FLOPs per token priced.
        d16 = preset_size("d16", "scaling")
        assert d16.N == 6_592 + 1_024 * 16 + 128 * 16
        assert d16.flops_per_token == 6 * (6_144 + 1_024 * 16) + 6 * 2 * 128 * 16


def test_the_budget_ladder_stays_within_one_pass_over_the_training_split():
    table = pd.DataFrame({"D": [200_704.0, 400_384.0, 800_768.0, 1_600_512.0]})
    assert budget_ladder(table) == [2e5 * 2**k for k in range(6)]  # to 4x the largest: 6.4M
    table.attrs["train_tokens"] = 2_604_527.0  # the main job's corpus: no second pass
    assert budget_ladder(table) == [2e5, 4e5, 8e5, 1.6e6]


def test_posterior_variance_is_the_gaussian_update():
    # t ~ N(0, 1), y = t observed with noise variance r: Var(t | y) = r / (1 + r).
    t = np.random.default_rng(0).normal(size=20_000)
    for r in (0.1, 1.0, 4.0):
        assert posterior_variance(t, t[:, None], np.array([r])) == pytest.approx(r / (1 + r), 0.03)
    # Two independent looks at t halve the noise.
    both = posterior_variance(t, np.c_[t, t], np.array([1.0, 1.0]))
    assert both == pytest.approx(1 / 3, rel=0.03)


def test_a_wsd_job_prices_its_branches_as_decays():
    job = Job(SIZES[2], 1, [200_000.0, 400_000.0, 800_000.0])
    fpt = SIZES[2].flops_per_token
    assert job.flops(0.1) == pytest.approx(fpt * (800_000 + 0.1 * 600_000))


@pytest.fixture(scope="module")
def first_fit():
    from tinygpt.scaling.laws.forms import fit_form

    N, D, L = observe(np.random.default_rng(1), points(first_round()), 0.01)
    return fit_form("chinchilla", N, D, L, 100, 0)


def test_the_plan_stays_within_its_flops_and_narrows_the_target(first_fit):
    flops = sum(j.flops(0.1) for j in first_round())
    c_max = 6 * SIZES[5].N * max(FIRST_BUDGETS)
    plan = choose(first_fit, Target("n_opt", at_flops=10 * c_max), SIZES, LADDER, flops, 2)
    assert 0 < plan.flops <= flops
    assert plan.narrowing > 1.5
    assert plan.ci_after[0] >= plan.ci_before[0] and plan.ci_after[1] <= plan.ci_before[1]
    # Each job's budgets are distinct and every job is a new seed.
    assert all(len(set(j.budgets)) == len(j.budgets) and j.seed >= 2 for j in plan.jobs)


@pytest.mark.slow
def test_planned_rounds_beat_a_grid_and_more_seeds_and_keep_coverage():
    c_max = 6 * SIZES[5].N * max(FIRST_BUDGETS)
    target = Target("n_opt", at_flops=10 * c_max)
    runs = [study(seed, target, bootstrap=100) for seed in range(4)]
    truth = float(target.values(true_fit(), true_fit().theta[None])[0])
    assert all(r["truth"] == truth for r in runs)
    ratio_grid = np.median([r["grid"].width / r["planned"].width for r in runs])
    ratio_seeds = np.median([r["seeds"].width / r["planned"].width for r in runs])
    assert ratio_grid > 1.5 and ratio_seeds > 1.5
    assert sum(r["planned"].covered for r in runs) >= 3


def synthetic_csv(path: Path) -> Path:
    rng = np.random.default_rng(3)
    rows = []
    for seed in (1, 2):
        N, D, L = observe(rng, points(first_round()), 0.01)
        rows += [
            {"N": n, "D": d, "loss": loss, "seed": seed} for n, d, loss in zip(N, D, L, strict=True)
        ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# What the synthetic runs' N and C count (simulate.SIZES: non-embedding N, Kaplan's FLOPs).
UNITS = ("source.parameters=non_embedding", "source.flops=kaplan")


def plan_cli(*args: str, cwd: Path, cache_dir: Path):
    return tinygpt_cli(*args, "hydra.run.dir=plan", cwd=cwd, cache_dir=cache_dir,
                       app="tinygpt.plan")  # fmt: skip


@pytest.mark.slow
def test_the_cli_writes_a_plan_a_figure_and_commands(tmp_path, cache_dir):
    csv = synthetic_csv(tmp_path / "runs.csv")
    proc = plan_cli(
        "source=csv", f"source.path={csv}", "source.columns.seed=seed", "plan.flops=3e11",
        "source.parameters=non_embedding", "source.flops=kaplan", "plan.target=loss",
        "plan.model=d96", "plan.tokens=3.2e6", "plan.form=chinchilla", "plan.bootstrap=60",
        cwd=tmp_path, cache_dir=cache_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["flops"] <= 3e11 and plan["runs"] and plan["narrowing"] > 1
    # d96 as plan.experiment (scaling: 2 layers of 2 heads) trains it, not the 3-layer preset.
    assert plan["target"] == "the loss at N = 223,872, D = 3,200,000"
    assert (tmp_path / "plan" / "plan.png").stat().st_size > 10_000
    command = plan["commands"][0]
    assert command.startswith("tinygpt -m experiment=scaling model=") and "seed=3" in command
    assert command in proc.stdout and "narrower" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "plan.flops is not set"),
        (["plan.flops=1e3"], "plan.flops=1e+03 buys no run"),
        (["plan.flops=1e12", "plan.at_flops=1e9"], "is inside the swept range"),
        (["plan.flops=1e12", "plan.target=loss"], "plan.target=loss needs plan.model"),
        (["plan.flops=1e12", "plan.target=best"], "plan.target='best'"),
        (["plan.flops=1e12", "plan.models=[d7]"], "no model preset 'd7'"),
        # A CSV that does not say what its N counts cannot be priced in preset sizes.
        (["plan.flops=1e12", "source.parameters=unstated"], "this table's N counts unstated"),
        (["plan.flops=1e12", "source.flops=per_token"], "source.flops='per_token': choose one"),
    ],
)
def test_bad_plans_are_one_line(tmp_path, cache_dir, args, message):
    csv = synthetic_csv(tmp_path / "runs.csv")
    proc = plan_cli("source=csv", f"source.path={csv}", "plan.at_flops=1e14", *UNITS, *args,
                    cwd=tmp_path, cache_dir=cache_dir)  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tinygpt-plan: error: ") and message in last, proc.stderr[-2000:]


def test_too_few_runs_is_one_line(tmp_path, cache_dir):
    csv = tmp_path / "few.csv"
    pd.DataFrame({"N": [1e4, 2e4, 4e4], "D": [1e5] * 3, "loss": [4.0, 3.8, 3.7]}).to_csv(csv)
    proc = plan_cli("source=csv", f"source.path={csv}", "plan.flops=1e12", "plan.at_flops=1e14",
                    cwd=tmp_path, cache_dir=cache_dir)  # fmt: skip
    assert proc.returncode == 2 and "too few to fit a law" in proc.stderr


@pytest.mark.slow
def test_a_plan_of_an_mlflow_sweep_is_a_run_under_it(sweep_store, cache_dir, tmp_path):
    # A copy: the shared store's other readers count its analysis runs.
    shutil.copy(sweep_store / "mlflow.db", tmp_path / "store.db")
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tinygpt").experiment_id
    (sweep,) = client.search_runs(exp, "tags.sweep = 'true'")
    proc = plan_cli(
        f"source.uri={uri}", f"source.sweep=[{sweep.info.run_name}]", "plan.flops=5e10",
        "plan.target=loss", "plan.model=d128", "plan.tokens=7680", "plan.form=chinchilla",
        "plan.bootstrap=40", "plots=false",
        cwd=tmp_path, cache_dir=cache_dir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = client.search_runs(exp, f"tags.mlflow.parentRunId = '{sweep.info.run_id}'")
    (logged,) = [r for r in runs if r.info.run_name.startswith("plan of")]
    assert logged.data.tags["kind"] == "analysis" and "plan.narrowing" in logged.data.metrics
    assert "within one pass over the runs' training split" in proc.stdout
    missing = plan_cli(f"source.uri={uri}", f"source.sweep=[{sweep.info.run_name},nope]",
                       "plan.flops=5e10", cwd=tmp_path, cache_dir=cache_dir)  # fmt: skip
    assert missing.returncode == 2 and "no sweep named 'nope'" in missing.stderr
