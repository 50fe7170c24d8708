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


def sweep_note(overrides: str, sweep_dir: str, children: Iterable[Any]) -> str:
    """The sweep's description: its command, and a table of its jobs, each linked."""
    rows = sorted(children, key=lambda r: r.info.run_name or "")
    lines = [
        f"**Sweep** `tinygpt -m {overrides}`".rstrip(),
        "",
        f"{len(rows)} jobs; each job's directory is under `{sweep_dir}`.",
        "",
        "| job | status | final val loss |",
        "|---|---|---|",
    ]
    for r in rows:
        link = run_link(r.info.experiment_id, r.info.run_id, r.info.run_name or r.info.run_id)
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
