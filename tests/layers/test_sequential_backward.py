"""A container's backward asks a stage for its input gradient only when something needs it:
a trainable parameter before that stage, or the container's caller."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from helpers import assert_parameter_grads_match, host, torch_twin


class SpyDense(bp.Dense):
    """A Dense layer that records whether each backward pass was asked for ``dX``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[bool] = []

    def _backward(self, *args):  # (ops, X, W, Wq, dY, need_dX): need_dX comes last
        self.asked.append(args[-1])
        return super()._backward(*args)


class Probe(bp.Layer):
    """The identity, recording whether (and how) its backward is called."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[bool] = []

    def apply(self, X, training):
        def backward(dY, need_dX=True):
            self.asked.append(need_dX)
            return dY if need_dX else None

        return X, backward


def backprop_once(model: bp.Sequential, rng: np.random.Generator) -> None:
    X = rng.standard_normal((6, 4))
    model.backprop(X, rng.standard_normal((6, 3)), "mse")


def test_no_input_gradient_before_the_first_trainable_stage(rng: np.random.Generator) -> None:
    probe, first, second = Probe(), SpyDense(4, 5), SpyDense(5, 3)
    backprop_once(bp.Sequential(probe, bp.Tanh(), first, bp.ReLU(), second, seed=0), rng)
    assert probe.asked == []  # nothing before the first Dense trains: its backward never runs
    assert first.asked == [False] and second.asked == [True]


def test_a_stage_after_a_trainable_one_is_asked_for_its_input_gradient(rng: np.random.Generator) -> None:
    probe = Probe()
    backprop_once(bp.Sequential(bp.Dense(4, 4), probe, bp.Dense(4, 3), seed=0), rng)
    assert probe.asked == [True]


def test_a_block_asked_for_its_input_gradient_computes_it_throughout(rng: np.random.Generator) -> None:
    inner_probe, inner = Probe(), SpyDense(4, 4)
    backprop_once(bp.Sequential(bp.Dense(4, 4), bp.Residual(inner_probe, inner), bp.Dense(4, 3), seed=0), rng)
    assert inner_probe.asked == [True] and inner.asked == [True]  # the first Dense needs the block's dX
    first_probe, first = Probe(), SpyDense(4, 4)
    backprop_once(bp.Sequential(bp.Residual(first_probe, first), bp.Dense(4, 3), seed=0), rng)
    assert first_probe.asked == [] and first.asked == [False]  # the block comes first: no one needs its dX


@pytest.mark.parametrize("first", ["tanh", "probe"])
def test_gradients_are_unchanged_by_the_skipped_input_gradient(first: str, rng: np.random.Generator) -> None:
    lead = bp.Tanh() if first == "tanh" else Probe()
    model = bp.Sequential(lead, bp.Dense(4, 5), bp.GELU(), bp.Dense(5, 3), dtype="float64", seed=0)
    X, T = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    model.backprop(X, T, "mse")

    def loss_of_input(X_: np.ndarray) -> float:
        return float(np.mean((host(model.predict(X_)) - T) ** 2))

    assert_parameter_grads_match(model, loss_of_input, X)


def test_gradients_match_pytorch_with_a_leading_activation(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential(bp.Tanh(), bp.Dense(4, 5), bp.ReLU(), bp.Dense(5, 3), dtype="float64", seed=0)
    twin = torch_twin(model)
    X, T = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    model.backprop(X, T, "mse")
    loss = torch.nn.functional.mse_loss(twin(torch.from_numpy(X)), torch.from_numpy(T))
    loss.backward()
    np.testing.assert_allclose(host(model[1].W.grad), twin[1].weight.grad.numpy().T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(model[1].b.grad), twin[1].bias.grad.numpy(), rtol=1e-12, atol=1e-14)
