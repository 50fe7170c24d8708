"""Does planning the next round pay? Simulated studies of a known law
(tinygpt.scaling.plan.simulate).

Each study trains a first round (d16-d48 x 200k/400k/800k, one seed, 1 % noise in log loss),
fits the Chinchilla form with 100 bootstrap refits, then spends the first round's compute again
three ways: the plan of `tinygpt-plan` for the target, a uniform grid over the candidates
(d8-d128 x 200k-6.4M), and more seeds of the first grid. Each arm is refitted for real; the
table gives the target's 95 % CI width (median over studies), its ratio to the planned one, and
how often the CI holds the true value. Target: the grid's CI >= 1.5x the planned one, coverage
kept.

    python benchmarks/plan_rounds.py                 # 20 studies per target
    python benchmarks/plan_rounds.py --studies 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tinygpt.hardware import cpu_name
from tinygpt.scaling.plan.choose import Target
from tinygpt.scaling.plan.simulate import FIRST_BUDGETS, SIZES, first_round, study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--bootstrap", type=int, default=100, help="refits per fit")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/plan_rounds.json"))
    args = ap.parse_args()
    by = {s.name: s for s in SIZES}
    c_max = 6 * by["d48"].N * max(FIRST_BUDGETS)
    targets = {
        "n_opt at 10x the sweep's compute": Target("n_opt", at_flops=10 * c_max),
        "loss of d128 at 6.4M tokens": Target("loss", N=by["d128"].N, D=6.4e6),
        "exponent a": Target("exponent", at_flops=c_max),
    }
    flops = sum(j.flops(0.1) for j in first_round())
    print(f"{args.studies} studies per target; each round {flops:.3g} FLOPs")
    result: dict = {"command": "python benchmarks/plan_rounds.py " + " ".join(sys.argv[1:]),
                    "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
                    "studies": args.studies, "round_flops": flops, "targets": {}}  # fmt: skip
    for label, target in targets.items():
        t0 = time.perf_counter()
        runs = [study(seed, target, bootstrap=args.bootstrap) for seed in range(args.studies)]
        widths = {a: np.array([r[a].width for r in runs]) for a in ("planned", "grid", "seeds")}
        cover = {a: float(np.mean([r[a].covered for r in runs])) for a in widths}
        ratio = {a: float(np.median(widths[a] / widths["planned"])) for a in widths}
        predicted = float(np.median([r["predicted_narrowing"] for r in runs]))
        print(f"{label}  ({time.perf_counter() - t0:.0f} s)")
        print(f"  {'arm':8}{'CI width (median)':>19}{'x planned':>11}{'coverage':>10}")
        for a in widths:
            print(f"  {a:8}{np.median(widths[a]):19.4g}{ratio[a]:11.2f}{cover[a]:10.0%}")
        result["targets"][label] = {
            "median_width": {a: float(np.median(w)) for a, w in widths.items()},
            "width_ratio_to_planned": ratio,
            "coverage": cover,
            "predicted_narrowing_median": predicted,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
