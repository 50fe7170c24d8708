"""Loss curves with the LR of every step, for the curve laws (``tinygpt.scaling.curves.laws``).

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.errors import TinyGPTError
from tinygpt.scaling.table.columns import read_table


@dataclass
class Curve:
    """One run's LR at every step (``lr[0] = 0``) and its loss at the evaluated ``steps``."""

    name: str
    lr: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    N: float | None = None

    def __post_init__(self) -> None:
        self.lr = np.asarray(self.lr, dtype=np.float64)
        self.steps = np.asarray(self.steps, dtype=np.int64)
        self.loss = np.asarray(self.loss, dtype=np.float64)

    @property
    def warmup(self) -> int:
        """Steps before the LR first reaches its peak: the law has no term for them."""
        return int(np.argmax(self.lr))

    def after(self, step: int) -> Curve:
        """The curve with only the points measured after ``step`` (and after the warmup)."""
        keep = self.steps > max(step, self.warmup)
        return Curve(self.name, self.lr, self.steps[keep], self.loss[keep], self.N)


COLUMNS = ("step", "lr", "loss")


def _read_one(p: Path) -> pd.DataFrame:
    raw = read_table(p, "step,lr,loss")
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
    for name, rows in table.groupby("run"):  # by name: the same order from every source
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


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def schedule_lr(params: dict[str, str], total_steps: int) -> np.ndarray:
    """A run's LR at every update, rebuilt from the schedule config it logged: index t is the
    t-th update's LR (the trainer's LambdaLR gives update t the factor of step t − 1)."""
    from hydra.utils import instantiate

    prefix = "optimizer.schedule."
    node = {k.removeprefix(prefix): _value(v) for k, v in params.items() if k.startswith(prefix)}
    if "_target_" not in node:
        raise TinyGPTError(
            "a run logged no optimizer.schedule params: its LR cannot be rebuilt for the curves "
            "view (runs from before schedules were a config group)"
        )
    schedule = instantiate(node)
    peak = float(params["optimizer.lr"])
    lr = np.zeros(total_steps + 1)
    lr[1:] = [peak * schedule.factor(k, total_steps) for k in range(total_steps)]
    return lr


def _short_names(names: list[str]) -> list[str]:
    """Sweep job names (Hydra's override_dirname, ``k=v,k=v``) cut to the values that vary."""
    parsed = [dict(part.partition("=")[::2] for part in n.split(",")) for n in names]
    keys = [k for k in parsed[0] if len({p.get(k) for p in parsed}) > 1]
    if len(names) < 2 or not keys or any(set(p) != set(parsed[0]) for p in parsed):
        return names
    return [",".join(p[k] for k in keys) for p in parsed]


def from_mlflow_runs(store, runs: list, n_metric: str) -> pd.DataFrame:
    """The long table of ``runs``' validation curves, their LR rebuilt from their config.

    A sweep job is named by the values of the overrides that differ between the jobs
    (``curve=wsd_sqrt,experiment=schedules`` -> ``wsd_sqrt``). A cooldown branch (a WSD job's
    smaller ``training.budgets``) is a curve of one point, its final loss, named
    ``<job>@<budget tokens>``: predicting it from its trunk's curve is the check that a law can
    stand in for the branch.
    """
    from tinygpt.tracking.mlflow_run import with_retry

    jobs = [r for r in runs if r.data.tags.get("kind") != "branch"]
    names = dict(
        zip(
            (r.info.run_id for r in jobs),
            _short_names([r.info.run_name or r.info.run_id for r in jobs]),
            strict=True,
        )
    )
    frames, ids = [], {}
    for r in runs:
        p, m = r.data.params, r.data.metrics
        total = int(m["total_steps"])
        lr = schedule_lr(p, total)
        loss = np.full(total + 1, np.nan)
        if r.data.tags.get("kind") == "branch":
            parent = r.data.tags.get("mlflow.parentRunId", "")
            name = f"{names.get(parent, parent)}@{r.data.tags.get('budget_tokens')}"
            loss[total] = m["final_val_loss"]
        else:
            name = names[r.info.run_id]
            history = with_retry(
                lambda r=r: store.client.get_metric_history(r.info.run_id, "val_loss")
            )
            for h in history:
                if 0 <= h.step <= total:
                    loss[h.step] = h.value
        ids[name] = r.info.run_id
        frames.append(
            pd.DataFrame(
                {
                    "run": name,
                    "step": np.arange(total + 1),
                    "lr": lr,
                    "loss": loss,
                    "N": m.get(n_metric, np.nan),
                }
            )
        )
    if len(ids) < len(runs):
        raise TinyGPTError(
            "two runs share a name: the curves view names runs by their sweep overrides; "
            "give each a tracking.run_name"
        )
    table = pd.concat(frames, ignore_index=True)
    table.attrs.update(kind="curves", run_ids=ids)
    return table
