"""Loss curves with the LR of every step, for the curve laws (``tinygpt.scaling.curves``).

Both sources return one long table — a row per (run, step): ``run``, ``step``, ``lr``, ``loss``
(empty where only the LR is known), ``N`` — labelled ``attrs["kind"] = "curves"``:

- ``from_csvs``: a directory of CSVs, one per run (its stem is the run's name), with columns
  ``step``, ``lr``, ``loss``. The LR is linear between the rows given and rises from 0 at step 0
  to the first row (a linear warmup); a row with an empty loss gives the LR alone, to place a
  schedule's corners exactly (the end of the warmup, a sudden drop).
- ``from_mlflow_runs``: each run's ``val_loss`` history, with its LR at every step REBUILT from
  the run's own schedule config (the params it logged: ``optimizer.lr``, ``optimizer.schedule.*``)
  and its ``total_steps`` — exact, where the logged ``lr`` metric holds only every
  ``training.log_interval``-th step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.curves import Curve

COLUMNS = ("step", "lr", "loss")


def _read_one(p: Path) -> pd.DataFrame:
    raw = pd.read_csv(p)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise TinyGPTError(
            f"{p.name} lacks the column(s) {', '.join(missing)}; it has {list(raw.columns)}: a "
            "curve CSV needs step, lr and loss (loss may be empty on rows that only give the LR)"
        )
    out = {}
    for c in COLUMNS:
        values = pd.to_numeric(raw[c], errors="coerce")
        bad = values.isna() & raw[c].notna()
        if c != "loss":
            bad |= values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise TinyGPTError(
                f"{p.name}: column {c!r} holds {raw[c].iloc[row]!r} on line {row + 2}, not a "
                f"number{'' if c == 'loss' else ' (only loss may be empty)'}: fix the file"
            )
        out[c] = values.to_numpy(dtype=np.float64)
    step = out["step"]
    if (step != np.round(step)).any() or (step < 0).any():
        raise TinyGPTError(f"{p.name}: column 'step' must hold whole steps ≥ 0")
    if (np.diff(step) <= 0).any():
        row = int((np.diff(step) <= 0).argmax()) + 1
        raise TinyGPTError(
            f"{p.name}: steps must increase down the file, but line {row + 2} has step "
            f"{int(step[row])} after {int(step[row - 1])}: sort the rows and drop repeats"
        )
    if (out["lr"] < 0).any():
        raise TinyGPTError(f"{p.name}: column 'lr' holds a negative learning rate")
    if np.isnan(out["loss"]).all():
        raise TinyGPTError(f"{p.name}: no row has a loss")
    if (out["loss"] <= 0).any():
        raise TinyGPTError(f"{p.name}: column 'loss' must be positive")
    return pd.DataFrame({"run": p.stem, **out, "N": np.nan})


def from_csvs(path: str) -> pd.DataFrame:
    """Every ``*.csv`` in the directory ``path``: a curve per file, named by its stem."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise TinyGPTError(
            f"source.path={path}: not a directory: give the directory holding one CSV per run"
        )
    files = sorted(d.glob("*.csv"))
    if not files:
        raise TinyGPTError(f"source.path={path}: no *.csv files in it (one per run)")
    table = pd.concat([_read_one(f) for f in files], ignore_index=True)
    table["step"] = table["step"].astype(np.int64)
    table.attrs.update(kind="curves", source=str(d), source_name=d.name)
    return table


def per_step_lr(step: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """The LR of every update 0 … last step: linear between the given rows, 0 at step 0."""
    xp, fp = np.asarray(step, dtype=np.float64), np.asarray(lr, dtype=np.float64)
    if xp[0] > 0:
        xp, fp = np.r_[0.0, xp], np.r_[0.0, fp]
    out = np.interp(np.arange(int(xp[-1]) + 1), xp, fp)
    out[0] = 0.0  # the LR "before training": step t's loss follows t updates
    return out


def to_curves(table: pd.DataFrame) -> list[Curve]:
    """The long table as one ``Curve`` per run, in the table's order."""
    curves = []
    for name, rows in table.groupby("run", sort=False):
        rows = rows.sort_values("step")
        has = rows["loss"].notna().to_numpy()
        n = rows["N"].dropna()
        curves.append(
            Curve(
                str(name),
                per_step_lr(rows["step"].to_numpy(), rows["lr"].to_numpy()),
                rows["step"].to_numpy()[has],
                rows["loss"].to_numpy()[has],
                float(n.iloc[0]) if len(n) else None,
            )
        )
    return curves
