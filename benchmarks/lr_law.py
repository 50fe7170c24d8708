"""The main job's LR law: LR*(N) = c · N^(-e) through every tuning trial of its sizes.

Reads the trials of benchmarks/lr_by_width.py (benchmarks/results/lr_by_width.json), counts each
preset's N as experiment=scaling trains it (total parameters, the analysis's default), fits the
law (tinygpt/scaling/lr_law.py) on the main job's sizes, and prints each size's law value beside
its lone best trial — the values `optimizer.lr_law` in conf/experiment/scaling.yaml carries.
Writes benchmarks/results/lr_law.json.

    python benchmarks/lr_law.py                      # fitted on d16-d64
    python benchmarks/lr_law.py --models d8 d12 d16 d24 d32 d48 d64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from hydra import initialize_config_dir

from tinygpt.app import config_dir
from tinygpt.scaling.lr_law import fit
from tinygpt.scaling.plan.round import preset_size

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["d16", "d24", "d32", "d48", "d64"])
    ap.add_argument("--trials", default=str(RESULTS / "lr_by_width.json"))
    ap.add_argument("--json", default=str(RESULTS / "lr_law.json"))
    args = ap.parse_args()
    tuned = json.loads(Path(args.trials).read_text())["models"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        sizes = {m: preset_size(m, "scaling").N for m in [*tuned, "d96", "d128"]}
    rows = [(sizes[m], t["lr"], t["loss"]) for m in args.models for t in tuned[m]["trials"]]
    law = fit(*map(np.array, zip(*rows, strict=True)))
    print(
        f"LR*(N) = {law.coefficient:.4g} · N^-{law.exponent:.3f}  (N: total parameters; "
        f"{law.trials} trials of {', '.join(args.models)}; curvature {law.curvature:.3f})"
    )
    table = {}
    for m, n in sizes.items():
        best = tuned.get(m, {}).get("best_lr")
        fitted = "fitted" if m in args.models else "not fitted"
        table[m] = {"N": n, "law_lr": law(n), "best_trial_lr": best, "in_fit": m in args.models}
        trial = f"best trial {best:.3g}" if best else "no trial"
        print(f"  {m:5} N = {n:>9,.0f}: law {law(n):.3g}   {trial}   ({fitted})")
    command = f"python benchmarks/lr_law.py --models {' '.join(args.models)}"
    out = {"command": command, "law": law.to_dict(), "sizes": table}
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
