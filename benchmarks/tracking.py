"""What MLflow tracking costs a training run: the same tiny run with tracking on and off.

Runs the full `tinygpt` job (d32, default log and eval intervals) with tracking into a fresh
sqlite store and with tracking disabled, interleaved, best of --repeats each; prints steps/s of
both, the overhead, the time spent inside store writes, and what one unbatched `log_metric` call
costs on the same store for comparison. Writes benchmarks/results/tracking.json.

    python benchmarks/tracking.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from tinygpt.app import config_dir
from tinygpt.train.job import run


def one_run(tmp: Path, steps: int, tracking: bool, cache: str, system: float = 0) -> dict:
    """``system``: sample MLflow's system metrics every so many seconds (0: off)."""
    overrides = [
        "model=d32",
        f"training.max_steps={steps}",
        f"tracking.enabled={str(tracking).lower()}",
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        f"data.cache_dir={cache}",
        "tracking.log_model=false",
        f"tracking.system_metrics={str(bool(system)).lower()}",
        f"tracking.system_metrics_interval={system or 10}",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    out = tmp / f"run-{tracking}-{time.time_ns()}"
    run(cfg, out_dir=out)
    return json.loads((out / "results.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "tinygpt"))
    # 1 s: ten times the default rate, so the cost of the default is at most a tenth of this.
    ap.add_argument("--system-interval", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        one_run(tmp, 20, True, args.cache_dir)  # create the store's schema outside the timing
        on, off, system = [], [], []
        for _ in range(args.repeats):
            on.append(one_run(tmp, args.steps, True, args.cache_dir))
            off.append(one_run(tmp, args.steps, False, args.cache_dir))
            system.append(one_run(tmp, args.steps, True, args.cache_dir, args.system_interval))
        client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
        run_id = client.search_runs([client.get_experiment_by_name("tinygpt").experiment_id])[0]
        t0 = time.perf_counter()
        for i in range(20):
            client.log_metric(run_id.info.run_id, "probe", float(i), step=i)
        single_ms = (time.perf_counter() - t0) / 20 * 1e3
    best_on = min(on, key=lambda r: r["wall_seconds"])
    best_off = min(off, key=lambda r: r["wall_seconds"])
    best_system = min(system, key=lambda r: r["wall_seconds"])
    overhead = 1 - best_off["wall_seconds"] / best_on["wall_seconds"]
    system_overhead = 1 - best_on["wall_seconds"] / best_system["wall_seconds"]
    share = best_on["tracking_seconds"] / best_on["wall_seconds"]
    result = {
        "steps": args.steps,
        "steps_per_sec_tracking_on": args.steps / best_on["wall_seconds"],
        "steps_per_sec_tracking_off": args.steps / best_off["wall_seconds"],
        "overhead_fraction": overhead,
        "steps_per_sec_with_system_metrics": args.steps / best_system["wall_seconds"],
        "system_metrics_interval_s": args.system_interval,
        "system_metrics_overhead_fraction": system_overhead,
        "store_write_seconds": best_on["tracking_seconds"],
        "store_write_share_of_run": share,
        "single_log_metric_ms": single_ms,
        "metrics_per_run": args.steps // 10 * 3 + args.steps // 100 * 3,
    }
    print(f"steps/s tracking on : {result['steps_per_sec_tracking_on']:.1f}")
    print(f"steps/s tracking off: {result['steps_per_sec_tracking_off']:.1f}")
    print(f"overhead (best of {args.repeats}): {overhead:+.2%}")
    print(
        f"steps/s with system metrics every {args.system_interval:g} s: "
        f"{result['steps_per_sec_with_system_metrics']:.1f} ({system_overhead:+.2%} against "
        "tracking without them)"
    )
    print(f"time inside store writes: {best_on['tracking_seconds']:.3f} s = {share:.2%} of the run")
    unbatched = single_ms * result["metrics_per_run"] / 1e3
    print(
        f"one unbatched log_metric into sqlite: {single_ms:.1f} ms "
        f"(x {result['metrics_per_run']} metrics = {unbatched:.2f} s if unbatched)"
    )
    out = Path(__file__).parent / "results" / "tracking.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
