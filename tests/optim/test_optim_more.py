"""AdamW, RMSprop and Adagrad: 20-step trajectories against torch.optim from identical weights."""

from __future__ import annotations

import numpy as np
import pytest
from test_optim import small_model, trajectory_matches_torch

import backprop as bp
from helpers import host


def _same(**kwargs: object) -> tuple[dict, dict]:
    """The same settings for backprop and torch."""
    return dict(kwargs), dict(kwargs)


MORE_OPTIMIZERS = {
    "AdamW": _same(lr=0.01),
    "AdamW-weight-decay-betas": _same(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3),
    "AdamW-no-weight-decay": _same(lr=0.01, weight_decay=0.0),
    "RMSprop": _same(lr=0.01),
    "RMSprop-alpha-eps": _same(lr=0.005, alpha=0.9, eps=1e-4),
    "RMSprop-momentum": _same(lr=0.005, momentum=0.9),
    "RMSprop-centered": _same(lr=0.005, centered=True),
    "RMSprop-weight-decay": _same(lr=0.005, weight_decay=0.1),
    "RMSprop-momentum-centered": _same(lr=0.002, alpha=0.95, momentum=0.8, centered=True, weight_decay=0.05),
    "Adagrad": _same(lr=0.05),
    "Adagrad-lr-decay": _same(lr=0.05, lr_decay=0.1),
    "Adagrad-weight-decay": _same(lr=0.05, weight_decay=0.2),
    "Adagrad-initial-accumulator": _same(lr=0.05, initial_accumulator_value=0.5, eps=1e-6),
    "Adagrad-all": _same(lr=0.05, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("opt_name", MORE_OPTIMIZERS)
def test_optimizer_matches_torch_for_20_steps(opt_name: str, device: bp.Device, rng: np.random.Generator) -> None:
    trajectory_matches_torch(device, opt_name, rng, table=MORE_OPTIMIZERS)


def test_adamw_decouples_weight_decay_from_adam(rng: np.random.Generator) -> None:
    """AdamW without weight decay is Adam; with it, it differs from Adam's coupled L2."""
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    runs = {}
    for name, cls, kwargs in (
        ("adam", bp.optim.Adam, {}),
        ("adamw0", bp.optim.AdamW, {"weight_decay": 0.0}),
        ("adam_l2", bp.optim.Adam, {"weight_decay": 0.1}),
        ("adamw", bp.optim.AdamW, {"weight_decay": 0.1}),
    ):
        model = small_model("cpu")
        opt = cls(model.parameters(), lr=0.01, **kwargs)
        for _ in range(5):
            model.backprop(X, y, "mse")
            opt.step()
        runs[name] = [host(p.data) for p in model.parameters()]
    for a, b in zip(runs["adam"], runs["adamw0"]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.allclose(a, b, rtol=1e-6) for a, b in zip(runs["adam_l2"], runs["adamw"]))


def test_adamw_shrinks_weights_by_lr_times_weight_decay_when_gradients_vanish() -> None:
    """With a zero gradient the Adam step is zero, so one step is exactly p * (1 - lr * wd)."""
    model = small_model("cpu")
    before = [host(p.data).copy() for p in model.parameters()]  # updates are in place
    for p in model.parameters():
        p.grad = np.zeros(p.shape)
    bp.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5).step()
    for b, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(host(p.data), b * (1 - 0.1 * 0.5))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (bp.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
        (bp.optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True}),
        (bp.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.1, "initial_accumulator_value": 0.2}),
    ],
)
def test_state_dict_round_trip_resumes_the_trajectory(cls: type, kwargs: dict, rng: np.random.Generator) -> None:
    batches = [(rng.standard_normal((8, 3)), rng.standard_normal((8, 2))) for _ in range(6)]
    a = small_model("cpu")
    opt_a = cls(a.parameters(), **kwargs)
    for X, y in batches[:3]:
        a.backprop(X, y, "mse")
        opt_a.step()
    b = small_model("cpu")
    b.load_state_dict(a.state_dict())
    opt_b = cls(b.parameters(), lr=123.0)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.get_config() == opt_a.get_config()
    for X, y in batches[3:]:
        for m, o in ((a, opt_a), (b, opt_b)):
            m.backprop(X, y, "mse")
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(host(pa.data), host(pb.data))


def test_new_optimizers_reject_bad_settings() -> None:
    params = small_model("cpu").parameters()
    with pytest.raises(ValueError, match="betas must lie in"):
        bp.optim.AdamW(params, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="weight_decay must be a non-negative"):
        bp.optim.AdamW(params, weight_decay=-0.1)
    with pytest.raises(ValueError, match="lr must be a non-negative"):
        bp.optim.AdamW(params, lr=-1e-3)
    with pytest.raises(ValueError, match=r"alpha .* must lie in \[0, 1\]"):
        bp.optim.RMSprop(params, alpha=1.5)
    with pytest.raises(ValueError, match="momentum must be a non-negative"):
        bp.optim.RMSprop(params, momentum=-0.9)
    with pytest.raises(ValueError, match="eps must be a non-negative"):
        bp.optim.RMSprop(params, eps=-1e-8)
    with pytest.raises(ValueError, match="weight_decay must be a non-negative"):
        bp.optim.RMSprop(params, weight_decay=-1)
    with pytest.raises(ValueError, match="lr_decay must be a non-negative"):
        bp.optim.Adagrad(params, lr_decay=-0.1)
    with pytest.raises(ValueError, match="initial_accumulator_value must be a non-negative"):
        bp.optim.Adagrad(params, initial_accumulator_value=-1)
    with pytest.raises(ValueError, match="eps must be a non-negative"):
        bp.optim.Adagrad(params, eps=float("nan"))
    with pytest.raises(ValueError, match="got no parameters"):
        bp.optim.RMSprop([])


def test_defaults_match_torch_defaults() -> None:
    torch = pytest.importorskip("torch")
    params = small_model("cpu").parameters()
    weight = [torch.nn.Parameter(torch.zeros(1))]
    for cls in (bp.optim.AdamW, bp.optim.RMSprop, bp.optim.Adagrad):
        ours = cls(params).get_config()
        theirs = getattr(torch.optim, cls.__name__)(weight).defaults
        assert ours == {key: theirs[key] for key in ours}, cls.__name__
        assert all(isinstance(v, (float, bool, tuple)) for v in ours.values())
    assert repr(bp.optim.Adagrad(params, lr=0.5)).startswith("Adagrad(lr=0.5, lr_decay=0.0")
