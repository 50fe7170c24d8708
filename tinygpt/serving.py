"""A trained model as text in, text out: sampling, and the MLflow pyfunc that carries it.

``Generator`` is a model with its tokenizer; ``TextModel`` is that as an MLflow pyfunc, logged
with the weights, the tokenizer and this package's code, so that

    mlflow.pyfunc.load_model("runs:/<id>/model").predict(pd.DataFrame({"prompt": ["In the"]}),
                                                         params={"max_new_tokens": 50})

gives a DataFrame with ``text`` (prompt + continuation) and ``completion`` in any process that
has the model's declared requirements, without TinyGPT installed or its run directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinygpt.data.tokenizers import DOC_SEPARATOR, Tokenizer, load_tokenizer
from tinygpt.model import TinyGPT

# Sampling settings and their defaults: the pyfunc's params schema and tinygpt-sample's config.
DEFAULTS: dict[str, Any] = {"max_new_tokens": 64, "temperature": 1.0, "top_k": 0, "seed": 0}


@dataclass
class Generator:
    model: TinyGPT
    tokenizer: Tokenizer

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], tokenizer: str | Path) -> Generator:
        """From a loaded checkpoint (``final.pt``, ``step_N.pt``, the pyfunc's weights file)."""
        return cls(TinyGPT.from_checkpoint(ckpt), load_tokenizer(tokenizer))

    @classmethod
    def from_files(cls, weights: str | Path, tokenizer: str | Path) -> Generator:
        return cls.from_checkpoint(torch.load(weights, map_location="cpu"), tokenizer)

    def _start(self, prompt: str) -> torch.Tensor:
        ids = self.tokenizer.encode(prompt) if prompt else []
        if len(ids) == 0:  # no prompt: start where a document starts, after a separator
            eot = getattr(self.tokenizer, "eot", None)
            ids = [eot] if eot is not None else self.tokenizer.encode(DOC_SEPARATOR)
        return torch.as_tensor(ids, dtype=torch.long)[None]

    def complete(
        self,
        prompts: list[str],
        max_new_tokens: int = DEFAULTS["max_new_tokens"],
        temperature: float = DEFAULTS["temperature"],
        top_k: int = DEFAULTS["top_k"],
        seed: int = DEFAULTS["seed"],
    ) -> list[str]:
        """One continuation per prompt; the same seed gives the same texts."""
        gen = torch.Generator().manual_seed(int(seed))
        out = []
        for prompt in prompts:
            start = self._start(prompt)
            ids = self.model.generate(
                start, int(max_new_tokens), float(temperature), int(top_k) or None, generator=gen
            )
            out.append(self.tokenizer.decode(ids[0, start.size(1) :].tolist()))
        return out


try:
    import mlflow.pyfunc

    _PythonModel: Any = mlflow.pyfunc.PythonModel
except ImportError:  # serving without MLflow: Generator alone
    _PythonModel = object


class TextModel(_PythonModel):
    """The pyfunc: a ``prompt`` column in; ``text`` and ``completion`` columns out."""

    # The logged signature validates the input; MLflow's type-hint validation (and its warning
    # that predict has no hints) is off, as for its own ChatModel.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        a = context.artifacts
        self.generator = Generator.from_files(a["weights"], a["tokenizer"])

    # No type hints: MLflow would try to read a signature from them (it gets an explicit one).
    def predict(self, context, model_input, params=None):
        import pandas as pd

        prompts = [str(p) for p in pd.DataFrame(model_input)["prompt"]]
        settings = {**DEFAULTS, **(params or {})}
        completions = self.generator.complete(prompts, **settings)
        return pd.DataFrame(
            {
                "text": [p + c for p, c in zip(prompts, completions, strict=True)],
                "completion": completions,
            }
        )


def log_text_model(
    model: TinyGPT,
    tokenizer_path: Path,
    workdir: Path,
    requirements: list[str],
    register_as: str | None = None,
) -> str:
    """Log the model as a pyfunc into the active MLflow run; returns its model URI."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in logs
    weights = workdir / "pyfunc_weights.pt"
    torch.save({"model_config": dict(vars(model.cfg)), "model": model.state_dict()}, weights)
    # MLflow cautions that a Python object is pickled: ours, so trusted; not news to a user.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    info = _log(weights, tokenizer_path, requirements, register_as)
    weights.unlink()
    return info.model_uri


def _log(
    weights: Path, tokenizer_path: Path, requirements: list[str], register_as: str | None
) -> Any:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    example = pd.DataFrame({"prompt": ["In the beginning"]})
    output = pd.DataFrame({"text": ["In the beginning was"], "completion": [" was"]})
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=TextModel(),
        artifacts={"weights": str(weights), "tokenizer": str(tokenizer_path)},
        # The package travels with the model: loading needs the requirements, not TinyGPT.
        code_paths=[str(Path(__file__).resolve().parent)],
        pip_requirements=requirements,
        signature=infer_signature(example, output, params=DEFAULTS),
        input_example=(example, {"max_new_tokens": 8}),
        registered_model_name=register_as,
    )
