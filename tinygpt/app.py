"""`tinygpt`: train a model (or run an adaptation experiment): composes the config from
``conf/`` and hands it to its job (``conf/job/``); ``-m`` makes a sweep, one MLflow parent run
with a child per job.

    tinygpt model=d128 training.tokens=2000000 seed=7
    tinygpt -m experiment=scaling                      # the main job
    tinygpt -m model=d32,d64 seed=1,2 hydra/launcher=slurm_cpu
    tinygpt training.resume=true hydra.run.dir=outputs/<date>/<time>
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tinygpt import distributed
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError, instantiate
from tinygpt.tracking.sweep import record_failure
from tinygpt.validation import check


def config_dir() -> str:
    """conf/ inside the installed wheel, else the repository's conf/ (editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _main(cfg: DictConfig) -> float:
    try:
        # Settings are checked before torch and mlflow load, so a bad one is answered at once.
        check(cfg)
        return instantiate(cfg.job)(cfg)  # conf/job/: train, or seal (chosen by seal=lora)
    except KeyboardInterrupt:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(
            "tinygpt: interrupted: the run is KILLED in MLflow and checkpointed; continue it "
            f"with training.resume=true hydra.run.dir={HydraConfig.get().runtime.output_dir}",
            file=sys.stderr,
        )
        sys.exit(130)
    except TinyGPTError as e:
        logging.getLogger("tinygpt").error("%s", e)
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            # The sweep goes on; its end names this job and exits non-zero (tracking/sweep.py).
            job = hydra_cfg.job.override_dirname or str(hydra_cfg.job.num)
            print(f"tinygpt: error in job {job}: {e}", file=sys.stderr)
            record_failure(hydra_cfg.sweep.dir, hydra_cfg.job.num, f"{job}: {e}")
            return float("nan")
        print(f"tinygpt: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    # `tinygpt model=d256 -m seed=1,2`: argparse rejects overrides on both sides of a flag, so
    # the multirun flag moves to the front, where Hydra's parser accepts it.
    args = sys.argv[1:]
    flags = [a for a in args if a in ("-m", "--multirun")]
    if flags:
        sys.argv[1:] = [flags[0], *(a for a in args if a not in ("-m", "--multirun"))]
    world = distributed.from_env()
    if world.enabled:
        # Launched by torchrun: join the group before Hydra composes, so that every rank
        # resolves ${now:} to rank 0's clock and all write one run directory.
        distributed.init(world)
        distributed.agree_on_now()
    _main()
    if world.enabled and not world.main:
        # A finished rank other than 0 (which may still have MLflow writes to flush) leaves
        # without the interpreter's teardown: destroying gloo's threads there can abort the
        # process ("terminate called without an active exception") after its work is done,
        # failing a job that succeeded. Its logs and output are flushed first.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
