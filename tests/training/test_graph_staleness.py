"""A replayed step never runs on what its graph no longer matches: every change to what a
capture baked in (arrays the optimizer updates in place, optimizer constants, layer settings,
the model's mode, its device and dtype) means a new capture. Checked without a GPU, with the
backend's capture stubbed (the trainer's side is all that decides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.backends.cuda_graph import GraphCapture
from backprop.training import build_step


class Capturer:
    """Stands in for `GraphCapture.capture`: runs the step's Python once, as a capture does,
    and returns a replayer counting its launches (and running the real step, so training goes
    on as a replay would)."""

    def __init__(self) -> None:
        self.captures = 0
        self.launches = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        capturer = self

        class Replayer:
            n_outputs = 2

            def __init__(self, fn: Callable[..., Any]):
                self.fn = fn

            def __call__(self, X: np.ndarray, T: np.ndarray) -> tuple:
                capturer.launches += 1
                return (self.fn(X, T)[0],)

        def fake_capture(self: GraphCapture, backend, fn, X, T, keep, scalars) -> Replayer:  # type: ignore[no-untyped-def]
            capturer.captures += 1
            fn(X, T)
            return Replayer(fn)

        monkeypatch.setattr(GraphCapture, "capture", fake_capture)


def model_and_step(monkeypatch: pytest.MonkeyPatch) -> tuple[bp.Sequential, Any, Any, Capturer]:
    model = bp.Sequential(
        bp.Dense(4, 8, l2=0.01), bp.LeakyReLU(0.1), bp.Dropout(0.2, masks="device"), bp.Dense(8, 3), seed=0
    )
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    capturer = Capturer()
    capturer.install(monkeypatch)
    step = build_step(model, bp.losses.SoftmaxCrossEntropy(), opt, graph=True, keep=1)
    step.reason = None  # as if on a GPU
    return model, opt, step, capturer


def batch(model: bp.Sequential) -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(np.float32)
    return X, bp.losses.SoftmaxCrossEntropy().prepare_target(model.backend, rng.integers(0, 3, 16), 16, 3)


CHANGES: dict[str, Callable[[bp.Sequential, Any], None]] = {
    "a parameter's data rebound": lambda m, o: setattr(m.parameters()[0], "data", m.parameters()[0].data.copy()),
    "optimizer.load_state_dict": lambda m, o: o.load_state_dict(o.state_dict()),
    "Dropout.p": lambda m, o: setattr(m.layers[2], "p", 0.5),
    "LeakyReLU.alpha": lambda m, o: setattr(m.layers[1], "alpha", 0.3),
    "Dense.l2": lambda m, o: setattr(m.layers[0], "l2", 0.5),
    "eval mode": lambda m, o: m.eval(),
    "an optimizer constant": lambda m, o: setattr(o, "eps", 1e-6),
    "model.to(dtype)": lambda m, o: m.to(dtype="float64"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_to_what_a_capture_baked_in_means_a_new_capture(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, step, capturer = model_and_step(monkeypatch)
    X, T = batch(model)
    for _ in range(5):  # 3 warm-up steps, the capture, a replay
        step(X, T)
    assert capturer.captures == 1 and capturer.launches == 2
    CHANGES[change](model, opt)
    step(X.astype(model.dtype), T)
    assert capturer.launches == 2, "replayed a graph that no longer matches"
    for _ in range(4):
        step(X.astype(model.dtype), T)
    assert capturer.captures == 2  # warmed up again and captured anew


def test_nothing_changed_means_no_new_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, step, capturer = model_and_step(monkeypatch)
    X, T = batch(model)
    for _ in range(12):
        step(X, T)
    opt.lr = 0.5  # read from device memory by every replay: no recapture
    step(X, T)
    assert capturer.captures == 1 and capturer.launches == 10  # 3 warm-up steps, then the capture launches too


def test_after_a_drop_the_full_batch_is_captured_even_if_a_partial_one_comes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, _, step, capturer = model_and_step(monkeypatch)
    X, T = batch(model)
    for _ in range(5):
        step(X, T)
    model.eval()
    step(X[:5], T[:5])  # the last, partial batch of an epoch comes first after the change
    for _ in range(5):
        step(X, T)
    assert capturer.captures == 2 and step._shape[0] == (16, 4)


def test_steps_bind_their_models_device_whoever_calls_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step (eager or graphed) enters its model's device context itself, so a ``cuda:1``
    step called outside ``activate()`` does not queue its forward pass on GPU 0 (spied here
    on the CPU: the forward pass must run inside the context)."""
    import contextlib  # noqa: PLC0415

    from backprop.backends import Backend  # noqa: PLC0415 - spied on below
    from backprop.training import make_step  # noqa: PLC0415

    depth, inside = [0], []

    @contextlib.contextmanager
    def spy(self: Backend):  # type: ignore[no-untyped-def]
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1

    monkeypatch.setattr(Backend, "activate", spy)
    real_apply = bp.Dense.apply
    monkeypatch.setattr(
        bp.Dense, "apply", lambda self, X, training: inside.append(depth[0] > 0) or real_apply(self, X, training)
    )
    model = bp.Sequential(bp.Dense(4, 3), seed=0)
    X, T = batch(model)
    for graph in (False, True):
        step = make_step(model, "cross_entropy", bp.optim.Adam(model.parameters()), graph=graph)
        inside.clear()
        step(X, T)
        assert inside == [True]
