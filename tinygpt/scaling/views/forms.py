"""The law forms' view: every form of fit.forms chosen by forward CV, added to fit.json, drawn
and printed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.laws import selection
from tinygpt.scaling.laws.holdout import held_out


def forms_report(table: pd.DataFrame, cfg: DictConfig, out: Path) -> str:
    """Every form of fit.forms, chosen by forward CV; added to fit.json under "forms"."""
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
        from tinygpt.scaling.views.figures import forms_figure

        forms_figure(table, held, reports, chosen, out / "forms.png")
    return selection.text(chosen, reports, c_max)
