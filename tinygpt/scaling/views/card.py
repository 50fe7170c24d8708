"""The study card: card.md, the reporting checklist of Li, Kudugunta & Zettlemoyer, "(Mis)Fitting:
A Survey of Scaling Laws" (2025), answered from the study itself — what N and C count, the form
and how it was chosen, the fit's objective, optimizer and starts, the runs, sizes, budgets and
seeds, how the LR was set, the data, and which points were left out and why."""

from __future__ import annotations

from typing import Any

from tinygpt.scaling.settings import FitSettings
from tinygpt.scaling.study import Analysis
from tinygpt.scaling.views.text import conventions_line


def _values(values: Any, fmt: str = ",.0f") -> str:
    return ", ".join(f"{v:{fmt}}" for v in sorted(set(values)))


def card(analysis: Analysis, settings: FitSettings, forms: dict | None = None) -> str:
    """The card as Markdown."""
    t, attrs = analysis.table, analysis.table.attrs
    # What a reader needs to rebuild the runs: set values, not the cache's path.
    fixed = {
        k: v
        for k, v in attrs.get("fixed", {}).items()
        if v not in (None, "None") and not k.endswith("cache_dir")
    }
    law = analysis.laws.get("L(N, D)")
    lines = [
        "# Study card",
        "",
        f"Source: {attrs.get('source')}.",
        "",
        "## What was counted",
        conventions_line(analysis.conventions).strip() + ".",
        "",
        "## Runs",
        f"- {len(t)} runs; sizes N = {_values(t['N'])}; budgets D = {_values(t['D'])} tokens.",
        f"- seeds: {_values(t['seed'], 'd')} ({t.groupby(['N', 'D'])['seed'].nunique().min()}"
        f"–{t.groupby(['N', 'D'])['seed'].nunique().max()} per (N, D)).",
    ]
    if fixed:
        data = {k: v for k, v in fixed.items() if k.startswith("data.")}
        lines.append("- data: " + ", ".join(f"`{k}={v}`" for k, v in sorted(data.items())))
    lines += ["", "## How the learning rate was set"]
    if "optimizer.lr" in t:
        lrs = t.groupby("N")["optimizer.lr"].first()
        lines.append("- per size: " + ", ".join(f"N {n:,.0f}: {lr:.3g}" for n, lr in lrs.items()))
    elif "optimizer.lr" in fixed:
        lines.append(f"- one peak LR for every run: {fixed['optimizer.lr']}")
    law_keys = {k: v for k, v in fixed.items() if k.startswith("optimizer.lr_law.")}
    if law_keys:
        lines.append("- from the LR law " + ", ".join(f"`{k}={v}`" for k, v in law_keys.items()))
    other = {k: v for k, v in fixed.items() if k.startswith(("optimizer.impl.", "optimizer.sched"))}
    if other:
        lines.append("- optimizer: " + ", ".join(f"`{k}={v}`" for k, v in sorted(other.items())))
    if not ("optimizer.lr" in t or fixed):
        lines.append("- not recorded in this source")
    lines += [
        "",
        "## The fit",
        f"- objective: Huber loss (δ = {settings.delta:g}) on log-loss residuals; a batched BFGS "
        "from a grid of starts (tinygpt/scaling/fit/batched.py), the best kept",
        f"- intervals: {settings.bootstrap} bootstrap refits, resampling {analysis.resampled}",
    ]
    if law is not None:
        lines.append(f"- L(N, D): {law.formula()}, R²(log) = {law.r2:.4f}, {law.starts} starts")
    if forms:
        lines.append(
            f"- form: {forms['selected']}, chosen by {forms['rule']} among "
            f"{', '.join(k for k in forms if k not in ('selected', 'rule'))}"
        )
    lines += ["", "## Points left out, and what was not fitted"]
    holdout = analysis.holdout
    left = []
    if holdout is not None:  # fit.holdout=none
        left.append(f"- held out of the check's fit, then predicted: {holdout.description}")
    left += [f"- {name}: {why}" for name, why in analysis.skipped.items()]
    lines += left or ["- none"]
    return "\n".join(lines) + "\n"
