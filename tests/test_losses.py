"""Every loss: value and gradient against central differences and PyTorch, every backend."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from helpers import central_difference, host


def case(name: str, rng: np.random.Generator) -> tuple[bp.losses.Loss, np.ndarray, np.ndarray]:
    if name == "MSE":
        return bp.losses.MSE(), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    if name == "MAE":
        return bp.losses.MAE(), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    if name == "Huber":  # residuals on both sides of delta
        return bp.losses.Huber(delta=0.7), 2 * rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    if name == "BCE":
        return bp.losses.BCE(), rng.uniform(0.05, 0.95, (6, 2)), rng.uniform(0, 1, (6, 2))
    if name == "BCEWithLogits":
        return bp.losses.BCEWithLogits(), 3 * rng.standard_normal((6, 2)), rng.uniform(0, 1, (6, 2))
    return bp.losses.SoftmaxCrossEntropy(), 3 * rng.standard_normal((6, 4)), rng.integers(0, 4, 6)


NAMES = ["MSE", "MAE", "Huber", "BCE", "BCEWithLogits", "SoftmaxCrossEntropy"]


def value_and_grad(loss: bp.losses.Loss, device: bp.Device, P: np.ndarray, y: np.ndarray, dtype: str = "float64"):
    backend = bp.backends.Backend(device, dtype)
    with backend.activate():
        T = loss.prepare_target(backend, y, P.shape[0], P.shape[1])
        L, dP = loss.value_and_grad(backend.ops, backend.from_host(P), T)
        value_only = loss.value(backend.ops, backend.from_host(P), T)
    return float(host(L)), host(dP), float(host(value_only))


@pytest.mark.parametrize("name", NAMES)
def test_loss_gradient_matches_central_differences(name: str, device: bp.Device, rng: np.random.Generator) -> None:
    loss, P, y = case(name, rng)
    L, dP, L_alone = value_and_grad(loss, device, P, y)
    assert L == pytest.approx(L_alone, rel=1e-14)
    numeric = central_difference(lambda Pp: value_and_grad(loss, device, Pp, y)[0], P)
    np.testing.assert_allclose(dP, numeric, rtol=1e-7, atol=1e-9)  # eps=1e-6 differences carry ~1e-10 roundoff


@pytest.mark.parametrize("name", NAMES)
def test_loss_matches_pytorch(name: str, device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    loss, P, y = case(name, rng)
    L, dP, _ = value_and_grad(loss, device, P, y)
    Pt = torch.tensor(P, requires_grad=True)
    yt = torch.tensor(y)
    reference = {
        "MSE": lambda: F.mse_loss(Pt, yt),
        "MAE": lambda: F.l1_loss(Pt, yt),
        "Huber": lambda: F.huber_loss(Pt, yt, delta=0.7),
        "BCE": lambda: F.binary_cross_entropy(Pt, yt),
        "BCEWithLogits": lambda: F.binary_cross_entropy_with_logits(Pt, yt),
        "SoftmaxCrossEntropy": lambda: F.cross_entropy(Pt, yt),
    }[name]()
    reference.backward()
    assert L == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(dP, Pt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_losses_are_finite_at_extremes(device: bp.Device, dtype: str) -> None:
    """Saturated probabilities and +-1000 logits give finite losses and gradients, no warnings."""
    P01 = np.array([[0.0], [1.0], [0.0], [1.0]])
    y01 = np.array([[0.0], [1.0], [1.0], [0.0]])
    logits = np.array([[-1000.0], [1000.0], [-1000.0], [1000.0]])
    multi = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    for loss, P, y in (
        (bp.losses.BCE(), P01, y01),
        (bp.losses.BCEWithLogits(), logits, y01),
        (bp.losses.SoftmaxCrossEntropy(), multi, np.array([1, 1])),
    ):
        L, dP, _ = value_and_grad(loss, device, P, y, dtype)
        assert np.isfinite(L) and np.isfinite(dP).all(), loss
    assert value_and_grad(bp.losses.BCE(), device, P01, y01)[0] == pytest.approx(50.0)  # two of four at log floor -100
    assert value_and_grad(bp.losses.BCEWithLogits(), device, logits, y01)[0] == pytest.approx(
        500.0
    )  # two of four wrong by 1000


def test_loss_call_works_on_plain_arrays() -> None:
    P = np.array([[1.0, 2.0]])
    assert float(bp.losses.MSE()(P, np.array([[1.0, 0.0]]))) == pytest.approx(2.0)
    assert bp.losses.get_loss("cross_entropy").__class__ is bp.losses.SoftmaxCrossEntropy
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*bce"):
        bp.losses.get_loss("hinge")


def test_regression_losses_by_name_and_their_settings() -> None:
    assert type(bp.losses.get_loss("mae")) is type(bp.losses.get_loss("l1")) is bp.losses.MAE
    assert bp.losses.get_loss("huber").delta == 1.0
    huber = bp.losses.Huber(delta=2)
    assert huber.get_config() == {"delta": 2.0} and repr(huber) == "Huber(delta=2)"
    assert bp.losses.Huber.from_config(huber.get_config()).delta == 2.0
    with pytest.raises(ValueError, match=r"Huber delta must be a positive number; got 0"):
        bp.losses.Huber(delta=0)
    # |D| = 3 > delta = 2: the linear part, delta (|D| - delta / 2) = 4; |D| = 1: 0.5 D^2
    P, T = np.array([[3.0, 1.0]]), np.zeros((1, 2))
    assert float(huber(P, T)) == pytest.approx((4.0 + 0.5) / 2)
    assert float(bp.losses.MAE()(P, T)) == pytest.approx(2.0)
