"""The analysis as text: what tinygpt-analyze prints, line by line, kept for the MLflow run."""

from __future__ import annotations

from tinygpt.accounting import FLOP_WORDS, PARAMETER_WORDS
from tinygpt.scaling.interval import as_text, resolved
from tinygpt.scaling.laws.holdout import Holdout
from tinygpt.scaling.laws.law import Law, compute_optimal_at
from tinygpt.scaling.study import Analysis


class Report:
    """What a view prints, kept as it goes: the analysis run's description in MLflow."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        print(text)
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def allocation(law: Law, analysis: Analysis) -> str:
    """Chinchilla's compute-optimal allocation implied by L(N, D), with bootstrap CIs."""
    opt = law.to_dict()["compute_optimal"]
    lines = []
    ci = {}
    a_ci = law.exponent_ci()
    if a_ci is not None:
        ci = {"a": a_ci, "b": (1 - a_ci[1], 1 - a_ci[0])}
    band = {k: f" [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in ci.items()}
    lines.append(
        f"    compute-optimal: N_opt ∝ C^{opt['n_exponent']:.3f}{band.get('a', '')}, "
        f"D_opt ∝ C^{opt['d_exponent']:.3f}{band.get('b', '')} (95% CI)"
    )
    c_max = float(analysis.table["C"].max())
    n_opt, d_opt = compute_optimal_at(opt, c_max)
    lines.append(
        f"    at the sweep's largest compute, C = {c_max:.3g} FLOPs: N_opt = {n_opt:,.0f}, "
        f"D_opt = {d_opt:,.0f} ({d_opt / n_opt:.1f} tokens per parameter)"
    )
    return "\n".join(lines)


def _ci(lo: float, hi: float, fmt: str = ".3f") -> str:
    return as_text(lo, hi, fmt)


def isoflop_report(analysis: Analysis) -> str:
    view = analysis.isoflop
    lines = [f"  IsoFLOP profiles (Chinchilla's approach 2), {len(view.valleys)} compute budgets:"]
    for v in view.valleys:
        if not v.usable:
            lines.append(f"    C = {v.C:.3g} ({v.sizes} sizes): {v.note}")
            continue
        lines.append(
            f"    C = {v.C:.3g} ({v.sizes} sizes): N_opt = {v.N_opt:,.0f} "
            f"{_ci(*v.N_ci, ',.0f')}, D_opt = {v.D_opt:,.0f} {_ci(*v.D_ci, ',.0f')}, "
            f"loss {v.loss_min:.4f}"
        )
    return "\n".join(lines)


def exponents_report(analysis: Analysis) -> str | None:
    """Chinchilla's three estimates of a and b side by side, with their 95 % intervals."""
    rows = []
    env, view = analysis.envelope, analysis.isoflop
    if env is not None:
        rows.append(
            (f"1. envelope, {env.reads}", env.n_exponent, env.n_ci95, env.d_exponent, env.d_ci95)
        )
    if view is not None and view.N_opt is not None:
        rows.append(
            (
                "2. IsoFLOP valleys",
                view.N_opt.exponent,
                view.N_opt.ci95,
                view.D_opt.exponent,
                view.D_opt.ci95,
            )
        )
    law = analysis.laws.get("L(N, D)")
    if law is not None:
        a = law.to_dict()["compute_optimal"]["n_exponent"]
        ci = law.exponent_ci() or (float("nan"),) * 2
        rows.append(("3. L(N, D) fit", a, ci, 1 - a, (1 - ci[1], 1 - ci[0])))
    if not rows:
        return None
    lines = ["  compute-optimal allocation, N_opt ∝ C^a and D_opt ∝ C^b (95% CI):"]
    for name, a, a_ci, b, b_ci in rows:
        if resolved(*a_ci):
            lines.append(f"    {name:27} a = {a:.3f} {_ci(*a_ci)}   b = {b:.3f} {_ci(*b_ci)}")
        else:  # one reason, once
            lines.append(f"    {name:27} a = {a:.3f}   b = {b:.3f}   {_ci(*a_ci)}")
    return "\n".join(lines)


def holdout_report(check: Holdout) -> str:
    lines = [
        f"  holdout: {check.law.name} fitted without {check.description} "
        f"({check.law.n_points} runs) predicts it within "
        f"{check.max_abs_relative_error:.2%} (max |relative error|)"
    ]
    for r in check.points.itertuples():
        seeds = f" (seeds {r.loss_min:.4f}–{r.loss_max:.4f})" if r.seeds > 1 else ""
        lines.append(
            f"    N = {r.N:,.0f}, D = {r.D:,.0f}: measured {r.loss:.4f}{seeds}, predicted "
            f"{r.predicted:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}], error {r.relative_error:+.2%}"
        )
    return "\n".join(lines)


def conventions_line(conventions: dict[str, str]) -> str:
    """What N and C count, in words (tinygpt/accounting.py)."""
    n, c = conventions["parameters"], conventions["flops"]
    n_words = PARAMETER_WORDS.get(n, f"{n} (the table does not say: source.parameters)")
    c_words = FLOP_WORDS.get(c, "6ND from the table's N and D" if c == "6ND" else
                             f"{c} (the table does not say: source.flops)")  # fmt: skip
    return f"  N counts {n_words}; C counts {c_words}"


def law_units(variables: list[str], conventions: dict[str, str]) -> str:
    """The conventions a law's variables are in, for its line: ``[N total, C exact]``."""
    tags = {"N": f"N {conventions['parameters']}", "C": f"C {conventions['flops']}"}
    named = [tags[v] for v in variables if v in tags]
    if "D" in variables and "C" not in variables and "N" in variables:
        named.append(f"C {conventions['flops']} in the allocation")
    return f"[{', '.join(named)}]" if named else ""


def analysis_lines(analysis: Analysis) -> list[str]:
    """A scaling study's report after its first line: the bootstrap's unit, every law with its
    CIs and warnings, the allocation, what was skipped and why, IsoFLOP, exponents, holdout."""
    out: list[str] = [conventions_line(analysis.conventions)]
    out.append(f"  bootstrap resamples: {analysis.resampled}")
    for name, law in analysis.laws.items():
        boot = law.to_dict().get("bootstrap", {})
        bands = ", ".join(
            f"{p} unresolved (every refit stayed at {law.params[p]:.3g}: the fit is flat in it)"
            if ci is None
            else f"{p} ∈ [{ci[0]:.4g}, {ci[1]:.4g}]"
            for p, ci in boot.get("ci95", {}).items()
        )
        out.append(
            f"  {name}: {law.formula()}   R²(log) = {law.r2:.4f}  "
            f"{law_units(law.variables, analysis.conventions)}"
            + (f"\n    95% CI: {bands}" if bands else "")
        )
        for w in law.warnings:
            out.append(f"    warning: {w}")
        if law.variables == ["N", "D"]:
            out.append(allocation(law, analysis))
    for name, why in analysis.skipped.items():
        out.append(f"  {name}: skipped ({why})")
    if analysis.isoflop is not None:
        out.append(isoflop_report(analysis))
    exponents = exponents_report(analysis)
    if exponents:
        out.append(exponents)
    if analysis.holdout is not None:
        out.append(holdout_report(analysis.holdout))
    return out
