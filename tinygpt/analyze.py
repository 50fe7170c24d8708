"""`tinygpt-analyze`: fit scaling laws to runs and write the evidence: every law the runs
support with bootstrap CIs, the law forms chosen by forward cross-validation, the compute-optimal
allocation three ways, the check on the largest model no fit saw; or, by what the runs are, an
LR-transfer, adaptation or whole-curve view. Writes points.csv, fit.json and figures, and an
MLflow run nested under the sweep it read.

    tinygpt-analyze                                   # the newest sweep of ./mlflow.db
    tinygpt-analyze source.sweep=<parent run id or name> fit.bootstrap=4000
    tinygpt-analyze source=csv source.path=runs.csv source.columns.N=params
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tinygpt.app import config_dir
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError, instantiate, one_line_errors
from tinygpt.scaling.analysis import Analysis
from tinygpt.scaling.holdout import Holdout
from tinygpt.scaling.laws import FitSettings, Law, compute_optimal_at
from tinygpt.validation import check_analyze

log = logging.getLogger("tinygpt.analyze")
register_configs()


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


def log_analysis(
    cfg: DictConfig,
    table: pd.DataFrame,
    title: str,
    metrics: dict[str, float],
    paths: list[Path],
    report: str,
) -> str:
    """The analysis as an MLflow run nested under the sweep it read: config, figures, metrics,
    the printed report as its description; the sweep's description gains a link to it."""
    from tinygpt.tracking.mlflow_run import Store, Tracker, flatten, with_retry
    from tinygpt.tracking.notes import NOTE, analysis_note, with_analysis_link

    store = Store.connect(cfg.source.uri, cfg.source.experiment, setting="source.uri")
    name = f"{title} of {table.attrs.get('source_name')}"[:250]
    sweep = table.attrs.get("sweep_run_id")
    tracker = Tracker.start(store, name, {"kind": "analysis"}, parent_run_id=sweep)
    try:
        tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        tracker.log_metrics(metrics, 0)
        tracker.set_tags({NOTE: analysis_note(name, report)})
        for p in paths:
            tracker.log_artifact(p)
    finally:
        tracker.close("FINISHED")
    if sweep:
        swept = with_retry(lambda: store.client.get_run(sweep))
        note = with_analysis_link(
            swept.data.tags.get(NOTE, ""), store.experiment_id, tracker.run_id, name
        )
        with_retry(lambda: store.client.set_tag(sweep, NOTE, note))
    print(f"MLflow run {tracker.run_id}: {tracker.browse_hint()}")
    return tracker.run_id


def _log_to_mlflow(
    cfg: DictConfig, analysis: Analysis, paths: list[Path], report: str
) -> str | None:
    metrics = {}
    for law_name, law in analysis.laws.items():
        key = law_name.replace("(", "_").replace(")", "").replace(", ", "_").replace(" ", "_")
        metrics |= {f"{key}.{p}": v for p, v in law.params.items()}
        metrics[f"{key}.r2_log"] = law.r2
    view = analysis.isoflop
    for name, front in (("N_opt", view and view.N_opt), ("D_opt", view and view.D_opt)):
        if front:
            metrics[f"isoflop.{name}.exponent"] = front.exponent
    for law_name, check in analysis.holdouts.items():
        key = law_name.replace("(", "_").replace(")", "").replace(", ", "_")
        metrics[f"holdout.{key}.max_abs_relative_error"] = check.max_abs_relative_error
    return log_analysis(cfg, analysis.table, "analysis", metrics, paths, report)


def allocation(law: Law, analysis: Analysis) -> str:
    """Chinchilla's compute-optimal allocation implied by L(N, D), with bootstrap CIs."""
    opt = law.to_dict()["compute_optimal"]
    lines = []
    ci = {}
    a_ci = exponent_ci(law)
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
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def exponent_ci(law: Law) -> tuple[float, float] | None:
    """The bootstrap 95 % interval of a = β/(α+β) implied by L(N, D)."""
    if law.boot is None:
        return None
    nat, names = law.natural(law.boot), law.param_names()
    alpha, beta = nat[:, names.index("alpha")], nat[:, names.index("beta")]
    lo, hi = np.percentile(beta / (alpha + beta), [2.5, 97.5])
    return float(lo), float(hi)


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
                "2. IsoFLOP parabolas",
                view.N_opt.exponent,
                view.N_opt.ci95,
                view.D_opt.exponent,
                view.D_opt.ci95,
            )
        )
    law = analysis.laws.get("L(N, D)")
    if law is not None:
        a = law.to_dict()["compute_optimal"]["n_exponent"]
        ci = exponent_ci(law) or (float("nan"),) * 2
        rows.append(("3. L(N, D) fit", a, ci, 1 - a, (1 - ci[1], 1 - ci[0])))
    if not rows:
        return None
    lines = ["  compute-optimal allocation, N_opt ∝ C^a and D_opt ∝ C^b (95% CI):"]
    for name, a, a_ci, b, b_ci in rows:
        lines.append(f"    {name:27} a = {a:.3f} {_ci(*a_ci)}   b = {b:.3f} {_ci(*b_ci)}")
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


def forms_report(table: pd.DataFrame, cfg: DictConfig, out: Path) -> str:
    """Every form of fit.forms, chosen by forward CV; added to fit.json under "forms"."""
    import json

    from tinygpt.scaling import selection
    from tinygpt.scaling.holdout import held_out

    mask = held_out(table, cfg.fit.holdout)
    held = None if mask is None else pd.Series(np.asarray(mask[0]), index=table.index)
    try:
        chosen, reports = selection.select_form(
            table,
            list(cfg.fit.forms),
            held,
            cfg.fit.forms_bootstrap,
            cfg.fit.bootstrap_seed,
            cfg.fit.forms_folds,
            cfg.fit.bootstrap_unit,
        )
    except TinyGPTError as e:
        return f"  law forms: skipped ({e})"
    c_max = float(table["C"].max())
    path = out / "fit.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["forms"] = {
        "selected": chosen,
        "rule": "lowest mean |relative error| of the forward CV over the fitted sizes",
        **{name: rep.to_dict(c_max) for name, rep in reports.items()},
    }
    path.write_text(json.dumps(report, indent=2, default=float))
    if cfg.plots:
        from tinygpt.scaling.plots import forms_figure

        forms_figure(table, held, reports, chosen, out / "forms.png")
    return selection.text(chosen, reports, c_max)


def with_metric(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The table with ``loss`` set to what fit.metric asks for."""
    if metric == "val_loss":
        return table
    if "bpb" not in table or table["bpb"].isna().any():
        raise TinyGPTError(
            "fit.metric=val_bpb needs runs that logged final_val_bpb (every run since it was "
            "added; a CSV's loss is the column source.columns.loss maps): use fit.metric=val_loss"
        )
    out = table.assign(loss=table["bpb"])
    out.attrs = table.attrs
    return out


def lr_transfer_view(table: pd.DataFrame, cfg: DictConfig, out: Path) -> None:
    """An LR sweep across widths: each width's optimum and how far it drifts."""
    from tinygpt.scaling import lr_transfer

    paths, text = lr_transfer.write(table, out, plots=cfg.plots)
    print(f"{len(table)} runs from {table.attrs.get('source')}")
    print(text)
    print(f"{', '.join(p.name for p in paths)} in {out}")


def adaptation_view(table: pd.DataFrame, cfg: DictConfig, out: Path) -> None:
    """Seal runs: the improvement per setting and its power-law fits."""
    from tinygpt.scaling import adaptation

    settings = {k: v for k, v in cfg.fit.items() if k in FitSettings.__dataclass_fields__}
    settings.pop("holdout", None)
    paths, report = adaptation.write(table, out, FitSettings(**{**settings, "l1": False}))
    print(f"{len(table)} seal runs from {table.attrs.get('source')}")
    for name, law in report["fits"].items():
        if "b" in law:
            ci = law.get("b_ci95")
            spread = f"  b 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            print(f"  improvement, {name}: {law['a']:.4g} · x^{law['b']:.3f}{spread}")
        else:
            print(f"  improvement, {name}: no law ({law['skipped']})")
    print(f"{', '.join(p.name for p in paths)} in {out}")


def scaling_view(table: pd.DataFrame, cfg: DictConfig, out: Path) -> None:
    """A scaling study: every law with CIs, the allocation, the IsoFLOP view, the holdout."""
    from tinygpt.scaling.report import analyze, write

    table = with_metric(table, cfg.fit.metric.value)
    settings = {k: v for k, v in cfg.fit.items() if k in FitSettings.__dataclass_fields__}
    # The grid's far starts overflow by design; the fitter keeps only finite objectives.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        analysis = analyze(table, FitSettings(**settings))
    paths = write(analysis, out, plots=cfg.plots)
    say = Report()
    say(f"{len(analysis.table)} runs from {table.attrs.get('source')}")
    for name, law in analysis.laws.items():
        boot = law.to_dict().get("bootstrap", {})
        flat = boot.get("unresolved", [])
        bands = ", ".join(
            f"{p} unresolved (every refit stayed at {lo:.3g}: the fit is flat in it)"
            if p in flat
            else f"{p} ∈ [{lo:.4g}, {hi:.4g}]"
            for p, (lo, hi) in boot.get("ci95", {}).items()
        )
        say(
            f"  {name}: {law.formula()}   R²(log) = {law.r2:.4f}"
            + (f"\n    95% CI: {bands}" if bands else "")
        )
        for w in law.warnings:
            say(f"    warning: {w}")
        if law.variables == ["N", "D"]:
            say(allocation(law, analysis))
    for name, why in analysis.skipped.items():
        say(f"  {name}: skipped ({why})")
    if analysis.isoflop is not None:
        say(isoflop_report(analysis))
    exponents = exponents_report(analysis)
    if exponents:
        say(exponents)
    if analysis.holdout is not None:
        say(holdout_report(analysis.holdout))
    if cfg.fit.forms and "L(N, D)" in analysis.laws:
        say(forms_report(analysis.table, cfg, out))
        if (out / "forms.png").exists():
            paths.append(out / "forms.png")
    if cfg.log_to_mlflow and "sweep_run_id" in table.attrs:
        _log_to_mlflow(cfg, analysis, paths, say.text)
    print(f"plots, points.csv and fit.json in {out}")


def curves_view(table: pd.DataFrame, cfg: DictConfig, out: Path) -> None:
    """Loss curves under different LR schedules: whole-curve laws fitted on some, the rest
    predicted (tinygpt.scaling.curves)."""
    from tinygpt.config import CurveFitConfig
    from tinygpt.scaling import curve_report
    from tinygpt.scaling.curve_sources import to_curves

    settings = CurveFitConfig(**OmegaConf.to_container(cfg.fit.curves, resolve=True))
    curves = to_curves(table)
    report, fitted = curve_report.analyze_curves(curves, settings, table.attrs.get("run_ids"))
    paths = curve_report.write(report, fitted, curves, out, plots=cfg.plots)
    say = Report()
    say(f"{len(curves)} loss curves from {table.attrs.get('source')}")
    say(curve_report.text(report))
    if cfg.log_to_mlflow and table.attrs.get("sweep_run_id"):
        _log_curves_to_mlflow(cfg, table, report, paths, say.text)
    print(f"{', '.join(p.name for p in paths)} in {out}")


def _log_curves_to_mlflow(
    cfg: DictConfig, table: pd.DataFrame, report: dict, paths: list[Path], printed: str
) -> None:
    metrics = {
        f"curves.{law_name}.{key}": s[key]
        for law_name, s in report["laws"].items()
        for key in ("mean_relative_error", "max_relative_error", "inside_band")
        if key in s
    }
    log_analysis(cfg, table, "curves", metrics, paths, printed)


# The source labels its table with the study it holds (``table.attrs["kind"]``).
VIEWS = {
    "scaling": scaling_view,
    "lr_transfer": lr_transfer_view,
    "adaptation": adaptation_view,
    "curves": curves_view,
}


def run(cfg: DictConfig, out: Path) -> None:
    check_analyze(cfg)
    table = instantiate(cfg.source)
    VIEWS[table.attrs.get("kind", "scaling")](table, cfg, out)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="analyze")
def _main(cfg: DictConfig) -> None:
    with one_line_errors("tinygpt-analyze", log):
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
