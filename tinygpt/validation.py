"""Checks on a composed config before any work: ranges of numeric settings and group slips.

Hydra's schemas catch unknown keys and wrong types at compose time; what they cannot say is that
``model.dropout=2`` or ``training.tokens=-5`` make no sense, or that ``data.tokenizer=gpt2`` (a
value) was meant as ``data/tokenizer=gpt2`` (a group option). Each problem is one line naming
the setting and the fix.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from tinygpt.errors import TinyGPTError, instantiate

# (setting, test, what it must be). None values are skipped: null means "not set".
RANGES: list[tuple[str, Callable[[float], bool], str]] = [
    ("model.d_model", lambda v: v >= 1, "a positive integer"),
    ("model.n_layers", lambda v: v >= 1, "a positive integer"),
    ("model.n_heads", lambda v: v >= 1, "a positive integer"),
    ("model.context", lambda v: v >= 1, "a positive integer"),
    ("model.base_width", lambda v: v >= 1, "a positive integer (the width where μP equals SP)"),
    ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optimizer.lr", lambda v: v > 0, "positive"),
    ("optimizer.weight_decay", lambda v: v >= 0, "zero or positive"),
    ("optimizer.grad_clip", lambda v: v > 0, "positive (or null for no clipping)"),
    ("optimizer.grad_accum", lambda v: v >= 1, "at least 1"),
    ("optimizer.schedule.warmup_steps", lambda v: v >= 0, "zero or positive"),
    ("training.batch_size", lambda v: v >= 1, "at least 1"),
    ("training.tokens", lambda v: v >= 1, "a positive token count"),
    ("training.max_steps", lambda v: v >= 1, "at least 1"),
    ("training.eval_interval", lambda v: v >= 1, "at least 1"),
    ("training.eval_batches", lambda v: v >= 1, "at least 1"),
    ("training.log_interval", lambda v: v >= 1, "at least 1"),
    ("training.save_interval", lambda v: v >= 1, "at least 1"),
    ("training.stop_at", lambda v: v >= 1, "at least 1"),
    ("data.fraction", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("data.max_samples", lambda v: v >= 1, "at least 1 (or null for all)"),
    ("seed", lambda v: v >= 0, "zero or positive"),
    (
        "hardware.devices",
        lambda v: v >= 1,
        "at least 1: the processes on each machine (1, or e.g. 2 for two ranks)",
    ),
    ("hardware.nodes", lambda v: v >= 1, "at least 1 (the machines the job spans)"),
]

# Nodes filled by a config group: a plain string there is a group option typed with a dot.
GROUP_NODES = [
    "data.corpus",
    "data.tokenizer",
    "optimizer.impl",
    "optimizer.schedule",
    "seal.policy",
    "job",
]


# tinygpt-analyze's settings, checked before any run is read.
ANALYZE_RANGES: list[tuple[str, Callable[[float], bool], str]] = [
    ("fit.delta", lambda v: v > 0, "positive (Huber's delta on log residuals)"),
    ("fit.bootstrap", lambda v: v >= 0, "zero or positive (refits; 0 for no intervals)"),
    ("fit.forms_bootstrap", lambda v: v >= 0, "zero or positive (refits; 0 for no bands)"),
    ("fit.forms_folds", lambda v: v >= 1, "at least 1 (sizes predicted by the forward CV)"),
    ("fit.curves.bootstrap", lambda v: v >= 0, "zero or positive (refits; 0 for no bands)"),
    ("fit.curves.block", lambda v: v >= 1, "at least 1 (points per resampled block)"),
]


def check_set(cfg: DictConfig) -> None:
    """Every mandatory value (``???`` in a schema) is given: one line naming the first missing."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise TinyGPTError(f"{missing[0]} is not set: add {missing[0]}=<value> to the command")


def check_ranges(cfg: DictConfig, ranges: list[tuple[str, Callable[[float], bool], str]]) -> None:
    for key, ok, must in ranges:
        value = OmegaConf.select(cfg, key)
        if value is not None and not ok(value):
            raise TinyGPTError(f"{key}={value} must be {must}")


def check_analyze(cfg: DictConfig) -> None:
    from tinygpt.scaling.laws.holdout import check_rule
    from tinygpt.scaling.names import CURVE_LAWS, CURVE_OPTIMIZERS, FORMS

    check_set(cfg)
    check_ranges(cfg, ANALYZE_RANGES)
    check_rule(cfg.fit.holdout)
    for key, value, allowed in [
        *(("fit.forms", f, FORMS) for f in cfg.fit.forms),
        *(("fit.curves.laws", law, CURVE_LAWS) for law in cfg.fit.curves.laws),
        ("fit.curves.optimizer", cfg.fit.curves.optimizer, CURVE_OPTIMIZERS),
    ]:
        if value not in allowed:
            raise TinyGPTError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def check_plan(cfg: DictConfig) -> None:
    """tinygpt-plan reads the runs as tinygpt-analyze does: the same checks first."""
    check_analyze(cfg)


def check(cfg: DictConfig) -> None:
    check_set(cfg)
    for key in GROUP_NODES:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, str):
            raise TinyGPTError(
                f"{key}={value} sets a whole config group to a string: choose the option with "
                f"{key.replace('.', '/')}={value} (a slash selects a group option, a dot a field)"
            )
    check_ranges(cfg, RANGES)
    # A schedule checks its own fields when built; it is cheap (no torch), so build it now,
    # before anything is recorded.
    instantiate(cfg.optimizer.schedule)
