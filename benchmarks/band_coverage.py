"""Do nominal 95 % bands cover? Synthetic studies with a known law and known seed noise.

Each study is the main job's shape (5 sizes x 4 budgets x 2 seeds) drawn from a known
E + A/N^alpha + B/D^beta with log-normal seed noise sigma; the largest size is held out and each
of its 4 measured seed means is checked against the parameters' bootstrap band (what
`tinygpt-analyze`'s L(N, D) holdout prints) and the band for a measured mean (bootstrap plus the
seeds' scatter, `fit.forms`). tinygpt/scaling/synthetic.py has the study.

    python benchmarks/band_coverage.py                       # 100 studies at sigma 1 % and 2 %
    python benchmarks/band_coverage.py --studies 50 --sigma 0.01
"""

from __future__ import annotations

import argparse
import time

from tinygpt.hardware import cpu_name
from tinygpt.scaling.laws.synthetic import coverage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.01, 0.02])
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}; {args.studies} studies, {args.bootstrap} bootstrap refits each")
    for sigma in args.sigma:
        t0 = time.perf_counter()
        c = coverage(args.studies, sigma, args.bootstrap)
        seconds = time.perf_counter() - t0
        print(
            f"  seed noise {sigma:.1%}: {c.points} held-out means; inside the parameters' band "
            f"{c.parameters_only:.1%}, inside the band for a measured mean {c.with_seeds:.1%} "
            f"(the true law inside it: {c.truth_with_seeds:.1%})  [{seconds:.0f} s]"
        )


if __name__ == "__main__":
    main()
