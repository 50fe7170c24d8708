"""Time the batched scaling-law fit on the Chinchilla data against per-start scipy L-BFGS-B.

Prints the batched grid fit (4,500 starts) and 1,000 bootstrap refits, and, in the same run, a
scipy reference: L-BFGS-B with the same analytic gradient, one start at a time, on a random
sample of the grid, extrapolated to the whole grid. Writes benchmarks/fit.json.

    python benchmarks/fit.py [--sample 150] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from tinygpt.scaling.fit.batched import Problem, bootstrap, fit, grid_starts
from tinygpt.scaling.table.runs import from_csv

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "chinchilla_epoch_data.csv"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=150, help="grid starts for the scipy reference")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()

    t = from_csv(str(FIXTURE), {"N": "Model Size", "C": "Training FLOP", "D": None}, 5)
    prob = Problem(np.log(t[["N", "D"]].to_numpy()), np.log(t["loss"].to_numpy()))
    starts = grid_starts(2, True)

    t0 = time.perf_counter()
    best = fit(prob, starts)
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    bootstrap(prob, best.theta, args.bootstrap, seed=0)
    t_boot = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    sample = starts[rng.choice(len(starts), args.sample, replace=False)]

    def fun(th: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = prob.value_and_grad(th[None])
        return float(f[0]), g[0]

    t0 = time.perf_counter()
    ref = [minimize(fun, s, jac=True, method="L-BFGS-B") for s in sample]
    t_ref = time.perf_counter() - t0
    ref_best = min(r.fun for r in ref)
    batched_on_sample = fit(prob, sample).objective

    out = {
        "starts": len(starts),
        "batched_grid_seconds": t_grid,
        "bootstrap_refits": args.bootstrap,
        "batched_bootstrap_seconds": t_boot,
        "batched_total_seconds": t_grid + t_boot,
        "batched_objective": best.objective,
        "scipy_sample_starts": args.sample,
        "scipy_sample_seconds": t_ref,
        "scipy_grid_seconds_extrapolated": t_ref / args.sample * len(starts),
        "scipy_best_objective_on_sample": ref_best,
        "batched_best_objective_on_same_sample": batched_on_sample,
        "published_objective": 1.01827402e-3,
    }
    print(f"{'':34s}{'seconds':>10s}{'objective':>16s}")
    print(f"{'batched grid (4,500 starts)':34s}{t_grid:10.2f}  {best.objective:16.10e}")
    print(f"{f'batched bootstrap ({args.bootstrap} refits)':34s}{t_boot:10.2f}")
    print(f"{'batched grid + bootstrap':34s}{t_grid + t_boot:10.2f}")
    print(f"{f'scipy L-BFGS-B, {args.sample} starts':34s}{t_ref:10.2f}  {ref_best:16.10e}")
    print(f"{f'batched, same {args.sample} starts':34s}{'':10s}  {batched_on_sample:16.10e}")
    print(
        f"{'scipy, 4,500 starts (extrapolated)':34s}{out['scipy_grid_seconds_extrapolated']:10.1f}"
    )
    print(f"speed-up on the grid: {out['scipy_grid_seconds_extrapolated'] / t_grid:.1f}x")
    Path(__file__).parent.joinpath("results", "fit.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
