"""Kaplan or Chinchilla on our own runs: the main job's a, one correction at a time.

Porian et al. (2024, their Figure 1) and Pearce & Song (2024) took a small study's N_opt ∝ C^a
from Kaplan's ~0.73 toward Chinchilla's ~0.5 by correcting, in order, what C counts, what N
counts, the warmup and the per-size optimizer settings. This script does that with the main
job's runs: the accounting steps re-read the same runs (every run of the store is re-counted from
its width: tinygpt/accounting.py), the training step compares a store trained at the lone trials'
LRs with one trained at the LR law (conf/experiment/scaling.yaml). Each step is one
`tinygpt-analyze source=csv` with the step's conventions; per step it records a from every
approach the design supports — the L(N, D) fit, the selected form at the largest compute, the
envelope where it resolves — with its 95 % CI. Prints a table, writes
benchmarks/results/reconcile.json.

    python benchmarks/reconcile.py --before <store trained at lr_by_width> --after <LR-law store>
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from tinygpt.accounting import Counts
from tinygpt.app import config_dir
from tinygpt.scaling.table.runs import from_mlflow
from tinygpt.train.compute import meta_model, vocab_size

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results"
# (name, store, N convention, C convention), in Porian et al.'s order.
STEPS = [
    ("today: non-embedding N, Kaplan's C", "before", "non_embedding", "kaplan"),
    ("+ exact FLOPs (the readout counted)", "before", "non_embedding", "exact"),
    ("+ total parameters", "before", "total", "exact"),
    ("+ LR law (one smooth LR*(N))", "after", "total", "exact"),
]


def counts_by_width(widths: list[int]) -> dict[int, Counts]:
    """Each width's counts as experiment=scaling trains it (2 layers of 2 heads, BPE 1,024)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        out = {}
        for w in widths:
            cfg = compose("config", overrides=["experiment=scaling", f"model.d_model={w}"])
            out[w] = Counts.of(meta_model(cfg.model, vocab_size(cfg)))
    return out


def runs(store: Path) -> pd.DataFrame:
    """The store's runs with N and C under every convention, from each run's width."""
    table = from_mlflow(uri=f"sqlite:///{store}", parameters="non_embedding", flops="kaplan")
    widths = table["model.d_model"].astype(int)
    counts = counts_by_width(sorted(widths.unique()))
    out = table[["seed", "D", "loss"]].copy()
    out["width"] = widths
    for conv in ("total", "non_embedding"):
        out[f"N_{conv}"] = [counts[w].parameters(conv) for w in widths]
    for conv in ("exact", "kaplan", "chinchilla"):
        fpt = [counts[w].flops_per_token(conv) for w in widths]
        out[f"C_{conv}"] = fpt * out["D"]
    # The store's own C is Kaplan's: the re-count must give it back.
    assert ((out["C_kaplan"] - table["C"]).abs() <= 1e-9 * table["C"]).all()
    return out


def analyse(table: pd.DataFrame, parameters: str, flops: str, work: Path) -> dict:
    csv = work / f"{parameters}_{flops}.csv"
    table.to_csv(csv, index=False)
    out = work / f"out_{parameters}_{flops}"
    cmd = [
        str(BIN / "tinygpt-analyze"), "source=csv", f"source.path={csv}",
        f"source.columns.N=N_{parameters}", f"source.columns.C=C_{flops}",
        "source.columns.seed=seed", f"source.parameters={parameters}", f"source.flops={flops}",
        f"hydra.run.dir={out}", "plots=false",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=work)
    fit = json.loads((out / "fit.json").read_text())
    law = fit["laws"]["L(N, D)"]
    selected = fit["forms"]["selected"]
    form = fit["forms"][selected]["fit"]
    env = fit.get("envelope")
    return {
        "conventions": fit.get("conventions"),
        "L(N, D)": {
            "a": law["compute_optimal"]["n_exponent"],
            "a_ci95": law["compute_optimal"].get("n_exponent_ci95"),
        },
        "selected_form": {
            "form": selected,
            "a": form["a_at_largest_compute"],
            "a_ci95": form["a_ci95"],
            "n_opt_at_largest_compute": form["n_opt_at_largest_compute"],
        },
        "envelope": ({"a": env["n_exponent"], "a_ci95": env.get("n_ci95")} if env else "skipped"),
        "holdout_max_error": fit["holdout"]["max_abs_relative_error"],
    }


def a_text(a: float, ci) -> str:
    return f"{a:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{a:.3f} (no interval)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="sqlite file: the main job at lr_by_width")
    ap.add_argument("--after", required=True, help="sqlite file: the main job at the LR law")
    ap.add_argument("--json", default=str(RESULTS / "reconcile.json"))
    args = ap.parse_args()
    tables = {"before": runs(Path(args.before)), "after": runs(Path(args.after))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, store, parameters, flops in STEPS:
            result = analyse(tables[store], parameters, flops, Path(tmp))
            rows.append({"step": name, "store": store, **result})
            law, form = result["L(N, D)"], result["selected_form"]
            print(
                f"{name:40} L(N, D) a = {a_text(law['a'], law['a_ci95'])}   "
                f"{form['form']} a = {a_text(form['a'], form['a_ci95'])}   "
                f"holdout max {result['holdout_max_error']:.2%}",
                flush=True,
            )
    command = "python benchmarks/reconcile.py --before <store> --after <store>"
    record = {"command": command, "steps": rows}
    Path(args.json).write_text(json.dumps(record, indent=2, default=float))


if __name__ == "__main__":
    main()
