"""A plan as text and as a figure of the (N, D) plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.scaling.plan.choose import Plan


def report(plan: Plan, form: str, cmds: list[str]) -> str:
    ci_b, ci_a = plan.ci_before, plan.ci_after
    fmt = ".3f" if plan.target.kind == "exponent" else ",.4g"
    lines = [
        f"plan for {plan.target.describe()} under {form} ({plan.members} bootstrap laws"
        + (f"; {plan.dropped_members} without an optimum left out" if plan.dropped_members else "")
        + ")",
        f"  now:   {plan.centre:{fmt}}  95% CI [{ci_b[0]:{fmt}}, {ci_b[1]:{fmt}}]",
        f"  after: 95% CI [{ci_a[0]:{fmt}}, {ci_a[1]:{fmt}}] predicted ({plan.narrowing:.2f}x "
        f"narrower), for {plan.flops:.3g} of {plan.budget_flops:.3g} FLOPs",
        "  runs:",
    ]
    for job in plan.jobs:
        budgets = ", ".join(f"{b:,.0f}" for b in job.budgets)
        lines.append(
            f"    {job.size.name:5} (N = {job.size.N:,.0f}) seed {job.seed}: tokens {budgets}"
            f"  ({job.flops(plan.decay_fraction):.3g} FLOPs)"
        )
    lines.append("  commands:")
    lines += [f"    {c}" for c in cmds]
    return "\n".join(lines)


def figure(table: pd.DataFrame, plan: Plan, path: Path) -> Path:
    """The (N, D) plane: runs done (grey, area by seeds), proposed (red, seeds written beside),
    the target's point, and lines of equal compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygpt.scaling.axes import LABELS, readable_log_axis, save

    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    done = table.groupby(["N", "D"]).size().reset_index(name="seeds")
    ax.scatter(done["D"], done["N"], s=16 * done["seeds"], c="0.45", label="trained (area: seeds)")
    proposed = pd.DataFrame(
        [(j.size.N, d) for j in plan.jobs for d in j.budgets], columns=["N", "D"]
    )
    counts = proposed.groupby(["N", "D"]).size().reset_index(name="seeds")
    if len(counts):
        ax.scatter(counts["D"], counts["N"], s=16 * counts["seeds"], facecolors="none",
                   edgecolors="C3", linewidths=1.6, label="proposed (x seeds)")  # fmt: skip
        for _, r in counts[counts["seeds"] > 1].iterrows():
            ax.annotate(f"x{int(r['seeds'])}", (r["D"], r["N"]), xytext=(6, 4),
                        textcoords="offset points", fontsize=7, color="C3")  # fmt: skip
    Ns = [*done["N"], *counts["N"]] + ([plan.target.N] if plan.target.N else [])
    Ds = [*done["D"], *counts["D"]] + ([plan.target.D] if plan.target.D else [])
    d_lo, d_hi, n_lo, n_hi = min(Ds) / 1.6, max(Ds) * 1.6, min(Ns) / 1.6, max(Ns) * 1.6
    ds = np.geomspace(d_lo, d_hi, 50)
    for c in np.geomspace(6 * n_lo * d_lo, 6 * n_hi * d_hi, 8)[1:-1]:
        ax.plot(ds, c / (6 * ds), color="0.85", lw=0.8, zorder=0)
        at = d_hi / 1.25  # labelled at the right edge, where the line is inside the axes
        if n_lo < c / (6 * at) < n_hi:
            ax.annotate(f"C={c:.0e}", (at, c / (6 * at)), fontsize=7, color="0.5", ha="right")
    if plan.target.kind == "loss":
        ax.scatter([plan.target.D], [plan.target.N], marker="*", s=180, c="C0", label="target")
    ax.set(xscale="log", yscale="log", xlim=(d_lo, d_hi), ylim=(n_lo, n_hi),
           xlabel=LABELS["D"], ylabel=LABELS["N"])  # fmt: skip
    readable_log_axis(ax.xaxis, d_lo, d_hi, "D")
    readable_log_axis(ax.yaxis, n_lo, n_hi, "N")
    ax.set_title(f"next round for {plan.target.describe()}\n95% CI {plan.narrowing:.2f}x "
                 "narrower (predicted)", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return save(fig, path)
