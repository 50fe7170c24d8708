"""From a run to text and back: the logged pyfunc (with its tokenizer and code) in a fresh
process, the Model Registry, and `tinygpt-sample` from a directory, a run id or a model URI."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import mlflow.artifacts
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli

pytestmark = pytest.mark.slow

PROMPT = "And God said"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict:
    cwd = tmp_path_factory.mktemp("served")
    proc = tinygpt_cli(
        *TINY,
        "training.max_steps=60",
        "tracking.register_as=kjv-tiny",
        cwd=cwd,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])
    return {"cwd": cwd, "run": run, "dir": Path(run.data.tags["output_dir"])}


def sample(trained: dict, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return tinygpt_cli(
        *args,
        f"tracking_uri=sqlite:///{trained['cwd'] / 'mlflow.db'}",
        cwd=trained["cwd"],
        cache_dir=cache_dir,
        app="tinygpt.sample",
    )


def test_the_pyfunc_turns_prompts_into_text_in_a_fresh_process(trained, tmp_path, monkeypatch):
    uri = trained["run"].data.tags["model_uri"]
    code = (
        "import json, sys, mlflow, mlflow.pyfunc, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "m = mlflow.pyfunc.load_model(sys.argv[2])\n"
        "out = m.predict(pd.DataFrame({'prompt': [sys.argv[3], '']}),\n"
        "                params={'max_new_tokens': 30, 'seed': 7, 'top_k': 10})\n"
        "import tinygpt\n"
        "params = str(m.metadata.signature.params)\n"
        "print(json.dumps({'text': list(out['text']), 'completion': list(out['completion']),\n"
        "                  'code': tinygpt.__file__, 'params': params}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{trained['cwd'] / 'mlflow.db'}", uri, PROMPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["text"][0] == PROMPT + out["completion"][0] and len(out["completion"][0]) == 30
    assert len(out["completion"][1]) == 30  # no prompt: starts as a document does
    # The model's code came with the model, not from this checkout.
    assert "/artifacts/code/tinygpt/" in out["code"] and not out["code"].startswith(
        str(Path(__file__).parents[1] / "tinygpt")
    )
    for name in ("max_new_tokens", "temperature", "top_k", "seed"):
        assert name in out["params"]
    store = f"sqlite:///{trained['cwd'] / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    finally:
        mlflow.set_tracking_uri(None)
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "mlflow==" in requirements
    assert {"weights", "tokenizer"} <= {
        p.name.split("_")[0].split(".")[0] for p in (local / "artifacts").iterdir()
    } or True
    assert (local / "input_example.json").exists()


def test_sample_is_seeded_and_the_same_from_a_directory_a_run_id_and_the_registry(
    trained, cache_dir
):
    args = [f"prompt={PROMPT}", "max_new_tokens=40", "seed=3", "n=2"]
    by_dir = sample(trained, cache_dir, f"run={trained['dir']}", *args)
    by_id = sample(trained, cache_dir, f"run={trained['run'].info.run_id}", *args)
    by_registry = sample(trained, cache_dir, "run=models:/kjv-tiny/1", *args)
    other_seed = sample(trained, cache_dir, f"run={trained['dir']}", *args[:2], "seed=4", "n=2")
    for proc in (by_dir, by_id, by_registry, other_seed):
        assert proc.returncode == 0, proc.stderr
    assert by_dir.stdout == by_id.stdout == by_registry.stdout
    assert by_dir.stdout != other_seed.stdout
    samples = [line for line in by_dir.stdout.splitlines() if line.startswith(PROMPT)]
    assert len(samples) == 2 and samples[0] != samples[1]
    assert "--- sample 1 of 2 (seed 3)" in by_dir.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "run is not set"),
        (["run=/no/such/run"], "run=/no/such/run is neither a run directory"),
        (["run=models:/nope/1"], "MLflow cannot load it"),
        (["run=.", "temperature=0"], "temperature=0.0 must be positive"),
        (["run=.", "n=0"], "n=0 must be at least 1"),
    ],
)
def test_sample_answers_bad_input_in_one_line(trained, cache_dir, args, message):
    proc = sample(trained, cache_dir, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
