"""Pickling models, optimizers and their state: joblib and multiprocessing need it.

Arrays travel as host NumPy arrays and come back on the model's device; the flat parameter
buffer is pickled once and its views are views again after unpickling; optimizers drop their
flat-buffer caches, which the next step rebuilds with the same numbers.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest

import backprop as bp
from helpers import host


def mlp(device, dtype="float64", seed=0) -> bp.Sequential:
    return bp.Sequential(
        bp.Dense(4, 8),
        bp.ReLU(),
        bp.BatchNorm(8),
        bp.Dense(8, 8),
        bp.Dropout(0.2),
        bp.Tanh(),
        bp.Dense(8, 3),
        device=device,
        dtype=dtype,
        seed=seed,
    )


def data(n=48):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def train(model, optimizer, epochs=2):
    X, y = data()
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=epochs, batch_size=16, verbose=0)


def assert_same_state(a: bp.Sequential, b: bp.Sequential) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def in_buffer(model: bp.Sequential) -> list[tuple[bool, bool]]:
    """For each parameter: whether its values and its gradient are views of the flat buffers."""
    return [
        (p.arenas is not None and p.data is p.arenas.data.views[p.index],
         p.arenas is not None and p.grad is p.arenas.grad.views[p.index])
        for p in model.parameters()
    ]  # fmt: skip


def assert_buffers_as_in(clone: bp.Sequential, model: bp.Sequential) -> None:
    """The clone's parameters are views of its flat buffers where the model's are of its own."""
    assert in_buffer(clone) == in_buffer(model)
    params = clone.parameters()
    arenas = params[0].arenas
    if clone.device.type == "array_api":
        assert arenas is None
        return
    assert all(p.arenas is arenas for p in params)
    # writing into the flat buffer changes the parameters: they are views of it, not copies
    if in_buffer(clone)[0][0]:
        before = host(params[0].data).ravel()[0]
        arenas.data.flat[0] += 1.0
        assert host(params[0].data).ravel()[0] == before + 1.0
        arenas.data.flat[0] -= 1.0


@pytest.mark.parametrize("trained", [False, True], ids=["untrained", "trained"])
def test_round_trip_keeps_predictions_and_state(device: bp.Device, dtype: str, trained: bool) -> None:
    model = mlp(device, dtype)
    if trained:
        train(model, bp.optim.Adam(model.parameters(), lr=0.01))
    clone = pickle.loads(pickle.dumps(model))
    assert clone.device == model.device and clone.dtype == model.dtype and clone.seed == model.seed
    assert repr(clone) == repr(model)
    assert_same_state(clone, model)
    X, _ = data()
    np.testing.assert_array_equal(host(clone.predict(X)), host(model.predict(X)))
    assert bp.backends.array_device(clone.predict(X)) in (None, device)
    assert_buffers_as_in(clone, model)
    # one backend, shared by every layer and parameter, as before pickling
    assert {id(layer.backend) for layer in clone.walk()} == {id(clone.backend)}
    assert {id(p.backend) for _, p in clone.named_variables()} == {id(clone.backend)}


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: bp.optim.Adam(ps, lr=0.01),
        lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: bp.optim.RMSprop(ps, lr=0.01),
    ],
    ids=["adam", "sgd_momentum", "rmsprop"],
)
def test_training_continues_after_unpickling_as_without(device: bp.Device, make_optimizer) -> None:
    model = mlp(device)
    optimizer = make_optimizer(model.parameters())
    train(model, optimizer)
    model2, optimizer2 = pickle.loads(pickle.dumps((model, optimizer)))
    assert optimizer2.params == model2.parameters()  # the same Parameter objects, not copies
    train(model, optimizer)
    train(model2, optimizer2)
    assert_same_state(model2, model)
    assert optimizer2.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
    for key, value in optimizer.state_dict()["state"].items():
        np.testing.assert_array_equal(optimizer2.state_dict()["state"][key], value, err_msg=key)
    assert_buffers_as_in(model2, model)


class TypeRecorder(pickle.Pickler):
    """A pickler that notes the type of everything it pickles."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file)
        self.types: set[type] = set()

    def persistent_id(self, obj: object) -> None:
        self.types.add(type(obj))


def test_pickles_hold_host_arrays_only(device: bp.Device) -> None:
    """What a GPU model needs: no device array inside the pickle (they come back on the
    model's device through its backend, not wherever the unpickler's current device is)."""
    model = mlp(device)
    optimizer = bp.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer)
    buffer = io.BytesIO()
    pickler = TypeRecorder(buffer)
    pickler.dump((model, optimizer))
    blob = buffer.getvalue()
    assert np.ndarray in pickler.types
    if device.type != "cpu":
        assert not [t for t in pickler.types if t.__module__.split(".")[0] == device.namespace]
    # the flat buffer is stored once, not once more parameter by parameter
    n = sum(int(np.prod(p.shape)) for p in model.parameters())
    itemsize = 8
    assert len(blob) < 6 * n * itemsize + 20_000


def test_optimizer_pickle_leaves_the_live_optimizer_alone(device: bp.Device) -> None:
    model = mlp(device)
    optimizer = bp.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer)
    fused = optimizer.fused
    pickle.dumps(optimizer)
    assert optimizer.fused is fused
    assert all("backend" in s for s in optimizer.state)


def test_deepcopy_still_keeps_views(device: bp.Device) -> None:
    model = mlp(device)
    train(model, bp.optim.SGD(model.parameters(), lr=0.05))
    twin = copy.deepcopy(model)
    assert_same_state(twin, model)
    assert_buffers_as_in(twin, model)
    if device.type != "array_api":
        assert twin.parameters()[0].arenas is not model.parameters()[0].arenas


def test_read_only_host_arrays_are_copied_on_unpickling(tmp_path) -> None:
    joblib = pytest.importorskip("joblib")
    model = mlp("cpu")
    optimizer = bp.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer)
    joblib.dump((model, optimizer), tmp_path / "model.joblib")
    model2, optimizer2 = joblib.load(tmp_path / "model.joblib", mmap_mode="r")
    train(model, optimizer)
    train(model2, optimizer2)  # trains in place: the memory-mapped arrays were copied
    assert_same_state(model2, model)


def test_schedules_and_histories_pickle() -> None:
    model = mlp("cpu")
    optimizer = bp.optim.Adam(model.parameters(), lr=0.01)
    schedule = bp.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    X, y = data()
    history = model.fit(X, y, loss="cross_entropy", optimizer=optimizer, scheduler=schedule, epochs=2, verbose=0)
    _, optimizer2, schedule2, history2 = pickle.loads(pickle.dumps((model, optimizer, schedule, history)))
    assert schedule2.optimizer is optimizer2
    assert history2.history == history.history
    assert optimizer2.lr == optimizer.lr
