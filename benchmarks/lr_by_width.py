"""The main job's peak LR per size, tuned by Optuna: one `experiment=lr_tune` study per width.

Each study is the README's recipe (BPE 1,024 on the main job's corpus, batch 8, WSD with a 10 %
1-sqrt decay) trained to `training.tokens` per trial, `hydra.sweeper.n_trials` trials, TPE with a
fixed seed, every trial an MLflow child of the study's run. Prints each width's best LR and loss
with its trials, and writes --json: the evidence behind `optimizer.lr_by_width` in
conf/experiment/scaling.yaml.

    python benchmarks/lr_by_width.py                       # d16 d24 d32 d48 d64, 8 trials each
    python benchmarks/lr_by_width.py --models d16 d24 --trials 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from tinygpt.hardware import cpu_name

BIN = Path(sys.executable).parent


def study(model: str, trials: int, tokens: int, work: Path, extra: list[str]) -> dict:
    """One width's Optuna study: its best LR and every trial's (lr, loss)."""
    sweep_dir = work / model
    cmd = [
        str(BIN / "tinygpt"),
        "-m",
        "experiment=lr_tune",
        f"model={model}",
        f"training.tokens={tokens}",
        f"hydra.sweeper.n_trials={trials}",
        "tracking.log_model=false",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - t0
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs(
        client.get_experiment_by_name("tinygpt").experiment_id,
        f"params.`model.d_model` = '{model.removeprefix('d')}'",
    )
    trials_seen = sorted(
        (float(r.data.params["optimizer.lr"]), r.data.metrics["final_val_loss"])
        for r in runs
        if "final_val_loss" in r.data.metrics and r.data.tags.get("sweep") != "true"
    )
    return {
        "best_lr": float(best["best_params"]["optimizer.lr"]),
        "best_loss": float(best["best_value"]),
        "trials": [{"lr": lr, "loss": loss} for lr, loss in trials_seen],
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["d16", "d24", "d32", "d48", "d64"])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=400_000)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/lr_by_width.json"))
    ap.add_argument("overrides", nargs="*", help="extra overrides for every study")
    args = ap.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            found[model] = study(model, args.trials, args.tokens, Path(tmp), args.overrides)
            r = found[model]
            tried = ", ".join(f"{t['lr']:.2e}: {t['loss']:.4f}" for t in r["trials"])
            print(f"{model}: best lr {r['best_lr']:.3e} (val {r['best_loss']:.4f}; "
                  f"{r['seconds']:.0f} s) trials {tried}", flush=True)  # fmt: skip
    table = ", ".join(f"{m.removeprefix('d')}: {r['best_lr']:.2e}" for m, r in found.items())
    print(f"optimizer.lr_by_width: {{{table}}}")
    result = {
        "command": "python benchmarks/lr_by_width.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "trials": args.trials,
        "tokens": args.tokens,
        "models": found,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
