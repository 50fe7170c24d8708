"""Run descriptions in the MLflow UI (MLflow's "note", the ``mlflow.note.content`` tag, which
the run page renders as Markdown): a sweep's lists its jobs with their final losses and links
the analyses made of it; an analysis run's holds the report ``tinygpt-analyze`` printed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

NOTE = "mlflow.note.content"


def run_link(experiment_id: str, run_id: str, text: str) -> str:
    """A Markdown link to a run's page, relative to the UI (works on any host and port)."""
    return f"[{text}](#/experiments/{experiment_id}/runs/{run_id})"


def _loss(run: Any) -> str:
    value = run.data.metrics.get("final_val_loss")
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"


def swept(overrides: str) -> list[str]:
    """The keys a sweep varies: those given several comma-separated values (``seed=1,2``)."""
    return [w.split("=", 1)[0] for w in overrides.split() if "=" in w and "," in w.split("=", 1)[1]]


def job_label(run_name: str, keys: list[str]) -> str:
    """A job by what the sweep varied (``model=d32 seed=1``), read off its run name (Hydra's
    ``key=value,key=value`` of the job's overrides); the whole name where none is found."""
    pairs = dict(p.split("=", 1) for p in run_name.split(",") if "=" in p)
    shown = [f"{k}={pairs[k]}" for k in keys if k in pairs]
    return " ".join(shown) or run_name


def sweep_note(
    overrides: str, sweep_dir: str, children: Iterable[Any], preset: Iterable[str] = ()
) -> str:
    """The sweep's description: its command, and a table of its jobs, each linked and named
    by what the sweep varies (comma-separated overrides, a preset's ``hydra.sweeper.params``)."""
    rows = sorted(children, key=lambda r: r.info.run_name or "")
    keys = list(dict.fromkeys([*preset, *swept(overrides)]))
    lines = [
        f"**Sweep** `tinygpt -m {overrides}`".rstrip(),
        "",
        f"{len(rows)} jobs; each job's directory is under `{sweep_dir}`.",
        "",
        "| job | status | final val loss |",
        "|---|---|---|",
    ]
    for r in rows:
        label = job_label(r.info.run_name or r.info.run_id, keys)
        link = run_link(r.info.experiment_id, r.info.run_id, label)
        lines.append(f"| {link} | {r.info.status} | {_loss(r)} |")
    return "\n".join(lines) + "\n"


def analysis_note(title: str, report: str) -> str:
    """An analysis run's description: the printed report, verbatim (a fenced block keeps its
    columns), and where its files are."""
    return (
        f"**{title}**, as the command printed it; its files (figures, fit.json, ...) are this "
        f"run's artifacts.\n\n```text\n{report.rstrip()}\n```\n"
    )


def with_analysis_link(note: str, experiment_id: str, run_id: str, name: str) -> str:
    """A sweep's note with a link to one more analysis of it (each analysis adds its own)."""
    head = "**Analyses of this sweep**"
    if head not in note:
        note = note.rstrip() + f"\n\n{head}\n"
    return note.rstrip() + f"\n- {run_link(experiment_id, run_id, name)}\n"
