"""The noise model a parametric bootstrap draws from: σ and its job-shared share recovered from
runs with known noise."""

import numpy as np
import pytest

from tinygpt.scaling.fit.noise import (
    between_neighbours,
    between_seeds,
    job_share,
    of_runs,
    parametric_draws,
)


def jobs_with_shared_noise(share: float, sigma: float = 0.01, seed: int = 0):
    """200 jobs (sizes × seeds) of 4 budgets each: log losses 0 plus noise whose share ``share``
    of the variance is one draw per job."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(np.arange(50), np.arange(4), np.arange(4), indexing="ij")
    size, seeds, budget = (a.ravel() for a in grid)
    job = size * 10 + seeds
    z = np.sqrt(share) * rng.standard_normal(200)[job // 10 * 4 + job % 10] + np.sqrt(
        1 - share
    ) * rng.standard_normal(len(job))
    return size * 10 + budget, job, sigma * z


@pytest.mark.parametrize("share", [0.0, 0.6, 0.9])
def test_the_job_share_and_sigma_come_back(share):
    point, job, y = jobs_with_shared_noise(share)
    assert job_share(point, job, y) == pytest.approx(share, abs=0.08)
    assert between_seeds(point, y) == pytest.approx(0.01, rel=0.1)


def test_parametric_draws_carry_the_model():
    point, job, y = jobs_with_shared_noise(0.6, seed=1)
    draws, model, share = parametric_draws(np.zeros(len(y)), y, point, job, 3, 400, seed=2)
    assert model.source == "seeds" and share == pytest.approx(0.6, abs=0.08)
    assert draws.shape == (400, len(y)) and draws.std() == pytest.approx(model.sigma, rel=0.05)
    # Two runs of one job move together by the share; runs of different jobs do not.
    same = np.flatnonzero(job == job[0])[:2]
    other = np.flatnonzero(job != job[0])[0]
    assert np.corrcoef(draws[:, same[0]], draws[:, same[1]])[0, 1] == pytest.approx(share, abs=0.12)
    assert abs(np.corrcoef(draws[:, same[0]], draws[:, other])[0, 1]) < 0.15
    # Without seeds, σ is the fit's residual scatter with its parameters counted off.
    single = np.arange(len(y))
    _, model, share = parametric_draws(np.zeros(len(y)), y, single, None, 3, 10, seed=0)
    assert model.source == "residuals" and share == 0.0
    assert model.sigma == pytest.approx(np.sqrt((y**2).sum() / (len(y) - 3)))


def test_a_smooth_valley_gives_its_noise_back_from_neighbours():
    """One run per point: the cubic through each point's neighbours cancels the valley's
    curvature, which the chord (reach=1) mistakes for noise."""
    rng = np.random.default_rng(3)
    x = np.linspace(0, 4, 12)
    profiles = [(x, 0.3 * (x - 2 - 0.1 * k) ** 2 + rng.normal(0, 0.004, len(x))) for k in range(8)]
    assert between_neighbours(profiles) == pytest.approx(0.004, rel=0.25)
    assert between_neighbours(profiles, reach=1) > 1.5 * between_neighbours(profiles)
    noise = of_runs(np.tile(np.exp(x), 8), np.repeat(np.arange(8), 12),
                    np.exp(np.concatenate([p[1] for p in profiles])))  # fmt: skip
    assert noise.source == "neighbours" and noise.sigma == pytest.approx(0.004, rel=0.25)
