"""`bp.gradcheck`'s verdict and table agree: "OK" means every relatively judged entry is within
``rtol`` (the table's worst relative error included) and every gradient near 0 within the
absolute floor; a gradient off by a few times ``rtol`` fails."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop as bp


def model_and_batch(seed: int, activation: Any = bp.Sigmoid) -> tuple[bp.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = bp.Sequential(bp.Dense(6, 12), activation(), bp.Dense(12, 3), seed=seed, dtype="float64")
    X = rng.standard_normal((16, 6))
    return model, X, rng.integers(0, 3, size=16)


@pytest.mark.parametrize("seed", range(6))
def test_ok_means_the_worst_relative_error_shown_is_within_rtol(seed: int) -> None:
    model, X, y = model_and_batch(seed, bp.ReLU if seed % 2 else bp.Sigmoid)
    result = bp.gradcheck(model, X, y, "cross_entropy")
    assert result.ok, str(result)
    assert result.max_error <= result.rtol, str(result)  # before: up to 3e-2 from gradients near 0
    for line in str(result).splitlines()[1:-1]:
        shown = line.split()[1]
        assert shown == "-" or float(shown) <= result.rtol, line


def test_gradients_near_zero_are_judged_against_the_floor_not_relatively() -> None:
    model, X, y = model_and_batch(0)
    # a saturated sigmoid: the first layer's gradients are ~1e-12, their relative error noise
    model.layers[0].W.data = model.layers[0].W.data * 60.0
    result = bp.gradcheck(model, X, y, "cross_entropy")
    assert result.ok and result.absolute["0.W"] > 0, str(result)
    assert " near 0 " in str(result).splitlines()[0]


@pytest.mark.parametrize("factor", [1 + 4e-6, 1 - 4e-6, 1 + 1e-3])
def test_a_gradient_a_few_rtol_off_fails(monkeypatch: pytest.MonkeyPatch, factor: float) -> None:
    model, X, y = model_and_batch(1)
    exact = bp.Sequential.loss_and_grads

    def off(self: bp.Sequential, *args: Any) -> Any:
        L = exact(self, *args)
        for p in self.parameters():
            p.grad = p.grad * factor
        return L

    monkeypatch.setattr(bp.Sequential, "loss_and_grads", off)
    result = bp.gradcheck(model, X, y, "cross_entropy")
    assert not result.ok and "FAILED" in str(result), str(result)
    assert result.max_error > result.rtol
