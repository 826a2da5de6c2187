"""`LossScaler` step by step against PyTorch's ``torch.amp.GradScaler("cpu")``: the same scale
after every step of a sequence with injected overflows (skip, back off, grow after the growth
interval), the same skipped steps (Adam's step count included) and the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from backprop.backends import Array, Ops
from helpers import host, torch_twin


class Overflowing(bp.losses.MSE):
    """Mean squared error whose gradient is infinite on the given (1-based) calls: an overflow
    in the backward pass, injected."""

    def __init__(self, overflow_on: set[int]):
        self.overflow_on, self.calls = overflow_on, 0

    def value_and_grad(self, ops: Ops, P: Array, T: Array) -> tuple[Array, Array]:
        self.calls += 1
        L, dP = super().value_and_grad(ops, P, T)
        return L, dP * math.inf if self.calls in self.overflow_on else dP


@pytest.mark.parametrize(
    ("init_scale", "growth_factor", "backoff_factor", "interval"),
    [(2.0**10, 2.0, 0.5, 3), (3.0, 3.0, 0.25, 2), (2.0**127, 2.0, 0.5, 1)],  # the last: growth would overflow float32
)
def test_the_sequence_of_scales_skips_and_weights_is_gradscalers(
    init_scale: float, growth_factor: float, backoff_factor: float, interval: int, rng: np.random.Generator
) -> None:
    torch = pytest.importorskip("torch")
    overflow_on = {2, 3, 7, 11, 12}
    model = bp.Sequential(bp.Dense(4, 6, l2=0.01), bp.Tanh(), bp.Dense(6, 2), dtype="float64", seed=0)
    model.loss_scaler = bp.LossScaler(init_scale, growth_factor, backoff_factor, interval)
    optimizer = bp.optim.Adam(model.parameters(), lr=0.05)
    step = bp.training.make_step(model, Overflowing(overflow_on), optimizer, clip_grad_norm=1.0)
    twin = torch_twin(model)
    torch_optimizer = torch.optim.Adam(twin.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_factor=growth_factor,
                                  backoff_factor=backoff_factor, growth_interval=interval)  # fmt: skip
    X, T = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    Xd, Td = model.checked_data(X, T, bp.losses.MSE())
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    scales = []
    for k in range(1, 17):
        step(Xd, Td)
        torch_optimizer.zero_grad()
        out = twin(Xt)
        if k in overflow_on:
            out.register_hook(lambda g: g * math.inf)
        loss = torch.mean((out - Tt) ** 2) + 0.01 * (twin[0].weight ** 2).sum()
        scaler.scale(loss).backward()
        scaler.unscale_(torch_optimizer)
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        scaler.step(torch_optimizer)
        scaler.update()
        assert model.loss_scaler.scale == scaler.get_scale(), k
        assert model.loss_scaler.skipped == len([s for s in overflow_on if s <= k])
        np.testing.assert_allclose(host(model.predict(X)), twin(Xt).detach().numpy(), rtol=1e-12, atol=1e-14)
        scales.append(model.loss_scaler.scale)
    adam_steps = {state["step"] for state in optimizer.state}
    assert adam_steps == {16 - len(overflow_on)} == {int(s["step"]) for s in torch_optimizer.state.values()}
    assert len(set(scales)) > 2  # it did back off and grow


def test_a_scaler_keeps_its_state_and_refuses_bad_settings() -> None:
    scaler = bp.LossScaler(init_scale=1024.0, growth_interval=2)
    for found in (False, True, False):
        scaler.update(found)
    state = scaler.state_dict()
    again = bp.LossScaler.from_state_dict(state)
    assert again.state_dict() == state and (again.scale, again.growth_tracker, again.skipped) == (512.0, 1, 1)
    assert repr(again) == "LossScaler(scale=512, growth_tracker=1, skipped=1)"
    for bad, match in [({"init_scale": 0.0}, "LossScaler init_scale must be a positive number"),
                       ({"growth_factor": 1.0}, r"growth_factor must lie in \(1, inf\)"),
                       ({"backoff_factor": 1.0}, r"backoff_factor must lie in \(0, 1\)"),
                       ({"growth_interval": 0}, "growth_interval must be a positive integer")]:  # fmt: skip
        with pytest.raises(bp.InvalidParameterError, match=match):
            bp.LossScaler(**bad)


def test_unscaling_multiplies_the_gradients_and_reports_overflow(rng: np.random.Generator) -> None:
    model = bp.Sequential(bp.Dense(3, 2), seed=0)
    model.backprop(rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), "mse")
    grads = [host(p.grad).copy() for p in model.parameters()]
    scaler = bp.LossScaler(init_scale=4.0)
    assert scaler.unscale_(model.parameters()) is False
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(host(p.grad), g / 4)
    model.parameters()[1].grad[0] = np.nan
    assert scaler.unscale_(model.parameters()) is True
    assert scaler.unscale_([]) is False
