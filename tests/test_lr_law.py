"""The LR law LR*(N) = c · N^(-e) (tinygpt/scaling/lr_law.py): a known law given back from noisy
trials, and a width no trial saw trained at the law's value."""

import numpy as np
import pytest

from tinygpt.accounting import Counts
from tinygpt.scaling.lr_law import fit
from tinygpt.train.compute import meta_model
from tinygpt.train.job import validate


def trials(c=2000.0, e=1.1, k=0.1, noise=0.01, seed=0):
    """8 TPE-like trials per size, log-uniform in [1e-3, 3e-2], around the true optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2.5e4, 4.2e4, 6.2e4, 1.1e5, 1.7e5):
        best = c * n ** (-e)
        for lr in np.exp(rng.uniform(np.log(1e-3), np.log(3e-2), 8)):
            loss = 5.0 - 0.3 * np.log10(n) + k * np.log(lr / best) ** 2
            rows.append((n, lr, loss + rng.normal(0, noise)))
    return tuple(np.array(x) for x in zip(*rows, strict=True))


def test_a_known_law_is_given_back_from_single_seed_trials():
    errors = []
    for seed in range(10):
        law = fit(*trials(seed=seed))
        errors.append(abs(law(1e5) / (2000.0 * 1e5**-1.1) - 1))
        assert law.exponent == pytest.approx(1.1, abs=0.15), seed
    # The law's LR at a size it was fitted on is within 20 % of the truth in 9 studies of 10,
    # where a lone trial's winner is at best the nearest of 8 random draws.
    assert sorted(errors)[8] < 0.2, errors


def test_a_width_no_trial_saw_trains_at_the_laws_value(make_cfg):
    cfg = make_cfg(
        "experiment=scaling", "model=d96", "training.budgets=null", "training.budgets_by_seed={}"
    )
    validate(cfg)
    n = Counts.of(meta_model(cfg.model, 1024)).parameters("total")
    assert cfg.optimizer.lr == pytest.approx(2126.0 * n**-1.173)
    assert cfg.optimizer.lr != 4e-3  # not the fixed LR such a width once fell back to
