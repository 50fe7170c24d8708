"""The check that makes a law worth having: fit without some runs, then predict them.

``fit.holdout=largest`` holds out every run of the largest model, ``compute_above:<C>`` every run
that spent more than C FLOPs; the law is refitted on the rest (bootstrap included) and each
held-out configuration (its seeds averaged) is reported with the measured loss and its seeds'
range, the prediction, the relative error and the prediction's bootstrap 95 % band. The seeds'
range says how much of an error the measurement itself could carry: a 2 % error where two seeds
differ by 3 % is not the law's alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.laws.law import FitSettings, Law, fit_law


def check_rule(rule: str) -> None:
    """Fails, as ``held_out`` would, on a rule it cannot read; before any run is read."""
    held_out(pd.DataFrame({"N": [], "C": []}, dtype=float), rule)


def held_out(table: pd.DataFrame, rule: str) -> tuple[pd.Series, str] | None:
    """A boolean mask over ``table``'s rows and a description, or None for ``none``."""
    if rule in ("none", "", None):
        return None
    if rule == "largest":
        n_max = table["N"].max()
        return np.isclose(table["N"], n_max, rtol=1e-9), f"the largest model (N = {n_max:,.0f})"
    if rule.startswith("compute_above:"):
        text = rule.split(":", 1)[1]
        try:
            c = float(text)
        except ValueError:
            raise TinyGPTError(
                f"fit.holdout={rule}: {text!r} is not a FLOP count; e.g. compute_above:1e15"
            ) from None
        return table["C"] > c, f"runs above C = {c:.3g} FLOPs"
    raise TinyGPTError(
        f"fit.holdout={rule} is not a holdout rule: use none, largest or compute_above:<C>"
    )


@dataclass
class Holdout:
    law: Law  # fitted without the held-out runs
    description: str
    points: pd.DataFrame  # per held-out configuration: variables, loss, predicted, band, error

    @property
    def max_abs_relative_error(self) -> float:
        return float(self.points["relative_error"].abs().max())

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law.name,
            "formula": self.law.formula(),
            "held_out": self.description,
            "fitted_on": self.law.n_points,
            "points": [
                {
                    "N": float(r.N),
                    "D": float(r.D),
                    "C": float(r.C),
                    "loss": float(r.loss),
                    "seeds": int(r.seeds),
                    "seed_range": [float(r.loss_min), float(r.loss_max)],
                    "predicted": float(r.predicted),
                    "relative_error": float(r.relative_error),
                    "ci95": [float(r.ci_low), float(r.ci_high)],
                }
                for r in self.points.itertuples()
            ],
            "max_abs_relative_error": self.max_abs_relative_error,
        }


def check(
    rows: pd.DataFrame,
    mask: pd.Series,
    description: str,
    variables: list[str],
    settings: FitSettings,
) -> Holdout:
    """Fit L(variables) on ``rows[~mask]`` and predict the configurations in ``rows[mask]``."""
    train, test = rows[~mask], rows[mask]
    if test.empty:
        raise TinyGPTError(f"no run is held out by fit.holdout ({description})")
    if train.empty:
        raise TinyGPTError(f"fit.holdout holds out every run ({description})")
    # The prediction and its band are all a holdout uses: no L1 refit.
    law = fit_law(train, variables, dataclasses.replace(settings, l1=False))
    points = (
        test.groupby(["N", "D"], as_index=False)
        .agg(
            C=("C", "mean"),
            loss=("loss", "mean"),
            loss_min=("loss", "min"),
            loss_max=("loss", "max"),
            seeds=("seed", "nunique"),
        )
        .sort_values(["N", "D"])
        .reset_index(drop=True)
    )
    x = points[variables].to_numpy(dtype=float)
    points["predicted"] = law.predict(x)
    band = law.band(x)
    points["ci_low"], points["ci_high"] = band if band else (np.nan, np.nan)
    points["relative_error"] = points["predicted"] / points["loss"] - 1
    return Holdout(law, description, points)
