"""The next round's candidates: model presets as the experiment trains them, the budget ladder
(within one pass over the training split), the target asked for, the form planned on, and the
paste-able commands that train the chosen runs."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from tinygpt.accounting import FLOP_WORDS, PARAMETER_WORDS, Counts
from tinygpt.errors import TinyGPTError
from tinygpt.scaling.plan.choose import TARGETS, Plan, Size, Target

PRESETS = ("d8", "d12", "d16", "d24", "d32", "d48", "d64", "d96", "d128")


def preset_size(
    name: str, experiment: str | None = None, parameters: str = "total", flops: str = "exact"
) -> Size:
    """A model preset's N and FLOPs per token under the analysis's conventions (``parameters``,
    ``flops``: tinygpt/accounting.py), as it trains under ``experiment`` (the main job's preset
    gives every width 2 layers of 2 heads and a 1,024-token BPE, whose readout is priced)."""
    from hydra import compose

    from tinygpt.train.compute import meta_model, vocab_size

    try:
        extra = [f"experiment={experiment}"] if experiment else []
        cfg = compose("config", overrides=[f"model={name}", *extra])
    except Exception:  # Hydra's MissingConfigException and friends: one line, not a traceback
        raise TinyGPTError(
            f"plan.models: no model preset {name!r} (the options of conf/model, e.g. d64)"
        ) from None
    counts = Counts.of(meta_model(cfg.model, vocab_size(cfg)))
    return Size(name, float(counts.parameters(parameters)), float(counts.flops_per_token(flops)))


def units(table: pd.DataFrame) -> dict[str, str]:
    """The table's conventions, for pricing candidates in the units the law was fitted in."""
    parameters, flops = table.attrs.get("parameters"), table.attrs.get("flops")
    if parameters not in PARAMETER_WORDS or flops not in FLOP_WORDS:
        raise TinyGPTError(
            f"tinygpt-plan prices candidates in the units of the law: this table's N counts "
            f"{parameters or 'unstated'} and C {flops or 'unstated'}; plan from an MLflow sweep, "
            "or give a CSV's source.parameters=total|non_embedding and "
            "source.flops=exact|kaplan|chinchilla"
        )
    return {"parameters": parameters, "flops": flops}


def candidates(
    models: list[str] | None, table: pd.DataFrame, experiment: str | None = None
) -> list[Size]:
    """The sizes a plan may propose: ``plan.models``, or by default the presets from the
    sweep's smallest size up (a law is not trusted below the sizes it was fitted on)."""
    u = units(table)
    if models:
        return [preset_size(m, experiment, **u) for m in models]
    sizes = [preset_size(m, experiment, **u) for m in PRESETS]
    return [s for s in sizes if table["N"].min() * 0.99 <= s.N]


def budget_ladder(table: pd.DataFrame) -> list[float]:
    """Doublings from the sweep's smallest budget to 4x its largest, and no further than one
    pass over the runs' training split where the store knows it (``train_split_tokens``): past
    it a run repeats data, and its loss is off the law the plan is made with."""
    d_min, d_max = float(table["D"].min()), float(table["D"].max())
    start = float(f"{d_min:.2g}")  # the budget asked for, not the whole steps it became
    top = min(4 * d_max * 1.0001, table.attrs.get("train_tokens", float("inf")))
    return [start * 2**k for k in range(40) if start * 2**k <= top] or [start]


def target_of(cfg: DictConfig, table: pd.DataFrame) -> Target:
    p = cfg.plan
    c_max = float(table["C"].max())
    if p.target not in TARGETS:
        raise TinyGPTError(f"plan.target={p.target!r}: choose one of {', '.join(TARGETS)}")
    if p.target == "n_opt":
        if p.at_flops is None:
            raise TinyGPTError("plan.target=n_opt needs plan.at_flops=<the compute to plan for>")
        if float(p.at_flops) <= c_max:
            raise TinyGPTError(
                f"plan.at_flops={float(p.at_flops):.3g} is inside the swept range (its largest "
                f"run is {c_max:.3g} FLOPs): N_opt there is read off the runs; plan for a "
                "compute past it"
            )
        return Target("n_opt", at_flops=float(p.at_flops))
    if p.target == "exponent":
        return Target("exponent", at_flops=float(p.at_flops or c_max))
    if p.model is None or p.tokens is None:
        raise TinyGPTError("plan.target=loss needs plan.model=<preset or N> and plan.tokens=<D>")
    try:
        n = float(p.model)  # a parameter count
    except ValueError:
        n = preset_size(str(p.model), p.experiment, **units(table)).N  # a preset's name
    return Target("loss", N=n, D=float(p.tokens))


def fitted_form(cfg: DictConfig, table: pd.DataFrame):
    """The form to plan on, fitted to every run with ``plan.bootstrap`` refits."""
    from tinygpt.scaling.laws import selection
    from tinygpt.scaling.laws.forms import FORMS, fit_form
    from tinygpt.scaling.laws.law import resampling

    name = cfg.plan.form
    if name is None:
        if len(table["N"].unique()) < 4:
            name = "chinchilla"  # too few sizes for the forward CV to choose between forms
        else:
            name, _ = selection.select_form(
                table, list(cfg.fit.forms) or ["chinchilla"], None, 50, cfg.fit.bootstrap_seed,
                cfg.fit.forms_folds, cfg.fit.bootstrap_unit,
            )  # fmt: skip
    elif name not in FORMS:
        raise TinyGPTError(f"plan.form={name!r}: choose one of {', '.join(FORMS)}")
    fit = fit_form(
        name, table["N"], table["D"], table["loss"], cfg.plan.bootstrap, cfg.fit.bootstrap_seed,
        **resampling(table, cfg.fit.bootstrap_unit),
    )  # fmt: skip
    return name, fit


def commands(plan: Plan, experiment: str) -> list[str]:
    """Paste-able sweeps: one per (seed, budgets) shared by several models."""
    groups: dict[tuple[int, tuple[float, ...]], list[str]] = {}
    for job in plan.jobs:
        groups.setdefault((job.seed, tuple(job.budgets)), []).append(job.size.name)
    out = []
    for (seed, budgets), models in sorted(groups.items()):
        ladder = ",".join(str(int(b)) for b in budgets)
        out.append(
            f"tinygpt -m experiment={experiment} model={','.join(models)} seed={seed} "
            f"training.budgets=[{ladder}]"
        )
    return out
