"""The IsoFLOP view on a published study it was not designed on: Porian et al. (2024).

``benchmarks/data/porian2024_isoflop.csv`` holds the IsoFLOP tables of their ten main analysis
settings (two datasets × five steps from Kaplan's setup to Chinchilla's: 11-12 compute budgets ×
5-16 sizes, one run per (N, C)), as their repository's ``data/summary_df*.pickle.xz`` keep them
(formll/resolving-scaling-law-discrepancies, commit 0dc60d91: the columns orig_n, orig_t and
orig_loss of each analysis row), and ``porian2024_published.json`` their exponent a (the
weighted fit through the bootstrap medians) with its 95 % bootstrap interval. Printed per
setting: theirs, ours (tinygpt.scaling.allocation.isoflop and the envelope), the difference and
whether each interval holds the other's estimate.

    python benchmarks/isoflop_published.py   # and writes benchmarks/results/isoflop_published.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.hardware import cpu_name
from tinygpt.scaling.allocation.envelope import cooled_envelope
from tinygpt.scaling.allocation.isoflop import isoflop

HERE = Path(__file__).parent


def _usable(valley) -> int:
    return int(valley.usable)


def main() -> None:
    table = pd.read_csv(HERE / "data" / "porian2024_isoflop.csv")
    published = json.loads((HERE / "data" / "porian2024_published.json").read_text())
    print(f"CPU: {cpu_name()}")
    print(f"{'setting':42} {'published a [95% CI]':>24} {'IsoFLOP a [95% CI]':>24}   diff "
          f"{'envelope a [95% CI]':>24}   diff   noise σ")  # fmt: skip
    rows, t0 = [], time.perf_counter()
    for setting, g in table.groupby("setting", sort=False):
        g = g.assign(C_budget=g["C"])
        view = isoflop(g, n_boot=1000)
        env = cooled_envelope(g, n_boot=1000, sigma=view.noise.sigma)
        pub = published[setting]
        a, ci = view.N_opt.exponent, view.N_opt.ci95
        rows.append(
            {
                "setting": setting,
                "published": pub,
                "isoflop": {"a": a, "ci95": list(ci), "budgets": sum(map(_usable, view.valleys))},
                "envelope": {"a": env.n_exponent, "ci95": list(env.n_ci95)},
                "noise_sigma_log": view.noise.sigma,
            }
        )  # fmt: skip
        print(f"{setting:42} {pub['a']:>8.3f} [{pub['a_ci95'][0]:.3f}, {pub['a_ci95'][1]:.3f}] "
              f"{a:>8.3f} [{ci[0]:.3f}, {ci[1]:.3f}] {a - pub['a']:+.3f} "
              f"{env.n_exponent:>8.3f} [{env.n_ci95[0]:.3f}, {env.n_ci95[1]:.3f}] "
              f"{env.n_exponent - pub['a']:+.3f}   {view.noise.sigma:.2%}")  # fmt: skip
    iso = np.array([r["isoflop"]["a"] - r["published"]["a"] for r in rows])
    env = np.array([r["envelope"]["a"] - r["published"]["a"] for r in rows])
    held = np.mean([r["isoflop"]["ci95"][0] <= r["published"]["a"] <= r["isoflop"]["ci95"][1]
                    for r in rows])  # fmt: skip
    width = np.median([np.diff(r["isoflop"]["ci95"])[0] / np.diff(r["published"]["a_ci95"])[0]
                       for r in rows])  # fmt: skip
    summary = {
        "isoflop_mean_abs_diff": float(np.abs(iso).mean()),
        "isoflop_max_abs_diff": float(np.abs(iso).max()),
        "envelope_mean_abs_diff": float(np.abs(env).mean()),
        "envelope_max_abs_diff": float(np.abs(env).max()),
        "isoflop_ci_holds_published": float(held),
        "isoflop_ci_width_over_published_median": float(width),
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps(summary, indent=1))
    out = HERE / "results" / "isoflop_published.json"
    out.write_text(json.dumps({"cpu": cpu_name(), "settings": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
