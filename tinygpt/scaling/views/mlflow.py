"""The analysis (or a plan) as an MLflow run nested under the sweep it read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tinygpt.scaling.study import Analysis


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


def log_scaling(cfg: DictConfig, analysis: Analysis, paths: list[Path], report: str) -> str | None:
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


def log_curves(
    cfg: DictConfig, table: pd.DataFrame, report: dict, paths: list[Path], printed: str
) -> None:
    metrics = {
        f"curves.{law_name}.{key}": s[key]
        for law_name, s in report["laws"].items()
        for key in ("mean_relative_error", "max_relative_error", "inside_band")
        if key in s
    }
    log_analysis(cfg, table, "curves", metrics, paths, printed)
