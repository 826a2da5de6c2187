"""Learning-rate schedules: lr sequences and training trajectories against torch.optim.lr_scheduler."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_optim import small_model, trajectory_matches_torch

import backprop as bp
from backprop.optim import lr_scheduler as ls

STEPS = 40
BASE_LR = 0.1


def _optimizers(lr: float = BASE_LR) -> tuple[bp.optim.Optimizer, Any]:
    """A backprop optimizer and a torch optimizer, both at ``lr``."""
    torch = pytest.importorskip("torch")
    ours = bp.optim.SGD(small_model("cpu").parameters(), lr=lr)
    return ours, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _torch_lr(sched: Any) -> float:
    return sched.get_last_lr()[0]


# name -> (ours(opt), torch's(torch_opt, lr_scheduler module))
SCHEDULES: dict[str, tuple[Callable[[Any], ls.LRScheduler], Callable[[Any, Any], Any]]] = {
    "StepLR": (lambda o: ls.StepLR(o, step_size=7), lambda o, T: T.StepLR(o, step_size=7)),
    "StepLR-every-step": (lambda o: ls.StepLR(o, 1, gamma=0.8), lambda o, T: T.StepLR(o, 1, gamma=0.8)),
    "StepLR-growing": (lambda o: ls.StepLR(o, 10, gamma=1.5), lambda o, T: T.StepLR(o, 10, gamma=1.5)),
    "ExponentialLR": (lambda o: ls.ExponentialLR(o, 0.9), lambda o, T: T.ExponentialLR(o, 0.9)),
    "ExponentialLR-slow": (lambda o: ls.ExponentialLR(o, 0.995), lambda o, T: T.ExponentialLR(o, 0.995)),
    "CosineAnnealingLR": (lambda o: ls.CosineAnnealingLR(o, 40), lambda o, T: T.CosineAnnealingLR(o, 40)),
    "CosineAnnealingLR-eta-min": (
        lambda o: ls.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
        lambda o, T: T.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
    ),
    "CosineAnnealingLR-past-T-max": (  # two full periods: down, back up, down again
        lambda o: ls.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
        lambda o, T: T.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    ),
    "CosineAnnealingLR-short": (lambda o: ls.CosineAnnealingLR(o, 3), lambda o, T: T.CosineAnnealingLR(o, 3)),
    "LinearLR": (lambda o: ls.LinearLR(o), lambda o, T: T.LinearLR(o)),
    "LinearLR-warmup": (
        lambda o: ls.LinearLR(o, start_factor=0.01, total_iters=10),
        lambda o, T: T.LinearLR(o, start_factor=0.01, total_iters=10),
    ),
    "LinearLR-decay": (
        lambda o: ls.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=30),
        lambda o, T: T.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=30),
    ),
    "LinearLR-partial": (
        lambda o: ls.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=40),
        lambda o, T: T.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=40),
    ),
    "LinearWarmup": (
        lambda o: ls.LinearWarmup(o, warmup_steps=8, start_factor=0.1),
        lambda o, T: T.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=8),
    ),
    "SequentialLR-warmup-cosine": (
        lambda o: ls.SequentialLR(o, [ls.LinearLR(o, 0.1, total_iters=5), ls.CosineAnnealingLR(o, T_max=30)], [5]),
        lambda o, T: T.SequentialLR(o, [T.LinearLR(o, 0.1, total_iters=5), T.CosineAnnealingLR(o, T_max=30)], [5]),
    ),
    "SequentialLR-warmup-cosine-eta-min": (
        lambda o: ls.SequentialLR(
            o, [ls.LinearWarmup(o, 10, start_factor=0.05), ls.CosineAnnealingLR(o, T_max=20, eta_min=0.002)], [10]
        ),
        lambda o, T: T.SequentialLR(
            o, [T.LinearLR(o, 0.05, total_iters=10), T.CosineAnnealingLR(o, T_max=20, eta_min=0.002)], [10]
        ),
    ),
    "SequentialLR-three-phases": (
        lambda o: ls.SequentialLR(
            o, [ls.ExponentialLR(o, 0.8), ls.StepLR(o, 4, gamma=0.5), ls.LinearLR(o, 0.5, 1.0, 6)], [6, 20]
        ),
        lambda o, T: T.SequentialLR(
            o, [T.ExponentialLR(o, 0.8), T.StepLR(o, 4, gamma=0.5), T.LinearLR(o, 0.5, 1.0, 6)], [6, 20]
        ),
    ),
}


def _sequences(name: str, steps: int = STEPS) -> tuple[list[float], list[float]]:
    """The lr before the first step and after each of ``steps`` steps, ours and torch's."""
    torch = pytest.importorskip("torch")
    make_ours, make_torch = SCHEDULES[name]
    opt, topt = _optimizers()
    sched, tsched = make_ours(opt), make_torch(topt, torch.optim.lr_scheduler)
    ours, theirs = [opt.lr], [_torch_lr(tsched)]
    for _ in range(steps):
        topt.step()  # torch checks that optimizer.step() comes first
        tsched.step()
        sched.step()
        assert sched.get_last_lr() == opt.lr
        ours.append(opt.lr)
        theirs.append(_torch_lr(tsched))
    return ours, theirs


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch_for_40_steps(name: str) -> None:
    ours, theirs = _sequences(name)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    assert len(set(theirs)) > 2, "a sequence that never changes tests nothing"


def test_sequential_lr_restarts_the_second_schedule_from_the_base_lr() -> None:
    ours, _ = _sequences("SequentialLR-warmup-cosine")
    assert ours[0] == pytest.approx(0.1 * BASE_LR)
    assert ours[5] == pytest.approx(BASE_LR)  # the milestone: cosine's epoch 0, from the optimizer's initial lr
    assert ours[35] == pytest.approx(0.0, abs=1e-15)


PLATEAU_METRICS = [
    1.0, 0.9, 0.9, 0.9, 0.9, 0.89995, 0.85, 0.85, 0.86, 0.87,
    0.84, 0.84, 0.84, 0.84, 0.84, 0.839, 0.5, 0.5, 0.5, 0.6,
    0.7, 0.8, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.3,
    0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
]  # fmt: skip

PLATEAU_SETTINGS = {
    "patience-2": {"patience": 2},
    "patience-0": {"patience": 0, "factor": 0.5},
    "defaults": {},
    "cooldown": {"patience": 1, "cooldown": 3, "factor": 0.5},
    "min-lr": {"patience": 1, "factor": 0.3, "min_lr": 0.004},
    "threshold-rel": {"patience": 2, "threshold": 0.02},
    "threshold-abs": {"patience": 2, "threshold_mode": "abs", "threshold": 0.005},
    "max": {"mode": "max", "patience": 2},
    "max-abs-cooldown": {"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 1, "cooldown": 2},
    "eps-skips-tiny-changes": {"patience": 1, "factor": 0.5, "min_lr": BASE_LR - 1e-9, "eps": 1e-8},
}


def _plateau_sequences(settings: dict[str, Any], metrics: list[float]) -> tuple[list[float], list[float]]:
    torch = pytest.importorskip("torch")
    opt, topt = _optimizers()
    sched = ls.ReduceLROnPlateau(opt, **settings)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **settings)
    ours, theirs = [sched.get_last_lr()], [_torch_lr(tsched)]
    for m in metrics:
        sched.step(m)
        tsched.step(m)
        assert sched.get_last_lr() == opt.lr
        ours.append(opt.lr)
        theirs.append(_torch_lr(tsched))
    return ours, theirs


@pytest.mark.parametrize("name", PLATEAU_SETTINGS)
def test_reduce_lr_on_plateau_matches_torch(name: str) -> None:
    settings = PLATEAU_SETTINGS[name]
    metrics = [2.0 - m for m in PLATEAU_METRICS] if settings.get("mode") == "max" else PLATEAU_METRICS
    ours, theirs = _plateau_sequences(settings, metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    if name == "eps-skips-tiny-changes":
        assert set(ours) == {BASE_LR}
    elif name != "defaults":
        assert len(set(theirs)) > 2, "a sequence with fewer than two reductions tests little"


def test_reduce_lr_on_plateau_matches_torch_on_a_noisy_curve(rng: np.random.Generator) -> None:
    metrics = list(np.exp(-np.linspace(0, 3, 60)) + 0.05 * rng.standard_normal(60))
    for settings in ({"patience": 3}, {"patience": 2, "cooldown": 2, "threshold": 0.05, "threshold_mode": "abs"}):
        ours, theirs = _plateau_sequences(settings, metrics)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
        assert len(set(theirs)) > 2


def test_reduce_lr_on_plateau_reads_the_optimizers_current_lr() -> None:
    opt, _ = _optimizers()
    sched = ls.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(1.0)
    opt.lr = 0.04  # changed by hand
    sched.step(2.0)
    assert opt.lr == sched.get_last_lr() == pytest.approx(0.02)


def _resume(make: Callable[[Any], ls.LRScheduler], drive: Callable[[ls.LRScheduler, int], None], split: int) -> None:
    """Interrupt a schedule after ``split`` steps, save it as JSON, restore it into a fresh
    optimizer and schedule, and check the rest of the sequence equals the uninterrupted one."""
    opt, _ = _optimizers()
    sched = make(opt)
    before = [opt.lr]
    for i in range(split):
        drive(sched, i)
        before.append(opt.lr)
    saved = json.loads(json.dumps(sched.state_dict(), allow_nan=False))
    reference = []
    for i in range(split, STEPS):
        drive(sched, i)
        reference.append(opt.lr)
    fresh_opt, _ = _optimizers()
    fresh = make(fresh_opt)
    fresh.load_state_dict(saved)
    assert fresh_opt.lr == saved["last_lr"]
    resumed = []
    for i in range(split, STEPS):
        drive(fresh, i)
        resumed.append(fresh_opt.lr)
    assert resumed == reference
    assert len(set(before + reference)) > 1


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("split", [0, 3, 17])
def test_state_dict_round_trip_resumes_the_same_sequence(name: str, split: int) -> None:
    _resume(SCHEDULES[name][0], lambda s, i: s.step(), split)


@pytest.mark.parametrize("split", [1, 7, 12, 25])
def test_reduce_lr_on_plateau_state_dict_round_trip(split: int) -> None:
    settings = {"patience": 1, "cooldown": 2, "factor": 0.5, "min_lr": 1e-3}
    _resume(lambda o: ls.ReduceLROnPlateau(o, **settings), lambda s, i: s.step(PLATEAU_METRICS[i]), split)


def test_state_dict_is_for_one_type_only() -> None:
    opt, _ = _optimizers()
    saved = ls.StepLR(opt, 3).state_dict()
    with pytest.raises(ValueError, match="schedule state is for StepLR, not ExponentialLR"):
        ls.ExponentialLR(opt, 0.9).load_state_dict(saved)


def test_state_dict_restores_hyperparameters() -> None:
    opt, _ = _optimizers()
    sched = ls.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    other = ls.CosineAnnealingLR(_optimizers()[0], T_max=99)
    other.load_state_dict(sched.state_dict())
    assert other.get_config() == {"T_max": 10, "eta_min": 0.01}
    assert repr(other) == "CosineAnnealingLR(T_max=10, eta_min=0.01)"


# Training with a schedule stepped after every optimizer step: weights against torch.
TRAINING = {
    "Adam": ({"lr": 0.01}, {"lr": 0.01}),
    "SGD-momentum": ({"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9}),
    "AdamW": ({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.01, "weight_decay": 0.1}),
    "RMSprop-centered": ({"lr": 0.005, "centered": True}, {"lr": 0.005, "centered": True}),
    "Adagrad-lr-decay": ({"lr": 0.05, "lr_decay": 0.1}, {"lr": 0.05, "lr_decay": 0.1}),
}

TRAINING_SCHEDULES = {
    "Adam+cosine": ("Adam", "CosineAnnealingLR-eta-min"),
    "SGD+StepLR": ("SGD-momentum", "StepLR-every-step"),
    "AdamW+warmup-cosine": ("AdamW", "SequentialLR-warmup-cosine"),
    "RMSprop+exponential": ("RMSprop-centered", "ExponentialLR"),
    "Adagrad+linear-decay": ("Adagrad-lr-decay", "LinearLR-decay"),
}


@pytest.mark.parametrize("name", TRAINING_SCHEDULES)
def test_training_with_a_schedule_matches_torch(name: str, device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    opt_name, schedule = TRAINING_SCHEDULES[name]
    make_ours, make_torch = SCHEDULES[schedule]
    trajectory_matches_torch(
        device,
        opt_name,
        rng,
        table=TRAINING,
        schedules=lambda o, to: (make_ours(o), make_torch(to, torch.optim.lr_scheduler)),
    )


def test_schedules_reject_bad_arguments() -> None:
    opt, topt = _optimizers()
    with pytest.raises(TypeError, match="takes a bp.optim optimizer"):
        ls.StepLR(topt, 3)
    with pytest.raises(TypeError, match="takes a bp.optim optimizer"):
        ls.ReduceLROnPlateau(topt)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        ls.StepLR(opt, 0)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        ls.StepLR(opt, 2.5)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        ls.StepLR(opt, 3, gamma=0.0)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        ls.ExponentialLR(opt, -0.9)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        ls.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        ls.CosineAnnealingLR(opt, True)
    with pytest.raises(ValueError, match="eta_min must be a non-negative"):
        ls.CosineAnnealingLR(opt, 10, eta_min=-1e-3)
    with pytest.raises(ValueError, match=r"start_factor must lie in \(0, 1\]"):
        ls.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match=r"end_factor must lie in \[0, 1\]"):
        ls.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="total_iters must be a positive integer"):
        ls.LinearLR(opt, total_iters=0)
    with pytest.raises(ValueError, match="total_iters must be a positive integer"):
        ls.LinearWarmup(opt, warmup_steps=-5)


def test_sequential_lr_rejects_bad_arguments() -> None:
    opt, _ = _optimizers()
    other, _ = _optimizers()
    warm, cos = ls.LinearLR(opt), ls.CosineAnnealingLR(opt, 10)
    with pytest.raises(ValueError, match="at least one scheduler"):
        ls.SequentialLR(opt, [], [])
    with pytest.raises(ValueError, match="one milestone fewer than schedulers"):
        ls.SequentialLR(opt, [warm, cos], [5, 10])
    with pytest.raises(ValueError, match="each milestone must be a positive integer"):
        ls.SequentialLR(opt, [warm, cos], [0])
    with pytest.raises(ValueError, match="milestones must increase strictly"):
        ls.SequentialLR(opt, [warm, cos, ls.StepLR(opt, 2)], [5, 5])
    with pytest.raises(ValueError, match="drives another optimizer"):
        ls.SequentialLR(opt, [warm, ls.StepLR(other, 2)], [5])
    with pytest.raises(TypeError, match="not ReduceLROnPlateau"):
        ls.SequentialLR(opt, [warm, ls.ReduceLROnPlateau(opt)], [5])
    with pytest.raises(TypeError, match="takes bp.optim schedules"):
        ls.SequentialLR(opt, [warm, "cosine"], [5])


def test_reduce_lr_on_plateau_rejects_bad_arguments() -> None:
    opt, _ = _optimizers()
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        ls.ReduceLROnPlateau(opt, mode="minimum")
    with pytest.raises(ValueError, match="threshold_mode must be 'rel' or 'abs'"):
        ls.ReduceLROnPlateau(opt, threshold_mode="relative")
    with pytest.raises(ValueError, match=r"factor must lie in \[0, 1\)"):
        ls.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="patience must be a non-negative integer"):
        ls.ReduceLROnPlateau(opt, patience=-1)
    with pytest.raises(ValueError, match="cooldown must be a non-negative integer"):
        ls.ReduceLROnPlateau(opt, cooldown=1.5)
    with pytest.raises(ValueError, match="threshold must be a non-negative"):
        ls.ReduceLROnPlateau(opt, threshold=-0.1)
    with pytest.raises(ValueError, match="min_lr must be a non-negative"):
        ls.ReduceLROnPlateau(opt, min_lr=-1.0)
    with pytest.raises(TypeError, match="depends on the metrics"):
        ls.ReduceLROnPlateau(opt).lr_at(3)


def test_schedules_are_exported() -> None:
    for name in ls.__all__:
        assert getattr(bp.optim, name) is getattr(ls, name)
    assert bp.optim.lr_scheduler is ls
