"""experiment=lr_tune: an Optuna study through Hydra's sweeper, each trial an MLflow child run."""

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tinygpt_cli

pytestmark = pytest.mark.slow


def test_an_optuna_study_lands_as_mlflow_children_with_its_best_lr(tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m",
        "experiment=lr_tune",
        "model=d16",
        "model.n_layers=1",
        "training.tokens=16000",
        "training.eval_batches=2",
        "hydra.sweeper.n_trials=3",
        "tracking.log_model=false",
        "hydra.sweep.dir=study",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("tinygpt").experiment_id)
    (parent,) = [r for r in runs if r.data.tags.get("sweep") == "true"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    lrs = {float(t.data.params["optimizer.lr"]) for t in trials}
    assert len(lrs) == 3 and all(1e-3 <= lr <= 0.032 for lr in lrs)
    best = yaml.safe_load((tmp_path / "study" / "optimization_results.yaml").read_text())
    losses = {
        float(t.data.params["optimizer.lr"]): t.data.metrics["final_val_loss"] for t in trials
    }
    assert best["best_value"] == pytest.approx(min(losses.values()))
    assert best["best_params"]["optimizer.lr"] == pytest.approx(min(losses, key=losses.get))
