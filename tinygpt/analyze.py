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

import json
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
from tinygpt.scaling.laws.law import FitSettings
from tinygpt.scaling.views.card import card
from tinygpt.scaling.views.forms import forms_report
from tinygpt.scaling.views.mlflow import log_curves, log_scaling
from tinygpt.scaling.views.text import Report, analysis_lines
from tinygpt.validation import check_analyze

log = logging.getLogger("tinygpt.analyze")
register_configs()


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
    from tinygpt.scaling.study import analyze
    from tinygpt.scaling.views.files import write

    table = with_metric(table, cfg.fit.metric.value)
    settings = {k: v for k, v in cfg.fit.items() if k in FitSettings.__dataclass_fields__}
    # The grid's far starts overflow by design; the fitter keeps only finite objectives.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        analysis = analyze(table, FitSettings(**settings))
    paths = write(analysis, out, plots=cfg.plots)
    say = Report()
    say(f"{len(analysis.table)} runs from {table.attrs.get('source')}")
    for text in analysis_lines(analysis):
        say(text)
    if cfg.fit.forms and "L(N, D)" in analysis.laws:
        say(forms_report(analysis.table, cfg, out))
        if (out / "forms.png").exists():
            paths.append(out / "forms.png")
    fitted = json.loads((out / "fit.json").read_text()).get("forms")
    study_card = card(analysis, FitSettings(**settings), fitted)
    (out / "card.md").write_text(study_card)
    paths.append(out / "card.md")
    if cfg.log_to_mlflow and "sweep_run_id" in table.attrs:
        # The run's description: the report, then the card.
        log_scaling(cfg, analysis, paths, f"{say.text}\n\n{study_card}")
    print(f"plots, points.csv and fit.json in {out}")


def curves_view(table: pd.DataFrame, cfg: DictConfig, out: Path) -> None:
    """Loss curves under different LR schedules: whole-curve laws fitted on some, the rest
    predicted (tinygpt.scaling.curves.laws)."""
    from tinygpt.scaling.curves import study as curve_report
    from tinygpt.scaling.settings import CurveFitConfig
    from tinygpt.scaling.table.curves import to_curves

    settings = CurveFitConfig(**OmegaConf.to_container(cfg.fit.curves, resolve=True))
    curves = to_curves(table)
    report, fitted = curve_report.analyze_curves(curves, settings, table.attrs.get("run_ids"))
    paths = curve_report.write(report, fitted, curves, out, plots=cfg.plots)
    say = Report()
    say(f"{len(curves)} loss curves from {table.attrs.get('source')}")
    say(curve_report.text(report))
    if cfg.log_to_mlflow and table.attrs.get("sweep_run_id"):
        log_curves(cfg, table, report, paths, say.text)
    print(f"{', '.join(p.name for p in paths)} in {out}")


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
