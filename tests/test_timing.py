"""The phase clock that splits a job's wall time (benchmarks/main_job.py reads it)."""

import json
import time

import pytest

from tinygpt.timing import PhaseClock
from tinygpt.train.job import run


def test_each_second_is_charged_to_the_innermost_phase_only():
    clock = PhaseClock()
    clock.reset("start-up")
    time.sleep(0.05)
    clock.switch("training")
    time.sleep(0.05)
    with clock.phase("checkpoints"):
        time.sleep(0.1)
        with clock.phase("tracking"):
            time.sleep(0.05)
    time.sleep(0.05)
    total = clock.total()
    s = clock.seconds
    assert s["start-up"] == pytest.approx(0.05, abs=0.03)
    assert s["training"] == pytest.approx(0.10, abs=0.03)  # the nested time is not in it
    assert s["checkpoints"] == pytest.approx(0.10, abs=0.03)
    assert s["tracking"] == pytest.approx(0.05, abs=0.03)
    assert total == pytest.approx(sum(s.values()))
    assert total == pytest.approx(0.30, abs=0.06)


def test_a_job_records_where_its_time_went(make_cfg, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = make_cfg(
        "training.eval_interval=10",
        "training.save_interval=10",
        "tracking.enabled=true",
        f"tracking.uri={store}",
    )
    t0 = time.perf_counter()  # after composing: the job's clock starts when run() is called
    run(cfg, out_dir=tmp_path)
    wall = time.perf_counter() - t0
    timing = json.loads((tmp_path / "timing.json").read_text())
    phases = timing["seconds"]
    for phase in (
        "start-up",
        "training",
        "evaluation",
        "checkpoints",
        "tracking",
        "model logging",
        "finish",
    ):
        assert phases[phase] > 0, phase
    assert timing["total_seconds"] == pytest.approx(sum(phases.values()))
    # The phases cover the job: nothing outside them but the call itself.
    assert 0 <= wall - timing["total_seconds"] < 0.05 * wall
    # Trained for real: the steps dominate a job of this size.
    assert phases["training"] > phases["checkpoints"]
