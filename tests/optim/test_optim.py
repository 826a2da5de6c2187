"""Optimizers and clipping: 20-step trajectories against torch.optim from identical weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import backprop as bp
from helpers import host, torch_params, torch_twin

OPTIMIZERS = {
    "SGD": ({"lr": 0.1}, {"lr": 0.1}),
    "SGD-momentum": ({"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9}),
    "SGD-dampening": ({"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    "SGD-nesterov": ({"lr": 0.05, "momentum": 0.9, "nesterov": True}, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "SGD-weight-decay": (
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01},
    ),
    "Adam": ({"lr": 0.01}, {"lr": 0.01}),
    "Adam-weight-decay": (
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ),
}


def small_model(device: bp.Device) -> bp.Sequential:
    return bp.Sequential(bp.Dense(3, 5), bp.Tanh(), bp.Dense(5, 2), device=device, dtype="float64", seed=7)


def trajectory_matches_torch(
    device,
    opt_name: str,
    rng,
    steps: int = 20,
    clip: float | None = None,
    table: dict[str, tuple[dict, dict]] = OPTIMIZERS,
    schedules: Callable[[bp.optim.Optimizer, Any], tuple[Any, Any]] | None = None,
) -> None:
    """Train `small_model` and its torch twin side by side from identical weights; compare every step.

    ``table[opt_name]`` gives (our kwargs, torch's kwargs); the class is the name before the first
    ``-``, looked up in ``bp.optim`` and ``torch.optim``. ``schedules(opt, torch_opt)`` returns a
    (ours, torch's) pair of lr schedules, stepped after every optimizer step.
    """
    torch = pytest.importorskip("torch")
    ours_kwargs, torch_kwargs = table[opt_name]
    model = small_model(device)
    twin = torch_twin(model)
    cls = opt_name.split("-")[0]
    opt = getattr(bp.optim, cls)(model.parameters(), **ours_kwargs)
    topt = getattr(torch.optim, cls)(twin.parameters(), **torch_kwargs)
    sched, tsched = schedules(opt, topt) if schedules is not None else (None, None)
    if sched is not None:
        assert opt.lr == pytest.approx(tsched.get_last_lr()[0], rel=1e-12), "lr before the first step"
    for step in range(steps):
        X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
        loss = model.backprop(X, y, bp.losses.MSE())
        if clip is not None:
            norm = bp.clip_grad_norm(model.parameters(), clip)
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.mse_loss(twin(torch.tensor(X)), torch.tensor(y))
        tloss.backward()
        if clip is not None:
            tnorm = torch.nn.utils.clip_grad_norm_(twin.parameters(), clip)
            assert float(host(norm)) == pytest.approx(tnorm.item(), rel=1e-12)
        topt.step()
        if sched is not None:
            sched.step()
            tsched.step()
            assert opt.lr == pytest.approx(tsched.get_last_lr()[0], rel=1e-12), f"lr after step {step}"
        assert loss == pytest.approx(tloss.item(), rel=1e-12), f"step {step}"
        for p, expected in zip(model.parameters(), torch_params(twin)):
            np.testing.assert_allclose(host(p.data), expected, rtol=1e-10, atol=1e-13, err_msg=f"{p.name} step {step}")


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_optimizer_matches_torch_for_20_steps(opt_name: str, device: bp.Device, rng: np.random.Generator) -> None:
    trajectory_matches_torch(device, opt_name, rng)


def test_clip_grad_norm_matches_torch_during_training(device: bp.Device, rng: np.random.Generator) -> None:
    trajectory_matches_torch(device, "SGD-momentum", rng, clip=0.3)


def test_clip_grad_norm_scales_globally_and_returns_norm_on_device(device: bp.Device) -> None:
    model = small_model(device)
    model.backprop(np.ones((4, 3)), np.zeros((4, 2)), "mse")
    grads = [host(p.grad).copy() for p in model.parameters()]
    slots = [p.grad for p in model.parameters()]
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    returned = bp.clip_grad_norm(model.parameters(), norm / 2)
    assert all(p.grad is slot for p, slot in zip(model.parameters(), slots))  # in place, as torch's clip_grad_norm_
    assert bp.backends.array_device(returned) in (None, device)
    assert float(host(returned)) == pytest.approx(norm)
    clipped = np.sqrt(sum((host(p.grad) ** 2).sum() for p in model.parameters()))
    assert clipped == pytest.approx(norm / 2, rel=1e-5)
    for g, p in zip(grads, model.parameters()):  # direction unchanged
        np.testing.assert_allclose(host(p.grad), g * (clipped / norm), rtol=1e-12)
    before = [host(p.grad).copy() for p in model.parameters()]
    bp.clip_grad_norm(model.parameters(), 1e9)  # far above: unchanged
    for g, p in zip(before, model.parameters()):
        np.testing.assert_allclose(host(p.grad), g, rtol=1e-12)


def test_clip_grad_norm_of_some_parameters_leaves_the_others_alone(device: bp.Device) -> None:
    model = small_model(device)
    model.backprop(np.ones((4, 3)), np.zeros((4, 2)), "mse")
    before = [host(p.grad).copy() for p in model.parameters()]
    first = model.parameters()[:1]
    norm = float(host(bp.clip_grad_norm(first, 1e-3)))
    assert norm == pytest.approx(float(np.sqrt((before[0] ** 2).sum())))
    np.testing.assert_allclose(host(first[0].grad), before[0] * (1e-3 / (norm + 1e-6)), rtol=1e-6)
    for g, p in zip(before[1:], model.parameters()[1:]):
        np.testing.assert_array_equal(host(p.grad), g)


def test_clip_grad_value(device: bp.Device) -> None:
    model = small_model(device)
    model.backprop(5 * np.ones((4, 3)), np.full((4, 2), 9.0), "mse")
    raw = [host(p.grad) for p in model.parameters()]
    bp.clip_grad_value(model.parameters(), 0.01)
    for g, p in zip(raw, model.parameters()):
        np.testing.assert_array_equal(host(p.grad), np.clip(g, -0.01, 0.01))
    assert any(np.abs(g).max() > 0.01 for g in raw)


def test_optimizer_state_follows_the_model_to_another_device(rng: np.random.Generator) -> None:
    """Adam state made on one device continues on another after model.to(...)."""
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    a, b = small_model("cpu"), small_model("cpu")
    opt_a, opt_b = bp.optim.Adam(a.parameters(), lr=0.01), bp.optim.Adam(b.parameters(), lr=0.01)
    for _ in range(3):
        for m, o in ((a, opt_a), (b, opt_b)):
            m.backprop(X, y, "mse")
            o.step()
    b.to(bp.Device(namespace="array_api_strict"))
    for _ in range(3):
        for m, o in ((a, opt_a), (b, opt_b)):
            m.backprop(X, y, "mse")
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert bp.backends.array_device(pb.data) == b.device
        np.testing.assert_allclose(host(pa.data), host(pb.data), rtol=1e-14)


def test_optimizer_rejects_bad_settings() -> None:
    params = small_model("cpu").parameters()
    with pytest.raises(ValueError, match="lr must be a non-negative"):
        bp.optim.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        bp.optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas must lie in"):
        bp.optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="got no parameters"):
        bp.optim.Adam([])
    with pytest.raises(TypeError, match="model.parameters"):
        bp.optim.Adam([np.zeros(3)])
