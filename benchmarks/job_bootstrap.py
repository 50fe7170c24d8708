"""Resampling runs or whole jobs: coverage when a job's budgets share their seed noise.

Synthetic studies of the main job's shape (tinygpt.scaling.laws.synthetic: 5 sizes x 4 budgets x 2
seeds, additive law, the largest size held out) with log-normal seed noise of which a share of the
variance is one draw per job (size, seed), as WSD branches of one trunk carry it. Each study is
fitted with the bootstrap drawing single runs and drawing whole jobs (`fit.bootstrap_unit`);
printed per share and unit: how often the band for a measured mean holds the held-out means and
the true law, and how often a's 95 % CI holds the true a, with its median width.

    python benchmarks/job_bootstrap.py                 # 40 studies, shares 0 and 0.9
    python benchmarks/job_bootstrap.py --studies 100 --shared 0.5 0.9
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinygpt.hardware import cpu_name
from tinygpt.scaling.laws.forms import fit_form
from tinygpt.scaling.laws.law import jobs
from tinygpt.scaling.laws.synthetic import BUDGETS, SIZES, STARTS, TRUE, study, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--shared", type=float, nargs="+", default=[0.0, 0.9])
    ap.add_argument("--sigma", type=float, default=0.0136)
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}; {args.studies} studies, seed noise {args.sigma:.2%}")
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    N_held, D_held = np.full(len(BUDGETS), SIZES[-1]), BUDGETS
    for shared in args.shared:
        t0, rng = time.perf_counter(), np.random.default_rng(5)
        tables = [study(rng, args.sigma, shared=shared) for _ in range(args.studies)]
        for unit in ("run", "job"):
            means = law = points = a_hits = 0
            widths = []
            for i, table in enumerate(tables):
                held = np.isclose(table["N"], SIZES[-1])
                rows = table[~held]
                measured = table[held].groupby("D")["loss"].mean().loc[D_held].to_numpy()
                fit = fit_form("chinchilla", rows["N"], rows["D"], rows["loss"], args.bootstrap,
                               i, starts=STARTS, groups=jobs(rows, unit))  # fmt: skip
                lo, hi = fit.band(N_held, D_held, np.full(len(D_held), 2))
                means += int(((measured >= lo) & (measured <= hi)).sum())
                t = truth(N_held, D_held)
                law += int(((t >= lo) & (t <= hi)).sum())
                points += len(D_held)
                p = [fit.form.natural(theta) for theta in fit.boot]
                a = np.array([q["beta"] / (q["alpha"] + q["beta"]) for q in p])
                a_lo, a_hi = np.percentile(a, [2.5, 97.5])
                a_hits += int(a_lo <= a_true <= a_hi)
                widths.append(a_hi - a_lo)
            print(f"  shared {shared:.2f}, unit {unit}: held-out means in band "
                  f"{means / points:.1%}, "
                  f"true law in band {law / points:.1%}; a's CI holds the truth in "
                  f"{a_hits / args.studies:.0%}, median width {np.median(widths):.3f}  "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
