"""LR schedules: the factor at named steps, for every option of conf/optimizer/schedule."""

import itertools
import math

import pytest
import torch
from hydra.utils import instantiate

from tinygpt.errors import TinyGPTError
from tinygpt.train.optim import build_scheduler
from tinygpt.train.schedules import WSD, Constant, Cosine, Linear


def test_cosine_warms_up_then_decays_to_the_floor():
    s = Cosine(warmup_steps=10, min_lr_ratio=0.1)
    f = [s.factor(i, 100) for i in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert all(a >= b for a, b in itertools.pairwise(f[10:101]))
    assert f[100] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)


def test_linear_goes_straight_to_zero():
    s = Linear(warmup_steps=10)
    assert s.factor(10, 110) == 1.0
    assert s.factor(60, 110) == pytest.approx(0.5)
    assert s.factor(110, 110) == 0.0


def test_constant_holds_the_peak_after_warmup():
    s = Constant(warmup_steps=4)
    assert [s.factor(i, 50) for i in (0, 3, 4, 49)] == [0.25, 1.0, 1.0, 1.0]
    assert s.decay_start(50) == 50


@pytest.mark.parametrize(
    ("shape", "at_half"), [("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - math.sqrt(0.5))]
)
def test_wsd_holds_then_decays_over_its_fraction(shape, at_half):
    s = WSD(warmup_steps=10, decay_fraction=0.2, shape=shape)
    assert s.decay_steps(100) == 20 and s.decay_start(100) == 80
    assert s.factor(5, 100) == pytest.approx(0.6)
    assert s.factor(10, 100) == s.factor(79, 100) == 1.0
    assert s.factor(80, 100) == pytest.approx(1.0)  # the decay's first step: still the peak
    assert s.factor(90, 100) == pytest.approx(at_half)
    assert s.factor(99, 100) < s.factor(90, 100)
    assert s.factor(100, 100) == pytest.approx(0.0)
    f = [s.factor(i, 100) for i in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(f))


def test_wsd_shorter_run_is_the_same_trunk_with_an_earlier_decay():
    s = WSD(warmup_steps=5, decay_fraction=0.25)
    short, long = [s.factor(i, 40) for i in range(40)], [s.factor(i, 200) for i in range(40)]
    assert short[:30] == long[:30]  # the trunk both share
    assert short[30] == 1.0 and short[39] < 0.1 and long[39] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"shape": "sqrt"}, "shape"),
        ({"decay_fraction": 1.5}, "decay_fraction"),
        ({"min_lr_ratio": -0.1}, "min_lr_ratio"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_bad_schedule_settings_name_the_setting(kwargs, setting):
    with pytest.raises(TinyGPTError, match=f"optimizer.schedule.{setting}"):
        WSD(**kwargs)


@pytest.mark.parametrize("option", ["cosine", "wsd", "linear", "constant"])
def test_every_schedule_option_composes_instantiates_and_steps_the_lr(make_cfg, option):
    cfg = make_cfg(f"optimizer/schedule={option}", "optimizer.schedule.warmup_steps=2")
    schedule = instantiate(cfg.optimizer.schedule)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = build_scheduler(opt, schedule, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5 * schedule.factor(i, 10) for i in range(10)])


def test_a_scheduler_started_mid_run_continues_the_same_lr():
    s = WSD(warmup_steps=2, decay_fraction=0.5)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    trunk = build_scheduler(opt, s, 100)
    for _ in range(7):
        opt.step()
        trunk.step()
    branch = build_scheduler(opt, s, 14, last_step=6)  # leaves the trunk at step 7 = 14 - 7
    assert opt.param_groups[0]["lr"] == pytest.approx(s.factor(7, 14)) == 1.0
    branch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(s.factor(8, 14))


def test_a_typo_in_a_schedule_fails_at_compose_time(make_cfg):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        make_cfg("optimizer/schedule=wsd", "optimizer.schedule.decay_fractoin=0.3")
