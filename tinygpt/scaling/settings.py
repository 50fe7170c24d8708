"""The settings of tinygpt-analyze and tinygpt-plan: sources, fits, forms, curves, plans.

Typed dataclasses without Hydra (``tinygpt.config`` registers them in its ConfigStore), so the
numerical rooms read their settings from beside them and the schema module stays above them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

from tinygpt.accounting import FlopCount, ParameterCount


@dataclass
class MlflowSourceConfig:
    _target_: str = "tinygpt.scaling.table.runs.from_mlflow"
    # The tracking URI (null: MLFLOW_TRACKING_URI, else ./mlflow.db).
    uri: str | None = None
    # The MLflow experiment the runs are in.
    experiment: str = "tinygpt"
    # A sweep's parent run id or name, or a list of them (the rounds of one study, e.g. a
    # tinygpt-plan round beside the sweep it planned from); null (and no filter) = the latest.
    sweep: Any = None
    # An MLflow filter string over the experiment's runs, instead of a sweep.
    filter: str | None = None
    # What N counts: total (Chinchilla's: every parameter, the tied embedding once) or
    # non_embedding (Kaplan's). Every run records both (tinygpt/accounting.py); the defaults
    # are the reconciliation papers' recommendation (docs/guides/laws.md, "What N and C count").
    parameters: ParameterCount = ParameterCount.total
    # What C counts: exact (every matmul, the readout included, and causal attention), kaplan
    # (6·N_non-embedding + attention) or chinchilla (6·N_total); every run records all three.
    flops: FlopCount = FlopCount.exact
    # auto: the kind of study from what varies (schedules -> loss curves, >= 3 LRs -> LR
    # transfer, else scaling); curves: every run as a loss curve (one size, one schedule too).
    view: str = "auto"


CSV_COLUMNS = {"N": "N", "D": "D", "C": "C", "loss": "loss", "seed": None, "group": None}


@dataclass
class CsvSourceConfig:
    _target_: str = "tinygpt.scaling.table.runs.from_csv"
    # The CSV file.
    path: str = MISSING
    # Our names -> the CSV's column names; two of N, D, C suffice (the third from C = 6ND).
    columns: dict[str, Any] = field(default_factory=lambda: dict(CSV_COLUMNS))
    # Drop the k highest-loss rows (the Chinchilla replication drops 5).
    drop_highest: int = 0
    # What the CSV's N counts, printed on every law: total, non_embedding or unstated.
    parameters: str = "unstated"
    # What its C counts: exact, kaplan, chinchilla or unstated (a C derived as 6ND says so).
    flops: str = "unstated"


@dataclass
class CurvesSourceConfig:
    """A directory of loss curves, one CSV per run (columns step, lr, loss; the stem names it)."""

    _target_: str = "tinygpt.scaling.table.curves.from_csvs"
    # The directory of CSVs.
    path: str = MISSING


class Metric(str, Enum):
    val_loss = "val_loss"  # nats per token: the tokenizer's own units
    val_bpb = "val_bpb"  # bits per byte: comparable across tokenizers


class BootstrapUnit(str, Enum):
    run = "run"  # every run drawn on its own
    job = "job"  # a seed's runs of one configuration drawn together: its budgets share a trunk
    # New losses drawn from the fitted law plus the study's noise model (tinygpt.scaling.fit.
    # noise: σ from the seeds, its job-shared share from their correlation), refitted.
    noise = "noise"


@dataclass
class FitSettings:
    """How ``tinygpt.scaling.laws.law`` fits: the Huber δ, bootstrap resamples and their seed, the
    L1 point estimate beside the Huber one, and the holdout check."""

    # The Huber loss's delta on log residuals (Hoffmann et al.'s 1e-3).
    delta: float = 1e-3
    # Bootstrap refits resampling runs, for the CIs.
    bootstrap: int = 1000
    # Seed of the bootstrap resampling.
    bootstrap_seed: int = 0
    # What a resample draws: single runs, as if every run were independent; whole jobs (the
    # runs of one seed and configuration at every budget, whose deviations from the law move
    # together: 59 % of the seed variance is a job's own on the main job); or noise: new losses
    # from the fitted law plus the seeds' noise model (a parametric bootstrap). On 100 studies of
    # the main job's shape from its own law and noise, a's 95 % interval held the truth in 83 %
    # (run), 87 % (job) and 91 % (noise), the held-out bands 91-93 % (benchmarks/coverage.py;
    # RESULTS.md "Coverage, measured"); job stays the default as a second draw of 100 studies
    # put job at 94 % and noise at 86 %. Where jobs cannot be told apart (one seed, or no seed
    # column) runs are drawn, and the report says so.
    bootstrap_unit: BootstrapUnit = BootstrapUnit.job
    # Also fit the least-absolute-deviation estimate beside the Huber one.
    l1: bool = True
    # Runs left out of a second fit and predicted by it: none, largest (model) or
    # compute_above:<FLOPs>.
    holdout: str = "largest"


@dataclass
class CurveFitConfig:
    """Whole-curve laws (``tinygpt.scaling.curves.laws``): which runs are fitted, the rest
    predicted."""

    # Run names (a CSV's stem; a sweep job's override value, e.g. constant for curve=constant)
    # or MLflow run ids to fit; every other run is predicted. Required for the curves view.
    fit_on: list[str] = field(default_factory=list)
    # mpl: the multi-power law (Luo et al. 2025); tissue: Tissue et al. (2024).
    laws: list[str] = field(default_factory=lambda: ["mpl", "tissue"])
    # adamw: the MultiPowerLaw repository's recipe (grid start, then <= 200 AdamW steps);
    # lbfgs: the Huber objective's optimum from the same start.
    optimizer: str = "adamw"
    # Moving-block bootstrap refits for the bands (0: no bands) and the block's length in points.
    bootstrap: int = 10
    block: int = 10
    # Points at or before this step are neither fitted nor scored (those in the warmup never are).
    from_step: int = 0


@dataclass
class FitConfig(FitSettings):
    # What the laws are fitted to: the final validation loss, or its bits per byte.
    metric: Metric = Metric.val_loss
    # Whole-curve laws (the curves view; below).
    curves: CurveFitConfig = field(default_factory=CurveFitConfig)
    # Forms of L(N, D) fitted side by side on an (N, D) grid and chosen by forward
    # cross-validation over the fitted sizes (tinygpt.scaling.laws.selection); [] skips them.
    forms: list[str] = field(
        default_factory=lambda: ["chinchilla", "kaplan_q", "farseer_lite", "translog"]
    )
    # Bootstrap refits per form and fold (their bands and CIs).
    forms_bootstrap: int = 200
    # Folds of the forward CV: predicting each of the last this-many fitted sizes from the sizes
    # below it (a grid of many sizes, like Chinchilla's 240 runs, would otherwise cost a fit per
    # size and form).
    forms_folds: int = 3


@dataclass
class AnalyzeConfig:
    # Where the runs come from: an option of conf/source (mlflow, csv, chinchilla, curves).
    source: Any = MISSING
    # How the laws are fitted (below).
    fit: FitConfig = field(default_factory=FitConfig)
    # Write the figures (off: tables and fit.json only).
    plots: bool = True
    # Record the analysis as an MLflow run nested under the sweep it analysed.
    log_to_mlflow: bool = True


@dataclass
class PlanSettings:
    """``tinygpt-plan``: the next round's runs for a compute budget and a target."""

    # FLOPs the next round may spend (required), priced as WSD jobs train: a trunk to the largest
    # budget plus a decay of decay_fraction of each smaller one.
    flops: float | None = None
    # n_opt: N_opt at at_flops (past the sweep); loss: the loss of ``model`` at ``tokens``;
    # exponent: a of N_opt ∝ C^a at at_flops (default: the sweep's largest compute).
    target: str = "n_opt"
    # The compute that n_opt and exponent refer to.
    at_flops: float | None = None
    model: str | None = None  # a model preset (d128) or a parameter count N
    # target=loss: the token budget D of that model.
    tokens: float | None = None
    # The law whose ensemble is planned on: a form of fit.forms, or null for the one the forward
    # cross-validation selects.
    form: str | None = None
    # Candidate models (presets of conf/model; null: d8-d128 from the sweep's smallest size up)
    # and token budgets (null: a doubling ladder from the sweep's smallest budget to 4x its
    # largest).
    models: list[str] | None = None
    # Candidate token budgets (null: a doubling ladder from the sweep's smallest budget to 4x its
    # largest).
    budgets: list[float] | None = None
    # New seeds per model at most (seeds after the largest one the store holds).
    max_seeds: int = 3
    # The WSD decay's share of a budget, for pricing branches.
    decay_fraction: float = 0.1
    # Bootstrap refits of the law: the ensemble whose spread the plan shrinks.
    bootstrap: int = 200
    # The experiment preset the proposed commands start from.
    experiment: str = "scaling"


@dataclass
class PlanConfig:
    # Where the runs come from: the same source group as tinygpt-analyze.
    source: Any = MISSING
    # The analysis's fit settings: fit.forms for the form selection, fit.bootstrap_seed.
    fit: FitConfig = field(default_factory=FitConfig)
    # What to plan for and with what (below).
    plan: PlanSettings = field(default_factory=PlanSettings)
    # Write plan.png.
    plots: bool = True
    # Record the plan as an MLflow run nested under the sweep it read.
    log_to_mlflow: bool = True
