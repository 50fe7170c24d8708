"""The same sweeps against a real `mlflow server`, backed by a real PostgreSQL."""

import json
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests import services
from tests.conftest import TINY, tinygpt_cli

pytestmark = [pytest.mark.slow, pytest.mark.service]


def rest(uri: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{path}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def search(uri: str) -> list[dict]:
    exp = rest(uri, "experiments/search", {"max_results": 10})["experiments"]
    ids = [e["experiment_id"] for e in exp if e["name"] == "tinygpt"]
    return rest(uri, "runs/search", {"experiment_ids": ids, "max_results": 100}).get("runs", [])


def tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    if services.postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    tmp = tmp_path_factory.mktemp("pg")
    with services.postgres() as db, services.mlflow_server(db, tmp) as uri:
        yield uri


def test_sweep_into_a_postgres_backed_server(pg_server, tmp_path, cache_dir):
    proc = tinygpt_cli(
        "-m", *TINY, "seed=1,2", f"tracking.uri={pg_server}", cwd=tmp_path, cache_dir=cache_dir
    )
    assert proc.returncode == 0, proc.stderr
    runs = search(pg_server)
    parents = [r for r in runs if tags(r).get("sweep") == "true"]
    children = [r for r in runs if tags(r).get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 2
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}
    client = MlflowClient(pg_server)
    run_id = children[0]["info"]["run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [5, 10, 15, 20]
    assert "results.json" in {a.path for a in client.list_artifacts(run_id)}
    assert not (tmp_path / "mlflow.db").exists()


def test_server_on_a_sweeps_sqlite_store_answers_rest_search(sweep_store, tmp_path):
    backend = f"sqlite:///{sweep_store / 'mlflow.db'}"
    with services.mlflow_server(backend, tmp_path) as uri:
        runs = search(uri)
    parents = [r for r in runs if tags(r).get("sweep") == "true"]
    assert len(parents) == 1
    children = [
        r
        for r in runs
        if tags(r).get("mlflow.parentRunId") == parents[0]["info"]["run_id"]
        and tags(r).get("kind") != "analysis"
    ]
    assert len(children) == 8
    for child in children:
        params = {p["key"]: p["value"] for p in child["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
        assert {"model.d_model", "seed"} <= params.keys()
        assert {"final_val_loss", "train_loss", "val_loss"} <= metrics.keys()
