"""`tinygpt-sample`: text from a trained model, by run directory, MLflow run id or model URI.

tinygpt-sample run=outputs/2026-12-01/10-00-00 prompt="And God said" n=3 seed=1
tinygpt-sample run=models:/kjv-d64/1 max_new_tokens=200 temperature=0.8 top_k=20
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from tinygpt.app import config_dir
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError
from tinygpt.validation import check_ranges, check_set

if TYPE_CHECKING:  # torch loads only once the settings are checked
    from tinygpt.serving import Generator

register_configs()

RANGES = [
    ("n", lambda v: v >= 1, "at least 1"),
    ("max_new_tokens", lambda v: v >= 1, "at least 1"),
    ("temperature", lambda v: v > 0, "positive"),
    ("top_k", lambda v: v >= 0, "zero (no limit) or positive"),
]


def generator(spec: str, tracking_uri: str | None) -> Generator:
    """The run's model and tokenizer: from a model URI through MLflow, else from the newest
    checkpoint of its run directory (final.pt once it finished)."""
    from tinygpt import checkpoint
    from tinygpt.runs import MODEL_URI_SCHEMES, run_directory
    from tinygpt.serving import Generator

    if spec.startswith(MODEL_URI_SCHEMES):
        import mlflow
        import mlflow.pyfunc

        from tinygpt.tracking.mlflow_run import resolve_uri

        mlflow.set_tracking_uri(resolve_uri(tracking_uri))
        try:
            model = mlflow.pyfunc.load_model(spec)
        except Exception as e:
            raise TinyGPTError(
                f"run={spec}: MLflow cannot load it ({str(e).splitlines()[0][:200]}): check "
                "the model name and version (mlflow ui, Models) or tracking_uri"
            ) from None
        return model.unwrap_python_model().generator
    run_dir = run_directory(spec, tracking_uri, "run")
    found = checkpoint.load_newest(run_dir)
    if found is None:
        raise TinyGPTError(f"run={spec}: {run_dir} holds no checkpoint (*.pt) to sample from")
    return Generator.from_checkpoint(found[1], run_dir / "tokenizer.json")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="sample")
def _main(cfg: DictConfig) -> None:
    try:
        check_set(cfg)
        check_ranges(cfg, RANGES)
        gen = generator(str(cfg.run), cfg.tracking_uri)
        texts = gen.complete(
            [cfg.prompt] * cfg.n, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed
        )
    except TinyGPTError as e:
        print(f"tinygpt-sample: error: {e}", file=sys.stderr)
        sys.exit(2)
    for i, text in enumerate(texts):
        if cfg.n > 1:
            print(f"--- sample {i + 1} of {cfg.n} (seed {cfg.seed})")
        print(cfg.prompt + text)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
