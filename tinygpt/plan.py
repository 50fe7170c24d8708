"""`tinygpt-plan`: turn the uncertainty of a fitted law into the next round's runs.

    tinygpt-plan plan.flops=2e13 plan.target=n_opt plan.at_flops=1e14
    tinygpt-plan plan.flops=2e13 plan.target=loss plan.model=d128 plan.tokens=4e6
    tinygpt-plan plan.flops=2e13 plan.target=exponent

Reads the runs as `tinygpt-analyze` does (the same ``source`` group), fits the law (``plan.form``
or the form the forward cross-validation selects among ``fit.forms``) with its bootstrap
ensemble, and chooses runs greedily (tinygpt.scaling.plan). Prints the proposal with its FLOPs,
the target's 95 % CI now and as predicted after the round, and paste-able ``tinygpt -m``
commands; writes plan.json and plan.png (the (N, D) plane, done and proposed) and logs them as an
MLflow run nested under the sweep it read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tinygpt.app import config_dir
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError, instantiate, one_line_errors
from tinygpt.scaling.plan import TARGETS, Plan, Size, Target, choose

log = logging.getLogger("tinygpt.plan")
PRESETS = ("d8", "d12", "d16", "d24", "d32", "d48", "d64", "d96", "d128")
register_configs()


def preset_size(name: str, experiment: str | None = None) -> Size:
    """A model preset's N (non-embedding, as the laws count it) and FLOPs per token, as it trains
    under ``experiment`` (the main job's preset gives every width 2 layers of 2 heads)."""
    from hydra import compose

    from tinygpt.train.compute import meta_model

    try:
        extra = [f"experiment={experiment}"] if experiment else []
        node = compose("config", overrides=[f"model={name}", *extra]).model
    except Exception:  # Hydra's MissingConfigException and friends: one line, not a traceback
        raise TinyGPTError(
            f"plan.models: no model preset {name!r} (the options of conf/model, e.g. d64)"
        ) from None
    model = meta_model(node)
    return Size(name, float(model.num_non_embedding_parameters()), float(model.flops_per_token()))


def candidates(
    models: list[str] | None, table: pd.DataFrame, experiment: str | None = None
) -> list[Size]:
    """The sizes a plan may propose: ``plan.models``, or by default the presets from the
    sweep's smallest size up (a law is not trusted below the sizes it was fitted on)."""
    if models:
        return [preset_size(m, experiment) for m in models]
    sizes = [preset_size(m, experiment) for m in PRESETS]
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
        n = preset_size(str(p.model), p.experiment).N  # a preset's name
    return Target("loss", N=n, D=float(p.tokens))


def fitted_form(cfg: DictConfig, table: pd.DataFrame):
    """The form to plan on, fitted to every run with ``plan.bootstrap`` refits."""
    from tinygpt.scaling import selection
    from tinygpt.scaling.forms import FORMS, fit_form
    from tinygpt.scaling.laws import jobs

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
        groups=jobs(table, cfg.fit.bootstrap_unit),
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


def report(plan: Plan, form: str, cmds: list[str]) -> str:
    ci_b, ci_a = plan.ci_before, plan.ci_after
    fmt = ".3f" if plan.target.kind == "exponent" else ",.4g"
    lines = [
        f"plan for {plan.target.describe()} under {form} ({plan.members} bootstrap laws"
        + (f"; {plan.dropped_members} without an optimum left out" if plan.dropped_members else "")
        + ")",
        f"  now:   {plan.centre:{fmt}}  95% CI [{ci_b[0]:{fmt}}, {ci_b[1]:{fmt}}]",
        f"  after: 95% CI [{ci_a[0]:{fmt}}, {ci_a[1]:{fmt}}] predicted ({plan.narrowing:.2f}x "
        f"narrower), for {plan.flops:.3g} of {plan.budget_flops:.3g} FLOPs",
        "  runs:",
    ]
    for job in plan.jobs:
        budgets = ", ".join(f"{b:,.0f}" for b in job.budgets)
        lines.append(
            f"    {job.size.name:5} (N = {job.size.N:,.0f}) seed {job.seed}: tokens {budgets}"
            f"  ({job.flops(plan.decay_fraction):.3g} FLOPs)"
        )
    lines.append("  commands:")
    lines += [f"    {c}" for c in cmds]
    return "\n".join(lines)


def figure(table: pd.DataFrame, plan: Plan, path: Path) -> Path:
    """The (N, D) plane: runs done (grey, area by seeds), proposed (red, seeds written beside),
    the target's point, and lines of equal compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygpt.scaling.plots import LABELS, readable_log_axis, save

    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    done = table.groupby(["N", "D"]).size().reset_index(name="seeds")
    ax.scatter(done["D"], done["N"], s=16 * done["seeds"], c="0.45", label="trained (area: seeds)")
    proposed = pd.DataFrame(
        [(j.size.N, d) for j in plan.jobs for d in j.budgets], columns=["N", "D"]
    )
    counts = proposed.groupby(["N", "D"]).size().reset_index(name="seeds")
    if len(counts):
        ax.scatter(counts["D"], counts["N"], s=16 * counts["seeds"], facecolors="none",
                   edgecolors="C3", linewidths=1.6, label="proposed (x seeds)")  # fmt: skip
        for _, r in counts[counts["seeds"] > 1].iterrows():
            ax.annotate(f"x{int(r['seeds'])}", (r["D"], r["N"]), xytext=(6, 4),
                        textcoords="offset points", fontsize=7, color="C3")  # fmt: skip
    Ns = [*done["N"], *counts["N"]] + ([plan.target.N] if plan.target.N else [])
    Ds = [*done["D"], *counts["D"]] + ([plan.target.D] if plan.target.D else [])
    d_lo, d_hi, n_lo, n_hi = min(Ds) / 1.6, max(Ds) * 1.6, min(Ns) / 1.6, max(Ns) * 1.6
    ds = np.geomspace(d_lo, d_hi, 50)
    for c in np.geomspace(6 * n_lo * d_lo, 6 * n_hi * d_hi, 8)[1:-1]:
        ax.plot(ds, c / (6 * ds), color="0.85", lw=0.8, zorder=0)
        at = d_hi / 1.25  # labelled at the right edge, where the line is inside the axes
        if n_lo < c / (6 * at) < n_hi:
            ax.annotate(f"C={c:.0e}", (at, c / (6 * at)), fontsize=7, color="0.5", ha="right")
    if plan.target.kind == "loss":
        ax.scatter([plan.target.D], [plan.target.N], marker="*", s=180, c="C0", label="target")
    ax.set(xscale="log", yscale="log", xlim=(d_lo, d_hi), ylim=(n_lo, n_hi),
           xlabel=LABELS["D"], ylabel=LABELS["N"])  # fmt: skip
    readable_log_axis(ax.xaxis, d_lo, d_hi, "D")
    readable_log_axis(ax.yaxis, n_lo, n_hi, "N")
    ax.set_title(f"next round for {plan.target.describe()}\n95% CI {plan.narrowing:.2f}x "
                 "narrower (predicted)", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return save(fig, path)


def run(cfg: DictConfig, out: Path) -> Plan:
    p = cfg.plan
    if p.flops is None or float(p.flops) <= 0:
        raise TinyGPTError("plan.flops is not set: add plan.flops=<FLOPs for the next round>")
    table = instantiate(cfg.source)
    if table.attrs.get("kind", "scaling") != "scaling":
        raise TinyGPTError(
            f"{table.attrs.get('source')} is a {table.attrs.get('kind')} study, not an (N, D) "
            "sweep: point source at a scaling sweep"
        )
    if table.attrs.get("parameters", "non_embedding") != "non_embedding":
        raise TinyGPTError(
            "tinygpt-plan prices candidates by non-embedding N: drop source.parameters"
        )
    if len(table) < 8 or table["N"].nunique() < 3:
        raise TinyGPTError(
            f"{len(table)} runs of {table['N'].nunique()} sizes are too few to fit a law to plan "
            "on: train at least 3 sizes and 8 runs first (tinygpt -m experiment=scaling)"
        )
    target = target_of(cfg, table)
    sizes = candidates(p.models, table, p.experiment)
    budgets = [float(b) for b in p.budgets] if p.budgets else budget_ladder(table)
    cheapest = min(s.flops_per_token for s in sizes) * min(budgets)
    if float(p.flops) < cheapest:
        raise TinyGPTError(
            f"plan.flops={float(p.flops):.3g} buys no run: the cheapest candidate "
            f"({min(sizes, key=lambda s: s.flops_per_token).name} at {min(budgets):,.0f} tokens) "
            f"costs {cheapest:.3g}: raise plan.flops or add smaller plan.budgets"
        )
    form, fit = fitted_form(cfg, table)
    seeds_start = int(table["seed"].max()) + 1 if "seed" in table else 1
    plan = choose(fit, target, sizes, budgets, float(p.flops), seeds_start, p.max_seeds,
                  p.decay_fraction)  # fmt: skip
    cmds = commands(plan, p.experiment)
    printed = f"{len(table)} runs from {table.attrs.get('source')}\n{report(plan, form, cmds)}"
    if "train_tokens" in table.attrs and not p.budgets:
        printed += (
            f"\n  budgets up to {max(budgets):,.0f} tokens: within one pass over the runs' "
            f"training split ({table.attrs['train_tokens']:,.0f} tokens)"
        )
    print(printed)
    out.mkdir(parents=True, exist_ok=True)
    record = {"form": form, "formula": fit.form.formula, **plan.to_dict(), "commands": cmds}
    (out / "plan.json").write_text(json.dumps(record, indent=2, default=float))
    paths = [out / "plan.json"]
    if cfg.plots:
        paths.append(figure(table, plan, out / "plan.png"))
    if cfg.log_to_mlflow and table.attrs.get("sweep_run_id"):
        from tinygpt.analyze import log_analysis

        metrics = {"plan.flops": plan.flops, "plan.narrowing": plan.narrowing}
        for when, (lo, hi) in (("before", plan.ci_before), ("after", plan.ci_after)):
            metrics |= {f"plan.ci_{when}_low": lo, f"plan.ci_{when}_high": hi}
        log_analysis(cfg, table, "plan", metrics, paths, printed)
    print(f"{', '.join(x.name for x in paths)} in {out}")
    return plan


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="plan")
def _main(cfg: DictConfig) -> None:
    with one_line_errors("tinygpt-plan", log):
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
