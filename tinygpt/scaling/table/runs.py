"""Where runs come from: an MLflow store (a sweep, a filter, or the latest sweep) or any CSV.

Every source returns one table, a row per run: N (parameters), D (tokens seen), C (training
FLOPs), loss (the FINAL validation loss), seed, and every setting that varies; its attrs say what
N and C count (``parameters``, ``flops``: tinygpt/accounting.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tinygpt.accounting import (
    FLOP_METRICS,
    FLOP_PER_TOKEN_METRICS,
    FLOP_WORDS,
    PARAMETER_METRICS,
    PARAMETER_WORDS,
    UNSTATED,
    value,
)
from tinygpt.errors import TinyGPTError
from tinygpt.scaling.settings import CSV_COLUMNS
from tinygpt.scaling.table.columns import (
    ADAPTATION_METRICS,
    SCALING_METRICS,
    read_table,
)
from tinygpt.tracking.mlflow_run import Store

log = logging.getLogger("tinygpt.analyze")

# Params that differ between runs without being an experimental setting.
# Columns that say how a run was made, not where it lies: a seed's own WSD budgets
# (training.budgets_by_seed) make the same (N, D) point from a longer or a shorter trunk.
_NOT_SETTINGS = {
    "seed",
    "data.subset_seed",
    "data.cache_dir",
    "tracking.run_name",
    "training.budgets",
    "training.budgets_by_seed",
}


def from_mlflow(
    uri: str | None = None,
    experiment: str = "tinygpt",
    sweep: str | Sequence[str] | None = None,
    filter: str | None = None,
    parameters: str = "total",
    flops: str = "exact",
    view: str = "auto",
) -> pd.DataFrame:
    """Runs of a sweep (parent run id or name; default: the latest sweep) or an MLflow filter.

    ``parameters``: N with the embeddings (``total``, Chinchilla's) or without
    (``non_embedding``, Kaplan's); ``flops``: C as ``exact``, ``kaplan`` or ``chinchilla``
    counts it (tinygpt/accounting.py). ``view``: ``auto`` reads the kind of study from what
    varies (``kind_of``); ``curves`` reads the runs as loss curves whatever varies.
    """
    if view not in VIEWS:
        raise TinyGPTError(f"source.view={view!r}: choose one of {', '.join(VIEWS)}")
    count, flop = value(parameters), value(flops)
    metrics = {**SCALING_METRICS, "N": PARAMETER_METRICS[count], "C": FLOP_METRICS[flop]}
    store = Store.connect(uri, experiment, setting="source.uri")
    parent_id = None
    if filter:
        runs = store.find_runs(filter)
        where = name = f"filter {filter!r}"
    else:
        parents = store.find_runs("tags.sweep = 'true'")
        wanted = [sweep] if isinstance(sweep, str) else [str(s) for s in sweep or []]
        known = {x for p in parents for x in (p.info.run_id, p.info.run_name)}
        missing = [w for w in wanted if w not in known]
        if missing:  # one missing sweep of several is an error too
            parents, sweep = [], missing[0]
        elif wanted:
            parents = [p for p in parents if {p.info.run_id, p.info.run_name} & set(wanted)]
        if not parents:
            raise TinyGPTError(
                f"no sweep {'named ' + repr(sweep) + ' ' if sweep else ''}in experiment "
                f"'{experiment}' at {store.uri}: run one (tinygpt -m ...) or pass "
                'source.filter="<MLflow filter>"'
            )
        parents = parents if wanted else parents[:1]
        parent_id = parents[0].info.run_id  # the latest: an analysis is logged under it
        runs = [
            r
            for p in parents
            for r in store.find_runs(f"tags.mlflow.parentRunId = '{p.info.run_id}'")
        ]
        # A job with training.budgets holds one child run per smaller budget (its cooldown branch).
        jobs = {r.info.run_id for r in runs}
        runs += [
            r
            for r in store.find_runs("tags.kind = 'branch'")
            if r.data.tags.get("mlflow.parentRunId") in jobs
        ]
        where = " + ".join(f"sweep {p.info.run_name} ({p.info.run_id})" for p in parents)
        name = " + ".join(p.info.run_name for p in parents)
    runs = [
        r
        for r in runs
        if r.data.tags.get("sweep") != "true" and r.data.tags.get("kind") != "analysis"
    ]
    if not runs:
        raise TinyGPTError(f"no runs match {where} in experiment '{experiment}'")
    # Pre-training runs end with final_val_loss; adaptation (seal) runs with improvement.
    adaptation = any(r.data.params.get("seal.enabled") == "True" for r in runs)
    result_key = "improvement" if adaptation else metrics["loss"]
    done = [r for r in runs if r.info.status == "FINISHED" and result_key in r.data.metrics]
    older = [r for r in done if not adaptation and metrics["C"] not in r.data.metrics]
    if older:
        raise TinyGPTError(
            f"{len(older)} of the {len(done)} runs of {where} predate source.flops={flop} (they "
            "recorded only Kaplan's count): analyse them with source.flops=kaplan"
        )
    if len(done) < len(runs):
        log.warning(
            "%d of %d runs have no results (not FINISHED): left out",
            len(runs) - len(done),
            len(runs),
        )
    if not done:
        raise TinyGPTError(f"none of the {len(runs)} runs of {where} finished with results")
    rows = []
    for r in done:
        m = r.data.metrics
        if adaptation:
            measured = {k: m[k] for k in ADAPTATION_METRICS if k in m}
        else:
            # Every job logs N, D, C and loss; bpb is NaN for runs from before it was logged
            # (fit.metric=val_bpb says so), C_budget exists for IsoFLOP jobs only.
            measured = {
                k: m[name] if k in ("N", "D", "C", "loss") else m.get(name, float("nan"))
                for k, name in metrics.items()
                if k != "C_budget" or name in m
            }
        rows.append(
            {
                "run_id": r.info.run_id,
                **measured,
                "seed": int(r.data.params.get("seed", 0)),
                **{f"param:{k}": v for k, v in r.data.params.items()},
            }
        )
    frame = pd.DataFrame(rows)
    table = _keep_varying_settings(frame)
    # The settings every run shared (data, optimizer, schedule): the study card reports them.
    fixed = {
        c.removeprefix("param:"): frame[c].iloc[0]
        for c in frame.columns
        if c.startswith(("param:data.", "param:optimizer.")) and frame[c].nunique(dropna=False) == 1
    }
    if not adaptation and (view == "curves" or (view == "auto" and kind_of(table) == "curves")):
        from tinygpt.scaling.table.curves import from_mlflow_runs

        curves = from_mlflow_runs(store, done, metrics["N"])
        curves.attrs.update(parameters=count, flops=flop)
        curves.attrs.update(sweep_run_id=parent_id, source=where, source_name=name)
        return curves
    if not adaptation:
        table.attrs["curves"] = _curves(
            store,
            [r for r in done if r.data.tags.get("kind") != "branch"],
            metrics["N"],
            FLOP_PER_TOKEN_METRICS[flop],
        )
        table.attrs.update(parameters=count, flops=flop, fixed=fixed)
    splits = [
        r.data.metrics["train_split_tokens"] for r in done if "train_split_tokens" in r.data.metrics
    ]
    if splits:  # one pass over the smallest training split the runs saw (older runs lack it)
        table.attrs["train_tokens"] = float(min(splits))
    table.attrs["sweep_run_id"] = parent_id
    table.attrs["source"] = where
    table.attrs["source_name"] = name  # the sweep's run name: "sweep 2026-12-01/10-00-00"
    table.attrs["kind"] = "adaptation" if adaptation else kind_of(table)
    return table


VIEWS = ("auto", "curves")


def kind_of(table: pd.DataFrame) -> str:
    """Which analysis a pre-training table is for: runs that differ in their LR schedule are
    read as loss curves (the whole-curve laws), an LR sweep (≥ 3 learning rates) as an
    LR-transfer study, anything else as a scaling study."""
    if any(c.startswith("optimizer.schedule.") for c in table.columns):
        return "curves"
    lr = "optimizer.lr"
    if lr not in table:
        return "scaling"
    # Three LRs for one size make an LR sweep; one tuned LR per size (lr_by_width) does not.
    lrs = table.groupby("N")[lr].nunique().max() if "N" in table else table[lr].nunique()
    return "lr_transfer" if lrs >= 3 else "scaling"


def _curves(store: Store, runs: list, n_metric: str, fpt_metric: str) -> list[dict]:
    """Every evaluation of every run as records (run_id, N, D, C, loss): the training curves
    that Chinchilla's approach 1 takes the envelope of (records, not a DataFrame: pandas compares
    ``attrs`` when it combines frames)."""
    from tinygpt.tracking.mlflow_run import with_retry

    rows = []
    for r in runs:
        p, m = r.data.params, r.data.metrics
        per_step = (
            int(p["training.batch_size"]) * int(p["model.context"]) * int(p["optimizer.grad_accum"])
        )
        history = with_retry(lambda r=r: store.client.get_metric_history(r.info.run_id, "val_loss"))
        for h in history:
            tokens = h.step * per_step
            rows.append(
                {
                    "run_id": r.info.run_id,
                    "N": m[n_metric],
                    "D": tokens,
                    "C": m[fpt_metric] * tokens,
                    "loss": h.value,
                }
            )
    return rows


def _keep_varying_settings(df: pd.DataFrame) -> pd.DataFrame:
    params = [c for c in df.columns if c.startswith("param:")]
    keep = {}
    for c in params:
        name = c.removeprefix("param:")
        if name in _NOT_SETTINGS or df[c].nunique(dropna=False) < 2:
            continue
        node, _, key = name.rpartition(".")
        if key in ("_target_", "_partial_") and f"param:{node}.name" in df:
            continue  # the option's name says which it was (seal.policy.name=self)
        keep[name] = _numeric(df[c])
    return pd.concat([df.drop(columns=params), pd.DataFrame(keep, index=df.index)], axis=1)


def _numeric(col: pd.Series) -> pd.Series:
    try:
        return pd.to_numeric(col)
    except (ValueError, TypeError):
        return col


def _numbers(raw: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = values.isna() & raw[column].notna()
    if bad.any():
        row = int(bad.idxmax())
        raise TinyGPTError(
            f"{path.name}: column {column!r} holds {raw[column][row]!r} on line {row + 2}, not a "
            "number: fix the file or map another column with source.columns.<name>=<column>"
        )
    return values.astype(float)


def from_csv(
    path: str,
    columns: dict[str, str | None] | None = None,
    drop_highest: int = 0,
    parameters: str = UNSTATED,
    flops: str = UNSTATED,
) -> pd.DataFrame:
    """Any CSV: ``columns`` maps N, D, C, loss, seed, group to its column names.

    Two of N, D, C are enough: the third follows from C = 6ND (an IsoFLOP table of C, D and
    loss gives N = C / 6D); ``drop_highest`` drops the k
    highest-loss rows (the Chinchilla replication drops 5). ``parameters`` and ``flops`` say
    what the table's N and C count (tinygpt/accounting.py), for the laws to say it.
    """
    for setting, given, known in (
        ("parameters", parameters, PARAMETER_WORDS),
        ("flops", flops, FLOP_WORDS),
    ):
        if value(given) not in (*known, UNSTATED):
            raise TinyGPTError(
                f"source.{setting}={value(given)!r}: choose one of {', '.join(known)} or {UNSTATED}"
            )
    p = Path(path).expanduser()
    if not p.is_file():
        raise TinyGPTError(f"source.path={path}: no such CSV file")
    raw = read_table(p, "e.g. N,D,loss")
    cols = {**CSV_COLUMNS, **(columns or {})}
    has = {k: bool(v) and v in raw.columns for k, v in cols.items()}
    missing = [f"{k}→{cols[k]!r}" for k in ("loss", "seed", "group") if cols[k] and not has[k]]
    if sum(has[k] for k in ("N", "D", "C")) < 2:
        missing.append(f"two of N→{cols['N']!r}, D→{cols['D']!r}, C→{cols['C']!r}")
    if missing:
        raise TinyGPTError(
            f"{p.name} lacks the mapped column(s) {', '.join(missing)}; it has "
            f"{list(raw.columns)}: set source.columns.<name>=<column>"
        )
    out = pd.DataFrame({"loss": _numbers(raw, cols["loss"], p)})
    for k in ("N", "D", "C"):
        if has[k]:
            out[k] = _numbers(raw, cols[k], p)
    # The third of N, D, C from the other two by C = 6ND.
    if "N" not in out:
        out["N"] = out["C"] / (6 * out["D"])
    if "D" not in out:
        out["D"] = out["C"] / (6 * out["N"])
    if "C" not in out:
        out["C"] = 6 * out["N"] * out["D"]
    out["seed"] = raw[cols["seed"]] if has["seed"] else 0
    if has["group"]:
        out["group"] = raw[cols["group"]]
    if drop_highest:
        # The replication keeps row i iff loss[i] < sorted(loss)[-k].
        out = out[out["loss"] < np.sort(out["loss"].to_numpy())[-drop_highest]]
    out["run_id"] = [f"row{i}" for i in out.index]
    out = out.reset_index(drop=True)
    out.attrs["source"] = str(p)
    out.attrs["parameters"] = value(parameters)
    # A C derived as 6ND is labelled so unless the user says which count to price it in.
    out.attrs["flops"] = "6ND" if not has["C"] and value(flops) == UNSTATED else value(flops)
    return out
