"""Whole-step CUDA-graph replay: when it applies, and that it changes no number.

The replay itself needs a GPU (those tests skip, visibly, without one); which models can be
replayed and the fallbacks are checked everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.backends.cuda_graph import GraphCapture
from backprop.optim import lr_scheduler
from backprop.training import GraphedStep, build_step, graph_unsupported_reason, make_step
from helpers import host


def mlp(device, *extra: bp.Layer, dtype="float32") -> bp.Sequential:
    layers = (bp.Dense(6, 16, init="he"), bp.ReLU(), *extra, bp.Dense(16, 3))
    return bp.Sequential(*layers, device=device, dtype=dtype, seed=0)


def data(rng: np.random.Generator, n: int = 70) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def pretend_cuda(model: bp.Sequential) -> bp.Sequential:
    """The eligibility rules read only the model's device; check them without a GPU."""
    model.backend.device = bp.Device("cuda:0")
    return model


def test_which_models_can_be_replayed() -> None:
    on_cpu = mlp("cpu")
    reason = graph_unsupported_reason(on_cpu, bp.optim.Adam(on_cpu.parameters()))
    assert "need a CUDA device; the model is on cpu" in reason
    model = pretend_cuda(mlp("cpu"))
    assert graph_unsupported_reason(model, bp.optim.Adam(model.parameters())) is None
    assert graph_unsupported_reason(model, bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)) is None
    rmsprop = bp.optim.RMSprop(model.parameters())
    assert "RMSprop updates parameters out of place" in graph_unsupported_reason(model, rmsprop)
    with_bn = pretend_cuda(mlp("cpu", bp.BatchNorm(16)))
    assert "running_mean" in graph_unsupported_reason(with_bn, bp.optim.Adam(with_bn.parameters()))
    host_masks = pretend_cuda(mlp("cpu", bp.Dropout(0.2)))
    adam = bp.optim.Adam(host_masks.parameters())
    assert "Dropout '2' draws its masks on the host" in graph_unsupported_reason(host_masks, adam)
    for fine in (mlp("cpu", bp.Dropout(0.2, masks="device")), mlp("cpu", bp.Dropout(0.0))):
        assert graph_unsupported_reason(pretend_cuda(fine), bp.optim.Adam(fine.parameters())) is None


def test_graph_request_off_cuda_trains_eagerly_with_a_warning(rng: np.random.Generator) -> None:
    X, y = data(rng)
    runs = []
    for graph in (False, True):
        model = mlp("cpu")
        opt = bp.optim.Adam(model.parameters(), lr=0.01)
        if graph:
            with pytest.warns(UserWarning, match="training eagerly because CUDA graphs need a CUDA device"):
                history = model.fit(
                    X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=16, graph=True, verbose=0
                )
        else:
            history = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=16, verbose=0)
        runs.append((history["loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])
    step = make_step(mlp("cpu"), "cross_entropy", bp.optim.Adam(mlp("cpu").parameters()), graph=True)
    assert "CUDA device" in step.graph


def test_graphed_step_runs_the_eager_step_until_warm_and_when_unsupported(rng: np.random.Generator) -> None:
    model = mlp("cpu")
    opt = bp.optim.Adam(model.parameters())
    calls = []
    graphed = GraphedStep(lambda X, T: calls.append(X.shape) or (0.0, None), model, opt, warmup=2)
    for n in (8, 8, 8, 5):
        graphed(np.zeros((n, 6), np.float32), np.zeros(n, np.int64))
    assert calls == [(8, 6), (8, 6), (8, 6), (5, 6)] and not graphed.replaying and "CUDA" in graphed.reason


def test_graphed_step_captures_the_first_calls_shape_and_recaptures_when_a_constant_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The orchestration, with capture and replay stubbed (they need a GPU): the shape of the
    first call is the one captured, after ``warmup`` calls of it; other shapes (a partial last
    batch) run eagerly and do not count; a changed optimizer constant means a new capture."""
    model = mlp("cpu")
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    eager, captures, launches = [], [], []

    def fake_capture(self: GraphedStep, X: np.ndarray, T: np.ndarray) -> None:
        captures.append(X.shape[0])
        self._replay = lambda X, T: launches.append(1) or (np.float32(1.5),)  # keep=1: the loss
        self._n_outputs = 2  # (loss, outputs)
        self._baked, self._arenas = self._constants(), opt.params[0].arenas

    monkeypatch.setattr(GraphedStep, "_capture", fake_capture)
    def eager_step(X: np.ndarray, T: np.ndarray) -> tuple:
        return eager.append(X.shape[0]) or (np.float32(0.5), None)

    graphed = GraphedStep(eager_step, model, opt, warmup=2, keep=1)
    graphed.reason = None  # as if on a GPU
    batch = lambda n: (np.zeros((n, 6), np.float32), np.zeros(n, np.int64))  # noqa: E731
    outputs = [graphed(*batch(n)) for n in (8, 5, 8, 5, 8, 8, 5)]
    assert eager == [8, 5, 8, 5, 5] and captures == [8] and len(launches) == 2
    assert outputs[4] == (1.5, None) and graphed.replaying  # keep=1: the loss only
    opt.betas = (0.8, 0.99)  # baked into the captured kernels
    for n in (8, 8, 8):
        graphed(*batch(n))
    assert eager[5:] == [8, 8] and captures == [8, 8] and len(launches) == 3


def test_a_replay_copies_out_at_most_two_outputs() -> None:
    model = mlp("cpu")
    with pytest.raises(ValueError, match="keep must be 0, 1 or 2"):
        GraphedStep(lambda X, T: (0.0, None), model, bp.optim.Adam(model.parameters()), keep=3)


def test_graphs_need_the_optimizer_to_update_exactly_the_models_parameters() -> None:
    model = pretend_cuda(mlp("cpu"))
    some = bp.optim.Adam(model.parameters()[2:])
    assert "exactly the model's parameters" in graph_unsupported_reason(model, some)
    reordered = bp.optim.Adam(model.parameters()[::-1])
    assert "in order" in graph_unsupported_reason(model, reordered)


def test_the_trainer_undoes_what_captures_python_counted_and_counts_each_replay(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """The trainer's side of a capture, with the backend's capture stubbed: it runs the step's
    Python once (as a real capture does), which must not count as a step; each replay does."""
    model = mlp("cpu", bp.Dropout(0.2, masks="device"))
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    captured, launches = [], []

    class Replayer:
        n_outputs = 2

        def __call__(self, X: np.ndarray, T: np.ndarray) -> tuple:
            launches.append(X.shape)
            return (np.float32(1.5),)

    def fake_capture(self: GraphCapture, backend, fn, X, T, keep, scalars) -> Replayer:
        captured.append((backend, keep, scalars))
        fn(X, T)
        return Replayer()

    monkeypatch.setattr(GraphCapture, "capture", fake_capture)
    step = build_step(model, bp.losses.SoftmaxCrossEntropy(), opt, graph=True, keep=1)
    step.reason = None  # as if on a GPU
    X, y = data(rng, 16)
    T = bp.losses.SoftmaxCrossEntropy().prepare_target(model.backend, y, 16, 3)
    outputs = [step(X, T) for _ in range(5)]
    assert captured == [(model.backend, 1, opt.replay_scalars)] and len(launches) == 2
    assert outputs[3] == outputs[4] == (1.5, None)
    assert [s["step"] for s in opt.state] == [5] * len(opt.state)  # 3 warm-up steps, 2 replays; not the capture


def test_a_failed_capture_warns_and_trains_eagerly_for_good(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    model = mlp("cpu")
    opt = bp.optim.Adam(model.parameters(), lr=0.01)

    def broken_capture(self: GraphCapture, backend, fn, X, T, keep, scalars) -> None:
        fn(X, T)
        raise RuntimeError("no graph today")

    monkeypatch.setattr(GraphCapture, "capture", broken_capture)
    step = build_step(model, bp.losses.SoftmaxCrossEntropy(), opt, graph=True)
    step.reason = None
    X, y = data(rng, 16)
    T = bp.losses.SoftmaxCrossEntropy().prepare_target(model.backend, y, 16, 3)
    for _ in range(3):
        step(X, T)  # warm-up
    with pytest.warns(UserWarning, match="training eagerly because the capture failed: RuntimeError: no graph today"):
        step(X, T)
    for _ in range(2):
        step(X, T)
    assert not step.replaying and step.reason.startswith("capture failed")
    assert [s["step"] for s in opt.state] == [6] * len(opt.state)  # every call one eager step, the capture's undone


# ---------------------------------------------------------------------------- on a GPU
def needs_cuda(device: bp.Device) -> None:
    if device.type != "cuda":
        pytest.skip("CUDA-graph replay needs a CUDA device")


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd-momentum"])
def test_replayed_training_equals_eager_training(
    optimizer: str, device: bp.Device, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same losses and weights with and without graphs over several epochs with a partial last
    batch and a learning rate that changes every epoch (read from device memory on replay)."""
    needs_cuda(device)
    captured = []
    capture = GraphedStep._capture
    monkeypatch.setattr(GraphedStep, "_capture", lambda self, *a: capture(self, *a) or captured.append(self.replaying))
    X, y = data(rng)
    results = []
    for graph in (False, True):
        model = mlp(device, bp.LayerNorm(16), bp.GELU())
        params = model.parameters()
        opt = {
            "adam": lambda params=params: bp.optim.Adam(params, lr=0.01),
            "adamw": lambda params=params: bp.optim.AdamW(params, lr=0.01),
            "sgd-momentum": lambda params=params: bp.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
        }[optimizer]()
        sched = lr_scheduler.ExponentialLR(opt, gamma=0.7)
        history = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=4, batch_size=16, scheduler=sched,
                            clip_grad_norm=5.0, metrics=["accuracy"], graph=graph, verbose=0)
        results.append((history, model.state_dict(), [dict(s) for s in opt.state]))
    (h0, w0, s0), (h1, w1, s1) = results
    np.testing.assert_allclose(h1["loss"], h0["loss"], rtol=1e-6)
    np.testing.assert_allclose(h1["accuracy"], h0["accuracy"], rtol=1e-6)
    for name in w0:
        np.testing.assert_allclose(w1[name], w0[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert [s.get("step") for s in s1] == [s.get("step") for s in s0]  # host bookkeeping kept up
    assert captured == [True]  # the graph run really replayed (a failed capture would also warn)


def test_graphs_are_really_replayed_and_fall_back_for_unsupported_models(
    device: bp.Device, rng: np.random.Generator
) -> None:
    needs_cuda(device)
    X, y = data(rng, 64)
    model = mlp(device)
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    step = make_step(model, "cross_entropy", opt, graph=True)
    assert step.graph is None
    backend = model.backend
    with backend.activate():
        Xd, T = backend.from_host(X), bp.losses.SoftmaxCrossEntropy().prepare_target(backend, y, 64, 3)
        losses = [float(host(step(Xd, T))) for _ in range(8)]
    assert step.core.replaying and step.core.reason is None
    assert losses[-1] < losses[0]
    with_bn = mlp(device, bp.BatchNorm(16))
    with pytest.warns(UserWarning, match="running_mean"):
        with_bn.fit(X, y, loss="cross_entropy", optimizer=bp.optim.Adam(with_bn.parameters()), graph=True, verbose=0)


def test_device_dropout_masks_are_redrawn_on_every_replay(device: bp.Device, rng: np.random.Generator) -> None:
    """A replayed Dropout(masks='device') draws new masks each step, exactly as eager steps do."""
    needs_cuda(device)
    X, y = data(rng, 64)
    runs = []
    for graph in (False, True):
        model = mlp(device, bp.Dropout(0.3, masks="device"))
        step = make_step(model, "cross_entropy", bp.optim.SGD(model.parameters(), lr=0.05), graph=graph)
        backend = model.backend
        with backend.activate():
            Xd, T = backend.from_host(X), bp.losses.SoftmaxCrossEntropy().prepare_target(backend, y, 64, 3)
            runs.append([float(host(step(Xd, T))) for _ in range(8)])
        if graph:
            assert step.core.replaying
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5)  # a replay reusing one mask would drift away


def test_each_replay_reads_its_own_batch_and_keeps_earlier_losses(device: bp.Device, rng: np.random.Generator) -> None:
    """A replay copies the batch it is given into the graph's inputs, C-contiguous (a bare copy)
    or strided (CuPy's copy), and the loss it returns stays as it was through later replays."""
    needs_cuda(device)
    X, y = data(rng, 64)
    runs = []
    for graph in (False, True):
        model = mlp(device)
        step = make_step(model, "cross_entropy", bp.optim.Adam(model.parameters(), lr=0.01), graph=graph)
        backend = model.backend
        with backend.activate():
            Xd, T = backend.from_host(X), bp.losses.SoftmaxCrossEntropy().prepare_target(backend, y, 64, 3)
            strided = backend.from_host(np.ascontiguousarray(X.T)).T  # X's values, column-major
            assert not strided.flags.c_contiguous
            batches = [(Xd[:32], T[:32]), (strided[32:], T[32:])]
            kept = [step(*batches[i % 2]) for i in range(10)]  # device arrays, read after every step ran
        runs.append([float(host(loss)) for loss in kept])
        if graph:
            assert step.core.replaying
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-6)
    assert len(set(runs[1])) == len(runs[1])  # ten different losses: none rewritten by a later replay
