"""Which sizes pin the allocation exponent? The 95 % CI of a on synthetic studies of known laws.

The truths are the laws the main job's earlier design (d16-d64, benchmarks/results/
main_job_losses.csv) fitted on d16-d48: its selected form, kaplan_q (a = 0.74 at the sweep's
largest compute), and the additive Chinchilla form (a = 0.50). Each study draws every run of a
design from the truth with log-normal seed noise (the seeds' pooled sigma, 1.36 %), fits the same
form with `fit.bootstrap` refits as `tinygpt-analyze` does, and reads a's 95 % CI at the largest
compute of the main job (d64 at 1.6M tokens). Printed per truth and design: how often the CI holds
the truth's own a (coverage) and its median width.

    python benchmarks/design_a.py                  # 20 studies per truth and design
    python benchmarks/design_a.py --studies 50 --json benchmarks/results/design_a.json
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
from tinygpt.scaling.laws.forms import fit_form

# Non-embedding N of each width at 2 layers of 2 heads (experiment=scaling).
N_OF = {"d8": 1760, "d12": 3792, "d16": 6592, "d24": 14496, "d32": 25472, "d48": 56640,
        "d64": 100096}  # fmt: skip
LADDER = [200_000, 400_000, 800_000, 1_600_000]
C_MAX = 1.1186e12  # FLOPs of d64 at 1.6M tokens, the main job's largest run
SIGMA = 0.0136  # pooled std of log loss between seeds, main_job_losses.csv
TRUTHS = {  # fitted on d16-d48 of main_job_losses.csv (2026-12-02)
    "kaplan_q": {"A": 48532.3, "B": 2.5833e9, "E": 0.40961, "alpha": 0.375135, "beta": 1.078166,
                 "q": 0.179442},
    "chinchilla": {"A": 20.22, "B": 304.655, "E": 3.20174, "alpha": 0.428819, "beta": 0.425928},
}  # fmt: skip


def grid(sizes: list[str], budgets: list[int], seeds: int) -> list[tuple[int, int]]:
    return [(N_OF[s], b) for s in sizes for _ in range(seeds) for b in budgets]


DESIGNS = {
    # The fitted sizes of each main job (d64 is held out in both), 2 seeds of the full ladder and
    # 2 more of the two short budgets.
    "d16, d24, d32, d48 (before)": grid(["d16", "d24", "d32", "d48"], LADDER, 2)
    + grid(["d16", "d24", "d32", "d48"], LADDER[:2], 2),
    "d8, d12, d16, d32, d48 (tried)": grid(["d8", "d12", "d16", "d32", "d48"], LADDER, 2)
    + grid(["d8", "d12", "d16", "d32", "d48"], LADDER[:2], 2),
    # Upward instead: d64 fitted too (a d96 held out), the same seeds and budgets.
    "d16, d24, d32, d48, d64": grid(["d16", "d24", "d32", "d48", "d64"], LADDER, 2)
    + grid(["d16", "d24", "d32", "d48", "d64"], LADDER[:2], 2),
}


def truth_a(form: str) -> float:
    """The truth's own a at C_MAX, read as the analysis reads it: from the form fitted to the
    noiseless law on every size and budget (which returns the truth's parameters)."""
    N = np.repeat(list(N_OF.values()), len(LADDER)).astype(float)
    D = np.tile(LADDER, len(N_OF)).astype(float)
    fit = fit_form(form, N, D, law(form, N, D), bootstrap=0)
    assert np.allclose(list(fit.params.values()), [TRUTHS[form][k] for k in fit.params], rtol=1e-3)
    return float(fit.allocation(C_MAX)[0])


def law(form: str, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    p = TRUTHS[form]
    if form == "kaplan_q":
        return p["E"] + (p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]) ** p["q"]
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=20)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}; {args.studies} studies per truth and design, "
          f"{args.bootstrap} bootstrap refits each, seed noise {SIGMA:.2%}")  # fmt: skip
    rng = np.random.default_rng(11)
    out: dict = {"command": "python benchmarks/design_a.py " + " ".join(sys.argv[1:])}
    for form in TRUTHS:
        a_true = truth_a(form)
        print(f"truth {form}: a = {a_true:.3f}")
        for name, runs in DESIGNS.items():
            N, D = (np.array(v, dtype=float) for v in zip(*runs, strict=True))
            t0, hits, widths = time.perf_counter(), [], []
            for study in range(args.studies):
                y = law(form, N, D) * np.exp(rng.normal(0, SIGMA, len(N)))
                fit = fit_form(form, N, D, y, bootstrap=args.bootstrap, seed=study)
                lo, hi = np.nanpercentile(fit.allocation(C_MAX, fit.boot), [2.5, 97.5])
                hits.append(bool(lo <= a_true <= hi))
                widths.append(float(hi - lo))
            row = {"runs": len(N), "coverage": float(np.mean(hits)),
                   "median_width": float(np.median(widths)), "widths": widths}  # fmt: skip
            out.setdefault(form, {"a": a_true})[name] = row
            print(f"  {name}: {len(N)} runs; CI of a holds the truth in {row['coverage']:.0%}, "
                  f"median width {row['median_width']:.3f}  [{time.perf_counter() - t0:.0f} s]",
                  flush=True)  # fmt: skip
    out["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
