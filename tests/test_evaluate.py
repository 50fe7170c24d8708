"""`tinygpt-eval`: every checkpoint of a run and its initialisation, on its own corpus or another,
into evaluation.csv, a figure and an MLflow run linked to the source run."""

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli
from tinygpt.data.tokenizers import load_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict:
    cwd = tmp_path_factory.mktemp("evaluated")
    proc = tinygpt_cli(
        *TINY, "training.save_interval=10", "tracking.log_model=false", cwd=cwd, cache_dir=cache_dir
    )
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])
    return {"cwd": cwd, "run": run, "client": client}


def evaluate(trained: dict, cache_dir: Path, *args: str):
    uri = f"tracking_uri=sqlite:///{trained['cwd'] / 'mlflow.db'}"
    return tinygpt_cli(
        uri,
        "batch_size=8",
        "batches=2",
        *args,
        cwd=trained["cwd"],
        cache_dir=cache_dir,
        app="tinygpt.evaluate",
    )


def newest_table(cwd: Path) -> pd.DataFrame:
    return pd.read_csv(sorted(cwd.glob("evaluation/*/*/evaluation.csv"))[-1])


def test_every_checkpoint_and_the_initialisation_into_a_table_a_plot_and_a_linked_run(
    trained, cache_dir
):
    run = trained["run"]
    proc = evaluate(trained, cache_dir, f"run={run.info.run_id}")
    assert proc.returncode == 0, proc.stderr
    table = newest_table(trained["cwd"])
    assert list(table["step"]) == [0, 10, 20]
    assert list(table["tokens"]) == [0, 10 * 8 * 32, 20 * 8 * 32]
    # The same windows as the run's own evaluation: step 20 is its final validation loss.
    assert table["loss"].iloc[-1] == pytest.approx(run.data.metrics["final_val_loss"], rel=1e-5)
    assert table["bpb"].iloc[-1] == pytest.approx(run.data.metrics["final_val_bpb"], rel=1e-5)
    # Untrained, the model is near the uniform guess over the vocabulary, and training helps.
    vocab = load_tokenizer(Path(run.data.tags["output_dir"]) / "tokenizer.json").vocab_size
    assert table["loss"].iloc[0] == pytest.approx(math.log(vocab), rel=0.05)
    assert table["loss"].is_monotonic_decreasing
    assert next(trained["cwd"].glob("evaluation/*/*/loss_vs_step.png")).stat().st_size > 10_000
    client = trained["client"]
    (ev,) = client.search_runs([run.info.experiment_id], "tags.kind = 'evaluation'")
    assert ev.data.tags["source_run_id"] == run.info.run_id
    history = client.get_metric_history(ev.info.run_id, "eval_loss")
    assert sorted(m.step for m in history) == [0, 10, 20]


def test_another_corpus_is_one_override(trained, cache_dir, small_text):
    run_dir = trained["run"].data.tags["output_dir"]
    own = evaluate(trained, cache_dir, f"run={run_dir}", "log_to_mlflow=false")
    other = evaluate(
        trained,
        cache_dir,
        f"run={run_dir}",
        "data=text",
        f"data.path={small_text}",
        "log_to_mlflow=false",
    )
    assert own.returncode == 0 and other.returncode == 0, own.stderr + other.stderr
    tables = sorted(trained["cwd"].glob("evaluation/*/*/evaluation.csv"))[-2:]
    own_t, other_t = (pd.read_csv(t) for t in tables)
    assert list(other_t["step"]) == [0, 10, 20]
    assert (own_t["loss"] != other_t["loss"]).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "run is not set"),
        (["run=/no/such/run"], "run=/no/such/run is neither a run directory"),
        (["run=.", "batches=0"], "batches=0 must be at least 1"),
        (["run={dir}", "split=dev"], "split=dev: choose one of train, val, test"),
        (["run={dir}", "data=nope"], "Could not find 'data/nope'"),
    ],
)
def test_eval_answers_bad_input_in_one_line(trained, cache_dir, args, message):
    args = [a.format(dir=trained["run"].data.tags["output_dir"]) for a in args]
    proc = evaluate(trained, cache_dir, *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
