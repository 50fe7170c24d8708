"""`tinygpt-analyze` on a real sweep in an MLflow store, and the notebook."""

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from tests.conftest import tinygpt_cli
from tinygpt.scaling.table.runs import from_mlflow

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "scaling_laws.ipynb"


def test_table_from_the_latest_sweep(sweep_store):
    table = from_mlflow(uri=f"sqlite:///{sweep_store / 'mlflow.db'}")
    assert len(table) == 8
    assert {"N", "D", "C", "loss", "seed", "model.d_model", "model.n_layers"} <= set(table)
    assert "data.subset_seed" not in table and table["D"].nunique() == 1
    # Each job logged its training split's size: one pass, the most a plan proposes.
    assert table.attrs["train_tokens"] > table["D"].max()
    # C is each run's FLOPs: 6N per token plus attention, the same per token for one model.
    assert (table["C"] > 6 * table["N"] * table["D"]).all()
    per_token = (table["C"] / table["D"]).groupby(table["N"]).nunique()
    assert (per_token == 1).all() and len(per_token) == 4


def test_n_counts_the_embeddings_on_request(sweep_store):
    """source.parameters=total (the default): N is every parameter, embeddings included;
    non_embedding is Kaplan's count."""
    uri = f"sqlite:///{sweep_store / 'mlflow.db'}"
    kaplan = from_mlflow(uri=uri, parameters="non_embedding").sort_values("run_id")
    kaplan = kaplan.reset_index(drop=True)
    chinchilla = from_mlflow(uri=uri).sort_values("run_id")
    chinchilla = chinchilla.reset_index(drop=True)
    assert chinchilla.attrs["parameters"] == "total"
    assert kaplan.attrs["parameters"] == "non_embedding"
    # The difference is the token and position tables: (vocabulary + context) × d_model.
    per_width = (chinchilla["N"] - kaplan["N"]) / kaplan["model.d_model"]
    assert per_width.nunique() == 1 and per_width[0] > 32  # the context is 32
    assert (chinchilla[["D", "C", "loss"]] == kaplan[["D", "C", "loss"]]).all().all()
    curves = pd.DataFrame(chinchilla.attrs["curves"])
    assert set(curves["N"]) == set(chinchilla["N"])


def test_analyze_app_fits_the_sweep_and_logs_a_linked_run(sweep_store, cache_dir, tmp_path):
    uri = f"sqlite:///{sweep_store / 'mlflow.db'}"
    proc = tinygpt_cli(
        f"source.uri={uri}",
        "fit.bootstrap=100",
        cwd=tmp_path,
        cache_dir=cache_dir,
        app="tinygpt.analyze",
    )
    assert proc.returncode == 0, proc.stderr
    assert "L(N): L(N) = " in proc.stdout and "L(N, D): skipped" in proc.stdout
    (out,) = tmp_path.glob("analysis/*/*")
    fit = json.loads((out / "fit.json").read_text())
    assert fit["n_runs"] == 8 and fit["laws"]["L(N)"]["params"]["alpha"] > 0
    assert (out / "scaling_N.png").exists()
    # The swept width and N determine each other: L(N) says it all, no second law or figure.
    assert "L(model.d_model): skipped (model.d_model determines N one to one" in proc.stdout
    assert not (out / "scaling_model_d_model.png").exists()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tinygpt")
    (analysis,) = client.search_runs([exp.experiment_id], "tags.kind = 'analysis'")
    (parent,) = client.search_runs([exp.experiment_id], "tags.sweep = 'true'")
    assert analysis.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "L_N.alpha" in analysis.data.metrics
    assert "fit.json" in {a.path for a in client.list_artifacts(analysis.info.run_id)}
    # The runs' descriptions in the UI: the analysis holds its printed report; the sweep lists
    # its 8 jobs, each linked with its final loss, and links the analysis.
    note = analysis.data.tags["mlflow.note.content"]
    assert "```text\n8 runs from" in note and "L(N): L(N) = " in note
    # The study card, in the run's directory and its description: the checklist's answers.
    card = (out / "card.md").read_text()
    assert "N counts total parameters" in card and "C counts exact training FLOPs" in card
    assert "- 8 runs; sizes N = " in card and "## How the learning rate was set" in card
    assert "`data.tokenizer" in card and "resampling job" in card
    assert "# Study card" in note
    # Every law line and fit.json say what N and C count; points.csv carries it per row.
    assert "L(N): " in proc.stdout and "[N total]" in proc.stdout
    assert fit["conventions"] == {"parameters": "total", "flops": "exact"}
    points = pd.read_csv(out / "points.csv")
    assert set(points["N_counts"]) == {"total"} and set(points["C_counts"]) == {"exact"}
    sweep_note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    jobs = [r for r in children if r.data.tags.get("kind") != "analysis"]
    assert len(jobs) == 8
    for job in jobs:
        loss = f"{job.data.metrics['final_val_loss']:.4f}"
        label = f"model=d{job.data.params['model.d_model']} seed={job.data.params['seed']}"
        link = f"[{label}](#/experiments/{exp.experiment_id}/runs/{job.info.run_id})"
        assert f"| {link} | FINISHED | {loss} |" in sweep_note
    assert "`tinygpt -m model=d32,d48,d64,d96 seed=1,2" in sweep_note
    assert f"(#/experiments/{exp.experiment_id}/runs/{analysis.info.run_id})" in sweep_note


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["source.sweep=nope"], "no sweep named 'nope'"),
        (["source.filter=\"params.seed = '99'\""], "no runs match filter"),
        (["fit.holdout=smallest"], "fit.holdout=smallest is not a holdout rule"),
        (["fit.holdout=compute_above:lots"], "'lots' is not a FLOP count"),
    ],
)
def test_no_matching_runs_is_one_clear_message(sweep_store, cache_dir, tmp_path, args, message):
    uri = f"sqlite:///{sweep_store / 'mlflow.db'}"
    proc = tinygpt_cli(
        f"source.uri={uri}", *args, cwd=tmp_path, cache_dir=cache_dir, app="tinygpt.analyze"
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_notebook_runs_against_a_store(sweep_store, tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("TINYGPT_STORE", f"sqlite:///{sweep_store / 'mlflow.db'}")
    monkeypatch.setenv("TINYGPT_NOTEBOOK_OUT", str(tmp_path / "nb-out"))
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "nb-out" / "fit.json").exists()
