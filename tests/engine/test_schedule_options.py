"""LR warm-up and poly schedule, gradient-accumulation groups, and the one-line errors of the new options."""

import math

import pytest
import torch

from kanseg.config import TrainConfig, load_config
from kanseg.engine.optim import accumulation_group, build_scheduler, lr_factor
from kanseg.errors import KansegError


def _lrs(name, epochs, warmup=0, lr=1e-2, min_lr=1e-4):
    """The lr of each epoch (as the trainer records it: before the epoch's schedule step)."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(opt, epochs, name, min_lr, warmup)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_poly_is_nnunet():
    assert _lrs("poly", 5) == pytest.approx([1e-2 * (1 - e / 5) ** 0.9 for e in range(5)])


def test_linear_warmup_then_schedule():
    # warm-up 3 epochs: 1/4, 2/4, 3/4 of the lr, then the schedule over the 5 epochs left
    warm = [1e-2 * f for f in (0.25, 0.5, 0.75)]
    assert _lrs("none", 8, warmup=3) == pytest.approx([*warm, *[1e-2] * 5])
    assert _lrs("poly", 8, warmup=3) == pytest.approx([*warm, *[1e-2 * (1 - t / 5) ** 0.9 for t in range(5)]])
    cosine = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(5)]
    assert _lrs("cosine", 8, warmup=3) == pytest.approx([*warm, *cosine])


def test_cosine_without_warmup_is_still_torch_cosine_annealing():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    assert isinstance(build_scheduler(opt, 10, "cosine", 1e-4), torch.optim.lr_scheduler.CosineAnnealingLR)
    assert lr_factor(4, 10, "cosine", 0, 0.0) == pytest.approx((1 + math.cos(math.pi * 0.4)) / 2)


def test_schedule_follows_raised_epochs_after_load_state_dict():
    """The factors come from ``epochs``, not from the stored state: a resumed run with more epochs stretches."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    short = build_scheduler(opt, 4, "poly", 0.0, 1)
    for _ in range(2):
        opt.step()
        short.step()
    state = {"optimizer": opt.state_dict(), "scheduler": short.state_dict()}
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = build_scheduler(opt2, 10, "poly", 0.0, 1)
    opt2.load_state_dict(state["optimizer"])
    longer.load_state_dict(state["scheduler"])
    opt2.step()
    longer.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx((1 - 2 / 9) ** 0.9)


def test_unknown_schedule_lists_valid():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="valid: cosine, poly, none"):
        build_scheduler(opt, 3, "step")


@pytest.mark.parametrize("batches,accumulate,expected", [
    (6, 1, [(1, True)] * 6),
    (6, 4, [(4, False)] * 3 + [(4, True), (2, False), (2, True)]),  # last group partial
    (7, 3, [(3, False), (3, False), (3, True)] * 2 + [(1, True)]),
    (2, 5, [(2, False), (2, True)]),
])
def test_accumulation_groups(batches, accumulate, expected):
    groups = [accumulation_group(i, batches, accumulate) for i in range(batches)]
    assert groups == expected
    assert sum(steps for _, steps in groups) == math.ceil(batches / accumulate)


def test_new_options_default_off():
    cfg = TrainConfig()
    assert (cfg.optim.warmup_epochs, cfg.optim.accumulate, cfg.optim.ema_decay, cfg.early_stop.patience,
            cfg.tensorboard, cfg.loss.deep_supervision, cfg.loss.class_weights, cfg.loss.pos_weight) == (
        0, 1, None, None, False, "mean", None, None)


@pytest.mark.parametrize("key,value,message", [
    ("early_stop.patience", -1, ("invalid value for 'early_stop.patience' in command-line flags: Input should be "
                                 "greater than or equal to 1")),
    ("early_stop.min_delta", -0.1, "invalid value for 'early_stop.min_delta'"),
    ("optim.scheduler", "step", ("invalid value for 'optim.scheduler' in command-line flags: Input should be "
                                 "'cosine', 'poly' or 'none'")),
    ("optim.warmup_epochs", -2, "invalid value for 'optim.warmup_epochs'"),
    ("optim.accumulate", 0, "invalid value for 'optim.accumulate'"),
    ("optim.ema_decay", 1.0, "invalid value for 'optim.ema_decay'.*less than 1"),
    ("loss.name", "focal", "invalid value for 'loss.name'.*'dice-focal' or 'tversky'"),
    ("loss.class_weights", [1, -1], "invalid value for 'loss.class_weights'.*non-negative, one per class"),
    ("loss.pos_weight", 0, "invalid value for 'loss.pos_weight'"),
    ("loss.deep_supervision", "linear", "invalid value for 'loss.deep_supervision'.*'mean' or 'decay'"),
    ("early_stop.rounds", 3, "invalid config key 'early_stop.rounds'; valid keys: .*early_stop.patience"),
])
def test_bad_values_are_one_line_errors(key, value, message):
    with pytest.raises(KansegError, match=message) as err:
        load_config(None, {key: value})
    assert "\n" not in str(err.value)
