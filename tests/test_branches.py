"""Cooldown branches: one WSD trunk, many token budgets, each as good as its own run."""

import json
import signal

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, tinygpt_cli
from tinygpt import checkpoint
from tinygpt.errors import TinyGPTError
from tinygpt.train import loop
from tinygpt.train.job import run

# 256 tokens a step: budgets of 10, 20 and 40 steps branching at steps 8, 16 (trunk decays at 32).
WSD = ["optimizer/schedule=wsd", "optimizer.schedule.warmup_steps=2", "training.max_steps=null"]
BUDGETS = "training.budgets=[2560,5120,10240]"


def model_weights(path):
    return checkpoint.load(path)["model"]


def test_each_branch_equals_its_own_wsd_run_and_the_trunk_is_untouched(make_cfg, tmp_path):
    run(make_cfg(*WSD, BUDGETS), out_dir=tmp_path / "branched")
    res = json.loads((tmp_path / "branched" / "results.json").read_text())
    points = {b["budget_tokens"]: b for b in res["budgets"]}
    assert sorted(points) == [2560, 5120, 10240]
    assert [points[b]["branch_step"] for b in (2560, 5120, 10240)] == [8, 16, 32]
    # One schema for every budget, the trunk's included: a reader needs no special case.
    keys = {frozenset(b) for b in res["budgets"]}
    assert len(keys) == 1, keys
    assert {"parameters", "non_embedding_parameters", "flops_per_token", "flops"} <= set(
        res["budgets"][-1]
    )
    assert [b["trunk"] for b in res["budgets"]] == [False, False, True]
    trunk = points[10240]
    assert trunk["flops"] == trunk["flops_per_token"] * trunk["tokens_seen"]
    for tokens in (2560, 5120):
        alone = run(make_cfg(*WSD, f"training.tokens={tokens}"), out_dir=tmp_path / f"{tokens}")
        # Same seed, same data stream, same LR at every step: the same model, bit for bit.
        assert points[tokens]["final_val_loss"] == alone
        separate = json.loads((tmp_path / f"{tokens}" / "results.json").read_text())
        assert points[tokens]["test_loss"] == separate["test_loss"]
        assert points[tokens]["tokens_seen"] == separate["tokens_seen"] == tokens
    # The trunk after two branches is the trunk that never branched.
    run(make_cfg(*WSD, "training.budgets=[10240]"), out_dir=tmp_path / "plain")
    a = model_weights(tmp_path / "branched" / "final.pt")
    b = model_weights(tmp_path / "plain" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert res["final_val_loss"] == plain["final_val_loss"] == points[10240]["final_val_loss"]
    # Costs: the trunk's 40 steps plus 2 + 4 decay steps, against 70 steps as separate runs.
    assert res["trunk_tokens"] == 40 * 256 and res["branch_tokens"] == 6 * 256
    assert res["separate_runs_tokens"] == 70 * 256
    assert res["branch_seconds"] > 0 and res["trunk_seconds"] > 0


def test_a_stop_signal_mid_branch_resumes_at_the_branch_point(make_cfg, tmp_path, monkeypatch):
    reference = run(make_cfg(*WSD, BUDGETS), out_dir=tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())

    original = loop.Trainer._train_step
    calls = {"n": 0}

    def step_then_signal(self):
        out = original(self)
        calls["n"] += 1
        if calls["n"] == 18:  # the second step of the 5,120-token branch (trunk at step 16)
            self.stop_signal = signal.SIGTERM
        return out

    monkeypatch.setattr(loop.Trainer, "_train_step", step_then_signal)
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg(*WSD, BUDGETS), out_dir=tmp_path / "killed")
    monkeypatch.setattr(loop.Trainer, "_train_step", original)
    ckpt = checkpoint.load(checkpoint.newest(tmp_path / "killed"))
    assert ckpt["step"] == 16
    assert [b["budget_tokens"] for b in ckpt["branches"]] == [2560]

    resumed = run(make_cfg(*WSD, BUDGETS, "training.resume=true"), out_dir=tmp_path / "killed")
    assert resumed == reference
    res = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert [b["final_val_loss"] for b in res["budgets"]] == [
        b["final_val_loss"] for b in whole["budgets"]
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.budgets=[2560,5120]"], "optimizer/schedule=wsd"),
        ([*WSD, "training.budgets=[512,5120]"], "inside the warmup"),
        ([*WSD, "training.budgets=[5000,5120]"], "differ by at least one step"),
        ([*WSD, "training.budgets=[-5,5120]"], "not a positive token count"),
        ([*WSD, BUDGETS, "training.max_steps=50"], "drop training.max_steps"),
    ],
)
def test_bad_budgets_are_one_clear_error(make_cfg, tmp_path, overrides, message):
    with pytest.raises(TinyGPTError, match=message):
        run(make_cfg(*overrides), out_dir=tmp_path)


@pytest.mark.slow
def test_budgets_are_child_runs_and_a_retyped_sweep_skips_finished_branches(tmp_path, cache_dir):
    args = ["-m", *TINY, *WSD, BUDGETS, "seed=1", "tracking.log_model=false"]
    # The first attempt pauses at step 20: the 2,560 branch (step 8) and 5,120 (16) are done.
    first = tinygpt_cli(*args, "training.stop_at=20", cwd=tmp_path, cache_dir=cache_dir)
    assert first.returncode == 0, first.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tinygpt").experiment_id

    def branches():
        runs = client.search_runs([exp], "tags.kind = 'branch'")
        return {r.data.tags["budget_tokens"]: r for r in runs}

    before = branches()
    assert sorted(before) == ["2560", "5120"]
    assert {r.info.status for r in before.values()} == {"FINISHED"}

    again = tinygpt_cli(*args, cwd=tmp_path, cache_dir=cache_dir)
    assert again.returncode == 0, again.stderr
    jobs = [
        r
        for r in client.search_runs([exp])
        if r.data.tags.get("sweep") != "true" and r.data.tags.get("kind") != "branch"
    ]
    assert len(jobs) == 1 and jobs[0].info.status == "FINISHED"
    after = branches()
    assert sorted(after) == ["2560", "5120"]  # no branch twice; the largest budget is the job
    for key, r in after.items():
        assert r.info.end_time == before[key].info.end_time  # not run again
        assert r.data.tags["mlflow.parentRunId"] == jobs[0].info.run_id
        assert r.data.params["training.tokens"] == key
        assert r.data.metrics["tokens_seen"] == int(key)
    assert jobs[0].data.params["training.tokens"] == "10240"

    from tinygpt.scaling.table.runs import from_mlflow

    table = from_mlflow(uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(table["D"]) == [2560, 5120, 10240]
