"""`tinygpt-plan`: turn the uncertainty of a fitted law into the next round's runs.

    tinygpt-plan plan.flops=2e13 plan.target=n_opt plan.at_flops=1e14
    tinygpt-plan plan.flops=2e13 plan.target=loss plan.model=d128 plan.tokens=4e6
    tinygpt-plan plan.flops=2e13 plan.target=exponent

Reads the runs as `tinygpt-analyze` does (the same ``source`` group), fits the law (``plan.form``
or the form the forward cross-validation selects among ``fit.forms``) with its bootstrap
ensemble, and chooses runs greedily (tinygpt.scaling.plan.choose). Prints the proposal with its
FLOPs, the target's 95 % CI now and as predicted after the round, and paste-able ``tinygpt -m``
commands; writes plan.json and plan.png (the (N, D) plane, done and proposed) and logs them as an
MLflow run nested under the sweep it read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from tinygpt.app import config_dir
from tinygpt.config import register_configs
from tinygpt.errors import TinyGPTError, instantiate, one_line_errors
from tinygpt.scaling.plan.choose import Plan, choose
from tinygpt.scaling.plan.round import (
    budget_ladder,
    candidates,
    commands,
    fitted_form,
    target_of,
    units,
)
from tinygpt.scaling.plan.view import figure, report
from tinygpt.scaling.views.text import conventions_line
from tinygpt.validation import check_plan

log = logging.getLogger("tinygpt.plan")
register_configs()


def run(cfg: DictConfig, out: Path) -> Plan:
    check_plan(cfg)
    p = cfg.plan
    if p.flops is None or float(p.flops) <= 0:
        raise TinyGPTError("plan.flops is not set: add plan.flops=<FLOPs for the next round>")
    table = instantiate(cfg.source)
    if table.attrs.get("kind", "scaling") != "scaling":
        raise TinyGPTError(
            f"{table.attrs.get('source')} is a {table.attrs.get('kind')} study, not an (N, D) "
            "sweep: point source at a scaling sweep"
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
    printed = (
        f"{len(table)} runs from {table.attrs.get('source')}\n"
        f"{conventions_line(units(table))} (plan.flops and every price below too)\n"
        f"{report(plan, form, cmds)}"
    )
    if "train_tokens" in table.attrs and not p.budgets:
        printed += (
            f"\n  budgets up to {max(budgets):,.0f} tokens: within one pass over the runs' "
            f"training split ({table.attrs['train_tokens']:,.0f} tokens)"
        )
    print(printed)
    out.mkdir(parents=True, exist_ok=True)
    record = {"form": form, "formula": fit.form.formula, "conventions": units(table),
              **plan.to_dict(), "commands": cmds}  # fmt: skip
    (out / "plan.json").write_text(json.dumps(record, indent=2, default=float))
    paths = [out / "plan.json"]
    if cfg.plots:
        paths.append(figure(table, plan, out / "plan.png"))
    if cfg.log_to_mlflow and table.attrs.get("sweep_run_id"):
        from tinygpt.scaling.views.mlflow import log_analysis

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
