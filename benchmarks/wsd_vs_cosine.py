"""Are cooldown branches honest? Each branch's loss beside a fresh cosine run to the same budget.

For every model size: one WSD job per (decay fraction, shape) variant with
``training.budgets=[...]`` (one trunk, a cooldown branch per smaller budget), and one separate
cosine run per budget from scratch, all with the same seed and peak LR on the shipped corpus.
Prints, per cell, the branch's final validation loss, the cosine run's, and the relative gap
(branch / cosine − 1; negative = the branch is better), then the tokens trained by the branch set
against the separate runs. Writes benchmarks/results/wsd_vs_cosine.json.

    python benchmarks/wsd_vs_cosine.py [--sizes d32 d64] [--budgets 150000 300000 600000]
        [--variants 0.2:linear 0.2:1-sqrt 0.1:linear 0.3:1-sqrt] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from tinygpt.app import config_dir
from tinygpt.train.job import run


def results(overrides: list[str], out: Path) -> dict:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["tracking.enabled=false", *overrides])
    run(cfg, out_dir=out)
    return json.loads((out / "results.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["d32", "d64"])
    ap.add_argument("--budgets", nargs="+", type=int, default=[150_000, 300_000, 600_000])
    ap.add_argument(
        "--variants", nargs="+", default=["0.2:linear", "0.2:1-sqrt", "0.1:1-sqrt", "0.3:1-sqrt"]
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/wsd_vs_cosine.json")
    args = ap.parse_args()
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for size in args.sizes:
            base = [f"model={size}", f"seed={args.seed}"]
            cosine = {
                b: results([*base, f"training.tokens={b}"], tmp / f"{size}-cos-{b}")
                for b in args.budgets
            }
            separate_tokens = sum(r["tokens_seen"] for r in cosine.values())
            for variant in args.variants:
                fraction, shape = variant.split(":")
                wsd = [
                    "optimizer/schedule=wsd",
                    f"optimizer.schedule.decay_fraction={fraction}",
                    f"optimizer.schedule.shape={shape}",
                    f"training.budgets=[{','.join(map(str, args.budgets))}]",
                ]
                res = results([*base, *wsd], tmp / f"{size}-wsd-{fraction}-{shape}")
                branch = {b["budget_tokens"]: b for b in res["budgets"]}
                for b in args.budgets:
                    gap = branch[b]["final_val_loss"] / cosine[b]["final_val_loss"] - 1
                    rows.append(
                        {
                            "size": size,
                            "decay_fraction": float(fraction),
                            "shape": shape,
                            "budget": b,
                            "branch_loss": branch[b]["final_val_loss"],
                            "cosine_loss": cosine[b]["final_val_loss"],
                            "relative_gap": gap,
                        }
                    )
                costs.append(
                    {
                        "size": size,
                        "decay_fraction": float(fraction),
                        "shape": shape,
                        "branch_set_tokens": res["trunk_tokens"] + res["branch_tokens"],
                        "separate_runs_tokens": separate_tokens,
                        "branch_set_seconds": res["wall_seconds"],
                        "separate_runs_seconds": sum(r["wall_seconds"] for r in cosine.values()),
                    }
                )
    print(f"{'size':5} {'variant':>12} {'budget':>9} {'branch':>8} {'cosine':>8} {'gap':>8}")
    for r in rows:
        variant = f"{r['decay_fraction']}:{r['shape']}"
        print(
            f"{r['size']:5} {variant:>12} {r['budget']:>9,} {r['branch_loss']:8.4f} "
            f"{r['cosine_loss']:8.4f} {r['relative_gap']:+8.2%}"
        )
    print("\ntokens (and seconds) trained: branch set vs separate cosine runs")
    for c in costs:
        print(
            f"{c['size']:5} {c['decay_fraction']}:{c['shape']:7} "
            f"{c['branch_set_tokens']:>10,} vs {c['separate_runs_tokens']:>10,} "
            f"({c['branch_set_tokens'] / c['separate_runs_tokens']:.2f}x); "
            f"{c['branch_set_seconds']:.1f} s vs {c['separate_runs_seconds']:.1f} s"
        )
    by_variant: dict[str, list[float]] = {}
    for r in rows:
        by_variant.setdefault(f"{r['decay_fraction']}:{r['shape']}", []).append(r["relative_gap"])
    print("\nmean gap per variant (negative: branches beat cosine):")
    for v, gaps in by_variant.items():
        print(f"  {v:12} {sum(gaps) / len(gaps):+.2%} (max |gap| {max(map(abs, gaps)):.2%})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"rows": rows, "costs": costs, "args": vars(args)}, indent=2)
    )


if __name__ == "__main__":
    main()
