"""Every option of every config group composes, and every experiment is valid for every job of
its sweep (lightning-hydra-template's tests/test_configs.py, for our groups)."""

import inspect
import itertools
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from tinygpt import hardware, validation
from tinygpt.app import config_dir
from tinygpt.errors import TinyGPTError
from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train import compute, job
from tinygpt.train.optim import build_optimizer

CONF = Path(config_dir())
GROUPS = [
    "model",
    "data",
    "data/tokenizer",
    "optimizer",
    "optimizer/schedule",
    "hardware",
    "seal",
    "seal/policy",
    "job",
    "curve",
]
# Groups that exist only under an option of their parent group.
NEEDS = {"seal/policy": ["seal=lora"]}
DOCS = ["In the beginning God created the heaven and the earth.", "And the earth was without form."]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def binds(node: DictConfig) -> None:
    """The node's ``_target_`` exists and takes the node's arguments (without calling it: a
    corpus target would read its files)."""
    target = get_method(node._target_)
    args = {k: v for k, v in OmegaConf.to_container(node).items() if not k.startswith("_")}
    inspect.signature(target).bind_partial(**args)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_builds_what_it_names(group, option):
    """Each option builds the object its ``_target_`` names, as the job would."""
    cfg = composed(*NEEDS.get(group, []), f"{group}={option}")
    if group == "model":
        with torch.device("meta"):
            model = TinyGPT(GPTConfig.from_node(cfg.model, 66))
        assert model.cfg.d_model == cfg.model.d_model and len(model.blocks) == cfg.model.n_layers
    elif group == "data":
        binds(cfg.data.corpus)
    elif group == "data/tokenizer":
        tok = instantiate(cfg.data.tokenizer)(DOCS)
        assert tok.decode(tok.encode(DOCS[0])) == DOCS[0]
    elif group == "optimizer":
        opt = build_optimizer(torch.nn.Linear(4, 4), cfg.optimizer)
        assert isinstance(opt, get_class(cfg.optimizer.impl._target_))
    elif group in ("optimizer/schedule", "curve"):  # a curve is a schedule (and a length)
        assert instantiate(cfg.optimizer.schedule).factor(0, 100) > 0
    elif group == "hardware":
        try:
            assert hardware.resolve(cfg.hardware).device.type in ("cpu", "cuda", "mps")
        except TinyGPTError as e:  # hardware=cuda or mps where there is none
            assert f"hardware={option}" in str(e)
    elif group == "seal":
        assert cfg.seal.enabled == (option != "off")
        assert cfg.job._target_ == (
            "tinygpt.seal.job.run" if cfg.seal.enabled else "tinygpt.train.job.run"
        )
        if cfg.seal.target is not None:
            binds(cfg.seal.target)
    elif group == "job":
        binds(cfg.job)
        assert get_method(cfg.job._target_).__module__ == f"tinygpt.{option}.job"
    elif group == "seal/policy":
        assert cfg.seal.policy.name == option and cfg.seal.policy._partial_
        binds(cfg.seal.policy)  # its knobs are the class's arguments


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_every_launcher_resolves(launcher):
    cfg = composed(f"hydra/launcher={launcher}")
    assert get_class(cfg.hydra.launcher._target_)


@pytest.mark.parametrize("app", ["analyze", "plan"])
@pytest.mark.parametrize("source", options("source"))
def test_every_analysis_source_binds(source, app):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            app,
            overrides=[f"source={source}", "source.path=runs.csv"]
            if source != "mlflow"
            else [f"source={source}"],
        )
    binds(cfg.source)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_job_of_every_experiment_is_valid(experiment):
    cfg = composed(f"experiment={experiment}")
    sweep = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    # The swept options of config groups: each job composes its own defaults.
    groups = [[f"{g}={o}" for o in sweep[g]] for g in ("model", "curve") if g in sweep]
    for job_overrides in itertools.product(*groups):
        job_cfg = composed(f"experiment={experiment}", *job_overrides)
        with open_dict(job_cfg):
            del job_cfg["hydra"]
        if job_cfg.isoflop.budgets:
            assert compute.apply(job_cfg), job_overrides
        validation.check(job_cfg)
        job.validate(job_cfg)


@pytest.mark.parametrize(
    "override",
    [
        "optimizer.impl.eps=tiny",  # a wrong type inside a typed option
        "optimizer.impl.beta=0.9",  # a typo
        "optimizer=sgd optimizer.impl.nesterov=maybe",
        "data/tokenizer=bpe data.tokenizer.vocab_size=big",
        "data/tokenizer=bpe data.tokenizer.min_freq=3",
        "seal=lora seal/policy=self seal.policy.temperature=hot",
        "seal=lora seal/policy=pretrained seal.policy.modle=x.gguf",
    ],
)
def test_a_wrong_value_inside_an_option_fails_at_compose_time(override):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        composed(*override.split())


def test_a_tuned_lr_per_width_replaces_the_peak_lr_of_that_width_only():
    tuned = "++optimizer.lr_by_width={16:0.012,64:0.003}"  # ++: a dict override merges keys
    for width, lr in [("d16", 0.012), ("d64", 0.003), ("d32", 4.0e-3)]:
        cfg = composed("optimizer.lr=4e-3", tuned, f"model={width}")
        with open_dict(cfg):
            del cfg["hydra"]
        job.validate(cfg)
        assert cfg.optimizer.lr == pytest.approx(lr)


def test_a_seed_with_its_own_budgets_trains_those_and_records_the_largest():
    for seed, budgets in [(3, [200000, 400000]), (1, [200000, 400000, 800000, 1600000])]:
        cfg = composed("experiment=scaling", "model=d64", f"seed={seed}")
        with open_dict(cfg):
            del cfg["hydra"]
        job.validate(cfg)
        assert list(cfg.training.budgets) == budgets
        assert cfg.training.tokens == budgets[-1]


def test_one_tuned_lr_per_size_is_a_scaling_study_and_three_per_size_an_lr_sweep():
    from tinygpt.scaling.table.runs import kind_of

    per_size = pd.DataFrame({"N": [1, 1, 2, 2, 3, 3], "optimizer.lr": [4, 4, 2, 2, 1, 1]})
    assert kind_of(per_size) == "scaling"
    sweep = pd.DataFrame({"N": [1, 1, 1, 2, 2, 2], "optimizer.lr": [1, 2, 4, 1, 2, 4]})
    assert kind_of(sweep) == "lr_transfer"
