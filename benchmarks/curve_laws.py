"""Whole-curve laws on the published multi-power-law curves: errors, parameters, fit time.

Fits each law on the paper's three curves (cosine_24000, constant_24000, wsdcon_9) of each model
size in tests/fixtures/curves_mpl/ and predicts the other six, as Luo et al. (2025) do; prints
per size and law the fit time, the parameters beside the published ones, the mean relative
error over the predicted runs, their worst point, the repository's "WorstE" (each run's max,
averaged) and the share of predicted points inside the 95 % band.

    python benchmarks/curve_laws.py                 # both sizes, mpl (adamw, lbfgs) and tissue
    python benchmarks/curve_laws.py --bootstrap 0   # no bands: the fit time alone
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tinygpt.hardware import cpu_name
from tinygpt.scaling.curves.study import analyze_curves
from tinygpt.scaling.settings import CurveFitConfig
from tinygpt.scaling.table.curves import from_csvs, to_curves

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "curves_mpl"
FIT_ON = ["cosine_24000", "constant_24000", "wsdcon_9"]
PUBLISHED = {  # the repository's README: L0, A, alpha, B, C, beta, gamma; PredE; WorstE
    "25": ([3.040, 0.525, 0.508, 363.788, 2.066, 0.583, 0.641], 0.0011, 0.0041),
    "100": ([2.651, 0.601, 0.453, 437.946, 2.132, 0.598, 0.655], 0.0014, 0.0058),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}")
    rows = []
    for size in ("25", "100"):
        curves = to_curves(from_csvs(str(FIXTURES / size)))
        pub, pub_mean, pub_worst = PUBLISHED[size]
        print(
            f"\n{size}M  published: mean {pub_mean:.2%}, WorstE {pub_worst:.2%}; params "
            + ", ".join(f"{v:g}" for v in pub)
        )
        for law, optimizer in (("mpl", "adamw"), ("mpl", "lbfgs"), ("tissue", "lbfgs")):
            settings = CurveFitConfig(
                fit_on=FIT_ON, laws=[law], optimizer=optimizer, bootstrap=args.bootstrap
            )
            t0 = time.perf_counter()
            report, _ = analyze_curves(curves, settings)
            seconds = time.perf_counter() - t0
            s = report["laws"][law]
            fit = s["fits"][0]
            row = {
                "size": size,
                "law": law,
                "optimizer": optimizer,
                "fit_seconds": fit["fit_seconds"],
                "bootstrap_seconds": fit["bootstrap_seconds"],
                "total_seconds": seconds,
                "params": fit["params"],
                "mean_relative_error": s["mean_relative_error"],
                "max_relative_error": s["max_relative_error"],
                "mean_max_relative_error": s["mean_max_relative_error"],
                "inside_band": s.get("inside_band"),
            }
            rows.append(row)
            band = f", {row['inside_band']:.0%} in band" if row["inside_band"] is not None else ""
            print(
                f"  {law:6} {optimizer:5}  fit {row['fit_seconds']:5.1f} s "
                f"(+{row['bootstrap_seconds']:.1f} s bootstrap)  "
                f"mean {row['mean_relative_error']:.3%}  max {row['max_relative_error']:.3%}  "
                f"WorstE {row['mean_max_relative_error']:.3%}{band}"
            )
            print("         " + ", ".join(f"{k} {v:.4g}" for k, v in fit["params"].items()))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
