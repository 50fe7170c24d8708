"""Optimisations must not change results: a recorded loss curve and bf16 against fp32."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tinygpt.train.job import run

GOLDEN = Path(__file__).parent / "fixtures" / "loss_curve_d32_seed42.json"
CURVE = ["training.max_steps=40", "seed=42", "tracking.enabled=true"]


def loss_curve(make_cfg, tmp_path: Path) -> list[float]:
    uri = f"sqlite:///{tmp_path / 'curve.db'}"
    run(make_cfg(*CURVE, f"tracking.uri={uri}"), out_dir=tmp_path / "run")
    client = MlflowClient(uri)
    (r,) = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])
    return [
        m.value
        for m in sorted(
            client.get_metric_history(r.info.run_id, "train_loss"), key=lambda m: m.step
        )
    ]


def test_loss_curve_matches_the_recorded_one(make_cfg, tmp_path):
    """The curve recorded before the throughput work (eager, CPU, seed 42) still comes out."""
    golden = json.loads(GOLDEN.read_text())
    assert loss_curve(make_cfg, tmp_path) == pytest.approx(golden, rel=2e-4)


def test_bf16_autocast_loss_is_within_2_percent_of_fp32_after_200_steps(make_cfg, tmp_path):
    steps = ["training.max_steps=200", "training.eval_interval=200", "hardware=cpu"]
    fp32 = run(make_cfg(*steps, "hardware.precision=fp32"), out_dir=tmp_path / "fp32")
    bf16 = run(make_cfg(*steps, "hardware.precision=bf16"), out_dir=tmp_path / "bf16")
    assert bf16 == pytest.approx(fp32, rel=0.02)
