"""Measured coverage of every nominal 95 % interval the analysis prints, on studies of the main
job's shape and on a single-seed IsoFLOP grid.

Main job: the truth is the law form fitted to the main job's own runs
(benchmarks/results/main_job_losses_lr_law.csv, total N), the noise its measured seed scatter σ
with the share of it common to a job (tinygpt.scaling.fit.noise.job_share); each synthetic study
has its rows (5 sizes × 4 budgets × 2 seeds, 2 more seeds at the short budgets), the largest
size held out, and is fitted with each bootstrap unit (tinygpt.scaling.laws.coverage).

IsoFLOP grid: 12 compute budgets × 6-13 sizes (those of one ladder within a factor 2.5-8, drawn
per budget, either side of N_opt), one run each, from the Epoch AI replication's Chinchilla law,
log noise --grid-sigma; the IsoFLOP valleys and the envelope (tinygpt.scaling.allocation) with
their noise draws: mean error and coverage of a.

    python benchmarks/coverage.py                       # 100 studies per row
    python benchmarks/coverage.py --studies 20 --form kaplan_q
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tinygpt.hardware import cpu_name
from tinygpt.scaling.coverage import isoflop_rows, main_job_design, main_job_noise, measure
from tinygpt.scaling.laws.forms import fit_form

HERE = Path(__file__).parent
MAIN_JOB = HERE / "results" / "main_job_losses_lr_law.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--form", default="chinchilla")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--units", nargs="+", default=["run", "job", "noise"])
    ap.add_argument("--grid-sigma", type=float, default=0.005)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "coverage.json")
    args = ap.parse_args()
    design = main_job_design(MAIN_JOB)
    sigma, shared = main_job_noise(design)
    truth = fit_form(args.form, design["N"], design["D"], design["loss"], bootstrap=0)
    print(f"CPU: {cpu_name()}; truth: {args.form} fitted to {MAIN_JOB.name} ({len(design)} runs): "
          f"{ {k: round(v, 4) for k, v in truth.params.items()} }; seed noise σ = {sigma:.2%}, "
          f"{shared:.2f} of its variance shared by a job")  # fmt: skip
    t0 = time.perf_counter()
    rows = measure(truth, design, sigma, shared, args.studies, tuple(args.units), args.bootstrap)
    print(f"{'unit':6} {'a CI holds a':>13} {'median width':>13} {'N_opt CI':>9} "
          f"{'held-out means in band':>23} {'true law in band':>17}")  # fmt: skip
    for r in map(lambda x: x.to_dict(), rows):
        print(f"{r['unit']:6} {r['a_ci_coverage']:>13.0%} {r['a_ci_median_width']:>13.3f} "
              f"{r['n_opt_ci_coverage']:>9.0%} {r['held_out_means_in_band']:>23.1%} "
              f"{r['true_law_in_band']:>17.1%}")  # fmt: skip
    main_s = time.perf_counter() - t0
    grid = isoflop_rows(args.studies, args.grid_sigma, 400)
    for name, r in grid.items():
        print(f"single-seed IsoFLOP grid, {name}: a error {r['mean_error']:+.3f} mean, "
              f"{r['mean_abs_error']:.3f} mean |.|; CI holds a {r['a_ci_coverage']:.0%}, "
              f"median width {r['a_ci_median_width']:.3f}")  # fmt: skip
    result = {
        "cpu": cpu_name(),
        "main_job": {"form": args.form, "truth": truth.params, "sigma_log": sigma,
                     "job_share": shared, "bootstrap": args.bootstrap,
                     "rows": [r.to_dict() for r in rows], "seconds": main_s},
        "isoflop_grid": {"sigma_log": args.grid_sigma, **grid},
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))
    print(f"[{time.perf_counter() - t0:.0f} s] -> {args.out}")


if __name__ == "__main__":
    main()
