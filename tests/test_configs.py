"""Every option of every config group composes, and every experiment is valid for every job of
its sweep (lightning-hydra-template's tests/test_configs.py, for our groups)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from tinygpt import validation
from tinygpt.app import config_dir
from tinygpt.train import compute, job

CONF = Path(config_dir())
GROUPS = ["model", "data", "data/tokenizer", "optimizer", "optimizer/schedule", "hardware", "seal"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option):
    cfg = composed(f"{group}={option}")
    if group == "optimizer/schedule":
        assert instantiate(cfg.optimizer.schedule).factor(0, 100) > 0
    if group == "model":
        job.validate(cfg)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_job_of_every_experiment_is_valid(experiment):
    cfg = composed(f"experiment={experiment}")
    sweep = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    for model in sweep.get("model", [None]):
        job_cfg = composed(f"experiment={experiment}", *([f"model={model}"] if model else []))
        with open_dict(job_cfg):
            del job_cfg["hydra"]
        if job_cfg.isoflop.budgets:
            assert compute.apply(job_cfg), model
        validation.check(job_cfg)
        job.validate(job_cfg)
