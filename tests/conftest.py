from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tinygpt.app import config_dir


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, share the cores out: each worker (and every process its tests start,
    through OMP_NUM_THREADS) gets its part, instead of every training taking all of them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


# A model and run small enough for a unit test on two CPU cores.
TINY = [
    "model=d32",
    "model.n_layers=1",
    "model.context=32",
    "training.batch_size=8",
    "training.max_steps=20",
    "training.eval_interval=10",
    "training.eval_batches=2",
    "training.log_interval=5",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture
def make_cfg(cache_dir: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(
                "config",
                overrides=[
                    f"data.cache_dir={cache_dir}",
                    "tracking.enabled=false",
                    *TINY,
                    *overrides,
                ],
            )

    return _make


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    """A small plain-text corpus: 400 paragraphs of simple sentences."""
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "then",
        "a",
        "dog",
        "ran",
        "to",
        "the",
        "red",
        "house",
        "by",
        "the",
        "old",
        "tree",
    ]
    paras = []
    for i in range(400):
        sent = " ".join(words[(i * 7 + j) % len(words)] for j in range(12 + i % 9))
        paras.append(f"{sent.capitalize()}. Paragraph {i} ends here.")
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(paras), encoding="utf-8")
    return path


def tinygpt_cli(
    *args: str, cwd: Path, cache_dir: Path, timeout: int = 300, app: str = "tinygpt.app"
) -> subprocess.CompletedProcess[str]:
    """Run the installed entry point in a subprocess, as a user would."""
    env = {**os.environ, "TINYGPT_CACHE": str(cache_dir), "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", app, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A directory whose mlflow.db holds one small width sweep: 4 sizes x 2 seeds."""
    cwd = tmp_path_factory.mktemp("sweep-store")
    proc = tinygpt_cli(
        "-m",
        "model=d32,d48,d64,d96",
        "seed=1,2",
        "model.context=32",
        "training.batch_size=8",
        "training.max_steps=30",
        "training.eval_interval=30",
        "training.eval_batches=2",
        cwd=cwd,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    return cwd


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """A throwaway single-node SLURM cluster (tests/slurm/*.sh); yields the partition name."""
    import shutil

    here = Path(__file__).parent / "slurm"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("starting a SLURM test cluster needs root on Debian/Ubuntu")
    subprocess.run(
        [str(here / "start-test-slurm.sh")], check=True, timeout=900, stdout=subprocess.DEVNULL
    )
    try:
        yield "debug"
    finally:
        subprocess.run([str(here / "stop-test-slurm.sh")], check=False, timeout=300)
