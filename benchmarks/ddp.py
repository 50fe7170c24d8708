"""Many processes on one machine: tokens/s at world 1 and 2, and the all-reduce's share.

Trains the same job (``--model``, fixed steps, tracking off) as one process with every core's
thread and as ``--ranks`` DDP ranks (gloo on CPU, nccl on CUDA) of ``cores / ranks`` threads each,
through ``tinygpt hardware.devices=N`` (torch's elastic launcher), and reads each job's steady
tokens/s from its results.json. A third run prices the gradient all-reduce: with
``optimizer.grad_accum=N`` only the last of N micro-steps synchronises, so with c the compute
and a the all-reduce of a micro-step, 1/tps = (c + a)/T without accumulation and (c + a/N)/T
with it; a/(c + a) follows from the two. Prints a table; ``--json`` writes it.

    python benchmarks/ddp.py                        # d64 and d128, 2 ranks x 1 thread vs 1 x 2
    python benchmarks/ddp.py --models d256 --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tinygpt.hardware import cpu_name


def job(model: str, steps: int, ranks: int, accum: int, cwd: Path, extra: list[str]) -> float:
    out = cwd / f"{model}-{ranks}-{accum}"
    args = [
        f"model={model}",
        "hardware=cpu",
        "model.dropout=0.0",
        "training.batch_size=16",
        f"optimizer.grad_accum={accum}",
        f"training.max_steps={steps}",
        "training.eval_interval=100000",
        "training.eval_batches=1",
        "training.log_interval=5",
        "tracking.enabled=false",
        f"hardware.devices={ranks}",
        f"hydra.run.dir={out}",
        *extra,
    ]
    env = dict(os.environ)
    cores = os.cpu_count() or 1
    env["OMP_NUM_THREADS"] = str(max(1, cores // ranks))
    done = subprocess.run(
        [sys.executable, "-m", "tinygpt.app", *args], cwd=cwd, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"{model} at {ranks} rank(s) failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "results.json").read_text())["steady_tokens_per_sec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["d64", "d128"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="extra tinygpt overrides for every job")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"CPU: {cpu_name()}, {cores} cores; {args.steps} steps of batch 16")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for model in args.models:
            one = job(model, args.steps, 1, 1, cwd, args.overrides)
            many = job(model, args.steps, args.ranks, 1, cwd, args.overrides)
            # With accumulation over `ranks` micro-steps, only the last one synchronises: the
            # difference per synchronised step against no accumulation is the all-reduce.
            accum = job(model, args.steps, args.ranks, args.ranks, cwd, args.overrides)
            # Seconds per token with a sync every micro-step, and every `ranks` micro-steps.
            per_step, per_step_accum = 1 / many, 1 / accum
            share = (per_step - per_step_accum) / per_step * args.ranks / (args.ranks - 1)
            row = {
                "model": model,
                "world_1_tokens_per_sec": one,
                f"world_{args.ranks}_tokens_per_sec": many,
                "ratio": many / one,
                "all_reduce_share": max(0.0, share),
            }
            rows.append(row)
            print(
                f"  {model:5}  1 x {cores} threads: {one:9,.0f} tok/s   {args.ranks} x "
                f"{max(1, cores // args.ranks)} thread(s): {many:9,.0f} tok/s  "
                f"({many / one:.2f}x)   all-reduce ~{row['all_reduce_share']:.0%} of a step"
            )
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
