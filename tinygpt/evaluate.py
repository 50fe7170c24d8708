"""`tinygpt-eval`: every checkpoint of a run, and the model as initialised (step 0), on a split of
any corpus: loss, perplexity, next-token accuracy and bits per byte, into evaluation.csv, a
figure and an MLflow run linked to the source run.

    tinygpt-eval run=outputs/2026-12-01/10-00-00                 # its own corpus, val split
    tinygpt-eval run=<MLflow run id> data=austen split=test      # a KJV model on Jane Austen
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tinygpt.app import config_dir
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError
from tinygpt.validation import check_ranges, check_set

log = logging.getLogger("tinygpt.eval")
register_configs()

RANGES = [
    ("batches", lambda v: v >= 1, "at least 1"),
    ("batch_size", lambda v: v >= 1, "at least 1"),
]


def checkpoints(run_dir: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """(step, file name, checkpoint) of every step_<N>.pt and final.pt, by step; final.pt only
    where no step_<N>.pt holds its step. Each file is read once."""
    from tinygpt import checkpoint

    found: dict[int, tuple[str, dict[str, Any]]] = {}
    for path in reversed(checkpoint.candidates(run_dir)):  # step files first, final.pt last
        ckpt = checkpoint.load(path)
        found.setdefault(ckpt["step"], (path.name, ckpt))
    return [(step, name, ckpt) for step, (name, ckpt) in sorted(found.items())]


def tokens_of(data_cfg: DictConfig | dict, split: str, tokenizer: Any) -> Any:
    """The split's documents of any corpus node, encoded with the run's own tokenizer."""
    from tinygpt.data.dataset import SPLITS, split_documents
    from tinygpt.errors import instantiate

    if split not in SPLITS:
        raise TinyGPTError(f"split={split}: choose one of {', '.join(SPLITS)}")
    loaded = instantiate(OmegaConf.create(data_cfg)["corpus"])
    docs = loaded.get(split, []) if isinstance(loaded, dict) else split_documents(loaded)[split]
    if not docs:
        raise TinyGPTError(f"the corpus has no {split} documents: choose another split")
    return tokenizer.encode_documents(docs)


def evaluate_run(cfg: DictConfig, out: Path) -> Any:
    import numpy as np
    import pandas as pd
    import torch

    from tinygpt.data.dataset import EVAL_SEED, BatchSampler
    from tinygpt.data.tokenizers import load_tokenizer
    from tinygpt.hardware import Runtime
    from tinygpt.model import GPTConfig, TinyGPT
    from tinygpt.runs import run_directory
    from tinygpt.train.job import seed_everything
    from tinygpt.train.loop import evaluate

    run_dir = run_directory(str(cfg.run), cfg.tracking_uri, "run")
    found = checkpoints(run_dir)
    if not found:
        raise TinyGPTError(f"run={cfg.run}: {run_dir} holds no step_<N>.pt or final.pt")
    first = found[0][2]
    train_cfg, model_cfg = first["config"], first["model_config"]
    tok = load_tokenizer(run_dir / "tokenizer.json")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True) if cfg.data else train_cfg["data"]
    tokens = np.asarray(tokens_of(data_cfg, cfg.split, tok))
    context = model_cfg["context"]
    if len(tokens) <= context:
        raise TinyGPTError(f"the {cfg.split} split has {len(tokens)} tokens, under one window")
    sampler = BatchSampler(tokens, cfg.batch_size, context, EVAL_SEED)
    windows = torch.from_numpy(sampler.windows(cfg.batches * cfg.batch_size))
    token_bytes = torch.from_numpy(tok.token_bytes())
    runtime = Runtime(torch.device("cpu"), None, False)
    t = train_cfg["training"]
    per_step = t["batch_size"] * context * train_cfg["optimizer"]["grad_accum"]

    # Step 0: the model as the run initialised it (its seed, before any update).
    seed_everything(train_cfg["seed"])
    model = TinyGPT(GPTConfig(**model_cfg))
    rows = [
        {
            "step": 0,
            "checkpoint": "(initialisation)",
            **evaluate(model, windows, cfg.batch_size, runtime, token_bytes),
        }
    ]
    for step, name, ckpt in found:
        model.load_state_dict(ckpt["model"])
        ev = evaluate(model, windows, cfg.batch_size, runtime, token_bytes)
        rows.append({"step": step, "checkpoint": name, **ev})
        log.info("%s (step %d): loss %.4f, bpb %.4f", name, step, ev["loss"], ev["bpb"])
    table = pd.DataFrame(rows)
    table.insert(1, "tokens", table["step"] * per_step)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "evaluation.csv", index=False)
    corpus = str(OmegaConf.create(data_cfg)["corpus"].get("_target_", "?")).rsplit(".", 1)[-1]
    table.attrs.update(
        run_dir=str(run_dir),
        source_run_id=first.get("mlflow_run_id"),
        corpus=corpus,
        split=cfg.split,
    )
    plot(table, out / "loss_vs_step.png")
    return table


def plot(table: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from tinygpt.scaling.axes import save

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trained = table[table["step"] > 0]
    ax.plot(trained["step"], trained["loss"], "o-", label="checkpoints")
    ax.axhline(
        table["loss"].iloc[0],
        color="grey",
        ls="--",
        lw=1,
        label=f"initialisation (step 0): {table['loss'].iloc[0]:.3f}",
    )
    ax.set(
        xlabel="training step",
        ylabel="loss (nats per token)",
        title=f"{table.attrs['corpus']} {table.attrs['split']} split",
    )
    right = ax.secondary_yaxis(
        "right", functions=(lambda v: v * _ratio(table), lambda v: v / _ratio(table))
    )
    right.set_ylabel("bits per byte")
    ax.legend(fontsize=8)
    return save(fig, path)


def _ratio(table: Any) -> float:
    """Bits per byte per nat of loss: the same for every checkpoint (same windows, so the same
    tokens over the same bytes), exactly so where no token spells zero bytes."""
    return float((table["bpb"] / table["loss"]).median())


def log_to_mlflow(cfg: DictConfig, table: Any, out: Path) -> str | None:
    from tinygpt.tracking.mlflow_run import Store, Tracker, flatten

    store = Store.connect(cfg.tracking_uri, cfg.experiment)
    source = table.attrs.get("source_run_id")
    name = (
        f"evaluation of {Path(table.attrs['run_dir']).name} on {table.attrs['corpus']} "
        f"{table.attrs['split']}"
    )
    tags = {
        "kind": "evaluation",
        "source_run_id": source or "",
        "source_dir": table.attrs["run_dir"],
    }
    tracker = Tracker.start(store, name, tags)
    try:
        tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        for r in table.itertuples():
            tracker.log_metrics(
                {"eval_loss": r.loss, "eval_bpb": r.bpb, "eval_accuracy": r.accuracy}, int(r.step)
            )
        for p in ("evaluation.csv", "loss_vs_step.png"):
            tracker.log_artifact(out / p)
    finally:
        tracker.close("FINISHED")
    return tracker.run_id


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def _main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    try:
        check_set(cfg)
        check_ranges(cfg, RANGES)
        table = evaluate_run(cfg, out)
        run_id = log_to_mlflow(cfg, table, out) if cfg.log_to_mlflow else None
    except TinyGPTError as e:
        print(f"tinygpt-eval: error: {e}", file=sys.stderr)
        sys.exit(2)
    cols = ["step", "tokens", "loss", "perplexity", "accuracy", "bpb"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"evaluation.csv and loss_vs_step.png in {out}")
    if run_id:
        print(f"MLflow run: {run_id} (tag source_run_id = {table.attrs.get('source_run_id')})")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
