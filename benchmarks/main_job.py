"""Time to a law: the README's main job end to end (sweep + analysis), and where the time goes.

Runs exactly the README's commands, `tinygpt -m experiment=scaling` then `tinygpt-analyze`, as
subprocesses into a throw-away sweep directory and sqlite store, and splits the wall time with
each job's `timing.json` (tinygpt/timing.py charges every second of a job to one phase):
training steps, evaluation, checkpoints, tracking (store writes), model logging (the pyfunc),
job start-up (config checks, data, model, MLflow run) and finish (results, artifacts); what the
jobs do not account for is the process: interpreter start, imports, Hydra's compose and
launcher. Prints the table and writes --json.

    python benchmarks/main_job.py                     # the README's main job
    python benchmarks/main_job.py model=d16 seed=1    # any extra overrides, appended to the sweep's
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tinygpt.hardware import cpu_name

BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def split(sweep_dir: Path) -> tuple[dict[str, float], int]:
    """The phases summed over the sweep's jobs, and how many jobs reported."""
    totals: dict[str, float] = {}
    files = sorted(sweep_dir.glob("*/timing.json"))
    for f in files:
        for phase, seconds in json.loads(f.read_text())["seconds"].items():
            totals[phase] = totals.get(phase, 0.0) + seconds
    return totals, len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="extra overrides for the sweep")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/main_job.json"))
    ap.add_argument("--keep", type=Path, help="an empty directory to keep the sweep and store in")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
        store = f"sqlite:///{work / 'mlflow.db'}"
        sweep = [
            str(BIN / "tinygpt"),
            "-m",
            "experiment=scaling",
            f"tracking.uri={store}",
            f"hydra.sweep.dir={work / 'sweep'}",
            *args.overrides,
        ]
        analyze = [
            str(BIN / "tinygpt-analyze"),
            f"source.uri={store}",
            f"hydra.run.dir={work / 'analysis'}",
        ]
        sweep_s = timed(sweep, work)
        analyze_s = timed(analyze, work)
        phases, jobs = split(work / "sweep")

    process = sweep_s - sum(phases.values())
    rows = [*sorted(phases.items(), key=lambda kv: -kv[1]), ("process, imports, compose", process)]
    total = sweep_s + analyze_s
    print(
        f"main job: {total:.1f} s = sweep {sweep_s:.1f} s ({jobs} jobs) + analysis "
        f"{analyze_s:.1f} s"
    )
    print(f"{'':2}{'phase':28}{'seconds':>9}{'share':>8}{'per job':>9}")
    for name, seconds in [*rows, ("analysis", analyze_s)]:
        per_job = f"{seconds / jobs:9.2f}" if name != "analysis" else ""
        print(f"  {name:28}{seconds:9.1f}{seconds / total:8.1%}{per_job}")
    training = phases.get("training", 0.0)
    print(f"  not training: {total - training:.1f} s ({(total - training) / total:.1%})")

    result = {
        "command": " ".join(["tinygpt -m experiment=scaling", *args.overrides]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "total_seconds": total,
        "sweep_seconds": sweep_s,
        "analysis_seconds": analyze_s,
        "jobs": jobs,
        "phases_seconds": {**dict(rows), "analysis": analyze_s},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
