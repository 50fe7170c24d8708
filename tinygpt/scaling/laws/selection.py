"""Choosing a law form without peeking: forward cross-validation over model sizes.

For k = the 3rd … the largest *fitted* size, every form is fitted on the sizes below k and
predicts size k at every budget (seeds averaged), with its band for a mean of that many seeds.
The form with the lowest mean |relative error| over those folds is selected. The held-out
largest model takes no part in the choice: its error under the selected form is the headline,
every form's beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.interval import MEASURED
from tinygpt.scaling.laws.forms import FORMS, FormFit, fit_form
from tinygpt.scaling.laws.law import resampling


def _points(fit: FormFit, table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each configuration of ``table`` (seeds averaged): measured, predicted, band, error."""
    g = table.groupby(["N", "D"], as_index=False).agg(loss=("loss", "mean"), seeds=("loss", "size"))
    pred = fit.predict(g["N"].to_numpy(), g["D"].to_numpy())
    band = fit.band(g["N"].to_numpy(), g["D"].to_numpy(), g["seeds"].to_numpy())
    out = []
    for i, r in enumerate(g.itertuples()):
        row = {
            "N": float(r.N),
            "D": float(r.D),
            "loss": float(r.loss),
            "seeds": int(r.seeds),
            "predicted": float(pred[i]),
            "relative_error": float((pred[i] - r.loss) / r.loss),
        }
        if band is not None:
            row["band"] = [float(band[0][i]), float(band[1][i])]
            row["inside_band"] = bool(band[0][i] <= r.loss <= band[1][i])
        out.append(row)
    return out


def _summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    errs = np.abs([p["relative_error"] for p in points])
    out = {
        "mean_abs_relative_error": float(errs.mean()),
        "max_abs_relative_error": float(errs.max()),
    }
    if all("inside_band" in p for p in points):
        out["inside_band"] = f"{sum(p['inside_band'] for p in points)} of {len(points)}"
    return out


@dataclass
class FormReport:
    """One form: its CV folds, its fit on every fitted size, its check on the held-out model."""

    name: str
    folds: list[dict[str, Any]] = field(default_factory=list)
    cv_mean_abs_relative_error: float = float("nan")
    fit: FormFit | None = None
    holdout: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, c_max: float) -> dict[str, Any]:
        from tinygpt.scaling.laws.forms import to_dict

        out: dict[str, Any] = {
            "cv": {"folds": self.folds, "mean_abs_relative_error": self.cv_mean_abs_relative_error},
        }
        if self.fit is not None:
            out["fit"] = to_dict(self.fit, c_max)
        if self.holdout:
            out["holdout"] = {"points": self.holdout, **_summary(self.holdout)}
        return out


def select_form(
    table: pd.DataFrame,
    forms: list[str],
    held: pd.Series | None,
    bootstrap: int = 200,
    seed: int = 0,
    folds: int = 3,
    unit: str = "run",
) -> tuple[str, dict[str, FormReport]]:
    """Forward CV over the sizes of ``table`` not in ``held``: each of the last ``folds`` fitted
    sizes (from the 3rd on) predicted from the sizes below it; bootstraps draw ``unit``s
    (``tinygpt.scaling.laws.law.jobs``). (selected form, every report)"""

    def fitted_on(name: str, rows: pd.DataFrame) -> FormFit:
        draws = resampling(rows, unit)
        return fit_form(name, rows["N"], rows["D"], rows["loss"], bootstrap, seed, **draws)

    unknown = [f for f in forms if f not in FORMS]
    if unknown:
        raise TinyGPTError(
            f"fit.forms: unknown form {unknown[0]!r}: choose from {', '.join(FORMS)}"
        )
    fitted = table[~held] if held is not None else table
    sizes = np.sort(fitted["N"].unique())
    if len(sizes) < 3:
        raise TinyGPTError(
            f"fit.forms needs at least 3 fitted model sizes for its forward cross-validation; "
            f"the table has {len(sizes)}: add sizes or set fit.forms=[]"
        )
    reports = {}
    for name in forms:
        rep = FormReport(name)
        for k in range(max(2, len(sizes) - folds), len(sizes)):
            train = fitted[fitted["N"] < sizes[k]]
            test = fitted[np.isclose(fitted["N"], sizes[k])]
            try:
                fit = fitted_on(name, train)
            except TinyGPTError as e:  # too few runs for this form's parameters
                rep.folds.append({"predict_N": float(sizes[k]), "skipped": str(e)})
                continue
            points = _points(fit, test)
            rep.folds.append({"predict_N": float(sizes[k]), "fitted_sizes": k,
                              **_summary(points), "points": points})  # fmt: skip
        scored = [f["mean_abs_relative_error"] for f in rep.folds if "skipped" not in f]
        rep.cv_mean_abs_relative_error = float(np.mean(scored)) if scored else float("inf")
        rep.fit = fitted_on(name, fitted)
        if held is not None and held.any():
            rep.holdout = _points(rep.fit, table[held])
        reports[name] = rep
    selected = min(reports, key=lambda n: reports[n].cv_mean_abs_relative_error)
    return selected, reports


def text(selected: str, reports: dict[str, FormReport], c_max: float) -> str:
    """The printed table: per form its CV error, its held-out error, its allocation exponent."""
    lines = [
        "  law forms, chosen by forward cross-validation over the fitted sizes "
        "(the held-out model takes no part):",
        f"    {'form':14} {'CV mean':>8} {'held-out mean':>14} {'max':>7} {'in band':>8}"
        f"   a at largest C [95% CI]",
    ]
    for name, rep in reports.items():
        h = _summary(rep.holdout) if rep.holdout else {}
        d = rep.to_dict(c_max).get("fit", {})
        a_ci = d.get("a_ci95")
        a_value = d.get("a_at_largest_compute", float("nan"))
        a = (f"{a_value:.3f}" if np.isfinite(a_value) else "none (N_opt unbounded)") + (
            f" [{a_ci[0]:.3f}, {a_ci[1]:.3f}]" if a_ci else ""
        )
        mark = " *" if name == selected else "  "
        lines.append(
            f"  {mark}{name:14} {rep.cv_mean_abs_relative_error:8.2%} "
            f"{h.get('mean_abs_relative_error', float('nan')):14.2%} "
            f"{h.get('max_abs_relative_error', float('nan')):7.2%} {h.get('inside_band', '-'):>8}"
            f"   {a}"
        )
    lines.append(f"    ({MEASURED})")
    fit = reports[selected].fit
    lines.append(f"    selected: {selected}: L = {fit.form.formula}" if fit else "")
    if fit is not None:
        lines.append("      " + ", ".join(f"{k} = {v:.4g}" for k, v in fit.params.items()))
    return "\n".join(lines)
