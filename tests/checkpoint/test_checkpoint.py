"""Checkpoints: round trips on every backend, exact resumption, atomic writes, safe and clear
failures for every kind of bad file."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.checkpoint import CheckpointError, archive, load_weights, save_checkpoint
from backprop.loading import load, load_checkpoint
from helpers import host

STRICT = bp.Device(namespace="array_api_strict")
Dropout = getattr(bp, "Dropout", None) or getattr(bp.layers, "Dropout", None)
needs_dropout = pytest.mark.skipif(Dropout is None, reason="bp.Dropout does not exist yet")


def mlp(device: Any = "cpu", dtype: str = "float32", seed: int = 0, dropout: str | None = None) -> bp.Sequential:
    layers: list[bp.Layer] = [bp.Dense(4, 8, init="he"), bp.ReLU()]
    if dropout is not None:
        layers.append(Dropout(0.25, masks=dropout))
    layers += [bp.Dense(8, 3)]
    return bp.Sequential(*layers, device=device, dtype=dtype, seed=seed)


def data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 4))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def train(model: bp.Sequential, optimizer: bp.optim.Optimizer, epochs: int) -> bp.History:
    X, y = data()
    return model.fit(
        X, y, loss="cross_entropy", optimizer=optimizer, epochs=epochs, batch_size=8, shuffle=True, verbose=0
    )


def make_optimizer(kind: str, model: bp.Sequential) -> bp.optim.Optimizer:
    if kind == "adam":
        return bp.optim.Adam(model.parameters(), lr=0.01)
    return bp.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def assert_same_weights(a: bp.Sequential, b: bp.Sequential) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sb[name].dtype == sa[name].dtype, name
        np.testing.assert_array_equal(sb[name], sa[name], err_msg=name)


def saved(tmp_path: Path, name: str = "ck.npz", **kwargs: Any) -> Path:
    """A checkpoint of a briefly trained float32 CPU model, with Adam state."""
    model = mlp()
    optimizer = make_optimizer("adam", model)
    train(model, optimizer, 1)
    path = tmp_path / name
    save_checkpoint(path, model, optimizer, **kwargs)
    return path


def rewrite(path: Path, edit: Callable[[dict[str, Any], dict[str, np.ndarray]], None]) -> None:
    """Edit a checkpoint's metadata/arrays in place (to make files a bug or a newer version could write)."""
    metadata, arrays = archive.read_archive(path)
    edit(metadata, arrays)
    archive.write_archive(path, metadata, arrays)


# ---------------------------------------------------------------------------------- round trips
def test_round_trip_on_every_backend(device: bp.Device, dtype: str, tmp_path: Path) -> None:
    model = mlp(device, dtype)
    optimizer = make_optimizer("adam", model)
    train(model, optimizer, 2)
    path = tmp_path / "model.npz"
    save_checkpoint(path, model, optimizer, epoch=2)
    X, _ = data()
    expected = host(model.predict(X))
    tol = 1e-6 if dtype == "float32" else 1e-12
    for target in (device, "cpu"):
        loaded = load_checkpoint(path, device=target)
        assert loaded.model.device == bp.get_device(target)
        assert loaded.model.dtype == dtype
        assert loaded.metadata["device"] == device.name
        assert_same_weights(model, loaded.model)
        for p in loaded.model.parameters():
            assert bp.backends.array_device(p.data) in (None, bp.get_device(target))
        np.testing.assert_allclose(host(loaded.model.predict(X)), expected, rtol=tol, atol=tol)
        assert loaded.epoch == 2
        assert type(loaded.optimizer) is bp.optim.Adam


@pytest.mark.parametrize(
    ("source", "target"), [(STRICT, "cpu"), ("cpu", STRICT)], ids=["strict-to-numpy", "numpy-to-strict"]
)
def test_a_checkpoint_moves_between_backends_and_training_continues(source: Any, target: Any, tmp_path: Path) -> None:
    """array-api-strict stands in for a GPU: save on one backend, resume on the other."""
    model = mlp(source, "float64", seed=3)
    optimizer = make_optimizer("adam", model)
    train(model, optimizer, 2)
    save_checkpoint(tmp_path / "ck.npz", model, optimizer)
    loaded = load_checkpoint(tmp_path / "ck.npz", device=target)
    assert loaded.model.device == bp.get_device(target)
    assert_same_weights(model, loaded.model)
    ours, theirs = train(model, optimizer, 2), train(loaded.model, loaded.optimizer, 2)
    np.testing.assert_allclose(theirs["loss"], ours["loss"], rtol=1e-12)
    for a, b in zip(model.parameters(), loaded.model.parameters(), strict=True):
        np.testing.assert_allclose(host(b.data), host(a.data), rtol=1e-12, atol=1e-14)


def test_load_gives_the_model_and_dtype_can_be_changed(tmp_path: Path) -> None:
    path = saved(tmp_path)
    model = load(path)
    assert isinstance(model, bp.Sequential) and model.dtype == "float32"
    wide = load_checkpoint(path, dtype="float64").model
    assert wide.dtype == "float64"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(wide.state_dict()[name], value.astype(np.float64))
    with pytest.raises(ValueError, match="dtype must be"):
        load_checkpoint(path, dtype="float16")


# ---------------------------------------------------------------------------------- resuming
RESUME_MODELS = [None, pytest.param("host", marks=needs_dropout), pytest.param("device", marks=needs_dropout)]


@pytest.mark.parametrize("dropout", RESUME_MODELS, ids=["plain", "dropout-host", "dropout-device"])
@pytest.mark.parametrize("kind", ["adam", "sgd_momentum"])
def test_resuming_from_a_checkpoint_is_exact(kind: str, dropout: str | None, tmp_path: Path) -> None:
    """N epochs, save, load, M epochs == N + M epochs in one run, bit for bit (float64, CPU)."""
    straight = mlp("cpu", "float64", seed=5, dropout=dropout)
    full = train(straight, make_optimizer(kind, straight), 3 + 4)

    first = mlp("cpu", "float64", seed=5, dropout=dropout)
    first_optimizer = make_optimizer(kind, first)
    head = train(first, first_optimizer, 3)
    save_checkpoint(tmp_path / "ck.npz", first, first_optimizer, epoch=3, history=head)
    del first, first_optimizer
    loaded = load_checkpoint(tmp_path / "ck.npz")
    tail = train(loaded.model, loaded.optimizer, 4)

    assert loaded.history["loss"] + tail["loss"] == full["loss"]
    assert_same_weights(straight, loaded.model)


def test_resumption_needs_the_saved_optimizer_state_and_generators(tmp_path: Path) -> None:
    """The exactness test above can fail: drop either piece of saved state and the run differs."""
    straight = mlp("cpu", "float64", seed=5)
    full = train(straight, make_optimizer("adam", straight), 5)
    first = mlp("cpu", "float64", seed=5)
    optimizer = make_optimizer("adam", first)
    train(first, optimizer, 2)
    save_checkpoint(tmp_path / "ck.npz", first, optimizer)

    loaded = load_checkpoint(tmp_path / "ck.npz")
    loaded.model.shuffle_rng.bit_generator.state = np.random.default_rng(loaded.model.seed).bit_generator.state
    assert train(loaded.model, loaded.optimizer, 3)["loss"] != full["loss"][2:]

    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert train(loaded.model, make_optimizer("adam", loaded.model), 3)["loss"] != full["loss"][2:]

    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert train(loaded.model, loaded.optimizer, 3)["loss"] == full["loss"][2:]


OPTIMIZERS = sorted(
    name
    for name in dir(bp.optim)
    if isinstance(getattr(bp.optim, name), type)
    and issubclass(getattr(bp.optim, name), bp.optim.Optimizer)
    and name != "Optimizer"
)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_is_rebuilt_from_its_hyperparameters_and_resumes_exactly(name: str, tmp_path: Path) -> None:
    """Every optimizer in bp.optim must take back what its get_config() gives."""
    cls = getattr(bp.optim, name)
    straight = mlp("cpu", "float64", seed=8)
    full = train(straight, cls(straight.parameters(), lr=0.01), 5)
    first = mlp("cpu", "float64", seed=8)
    optimizer = cls(first.parameters(), lr=0.01)
    train(first, optimizer, 2)
    save_checkpoint(tmp_path / "ck.npz", first, optimizer)
    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert train(loaded.model, loaded.optimizer, 3)["loss"] == full["loss"][2:]
    assert_same_weights(straight, loaded.model)


BatchNorm = getattr(bp.layers, "BatchNorm", None)
LayerNorm = getattr(bp.layers, "LayerNorm", None)
Residual = getattr(bp.layers, "Residual", None)


@pytest.mark.skipif(
    None in (BatchNorm, LayerNorm, Residual, Dropout), reason="the normalisation layers do not exist yet"
)
def test_nested_containers_and_running_statistics_round_trip(tmp_path: Path) -> None:
    def model() -> bp.Sequential:
        return bp.Sequential(
            bp.Dense(4, 8),
            BatchNorm(8),
            bp.ReLU(),
            Residual(bp.Dense(8, 8), LayerNorm(8), bp.Tanh(), Dropout(0.2)),
            bp.Dense(8, 3),
            dtype="float64",
            seed=6,
        )

    straight = model()
    full = train(straight, make_optimizer("adam", straight), 5)
    first = model()
    optimizer = make_optimizer("adam", first)
    train(first, optimizer, 2)
    save_checkpoint(tmp_path / "ck.npz", first, optimizer)
    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert repr(loaded.model) == repr(first)
    assert "1.running_mean" in loaded.model.state_dict()
    assert_same_weights(first, loaded.model)
    assert train(loaded.model, loaded.optimizer, 3)["loss"] == full["loss"][2:]
    assert_same_weights(straight, loaded.model)


def test_the_resume_test_above_trains_the_saved_optimizer(tmp_path: Path) -> None:
    """Guard against the exactness test passing vacuously: the saved Adam state is not empty."""
    model = mlp("cpu", "float64")
    optimizer = make_optimizer("adam", model)
    train(model, optimizer, 1)
    save_checkpoint(tmp_path / "ck.npz", model, optimizer)
    restored = load_checkpoint(tmp_path / "ck.npz").optimizer
    assert restored is not None and restored.get_config() == optimizer.get_config()
    assert [p.name for p in restored.params] == [p.name for p in model.parameters()]
    theirs, ours = restored.state_dict()["state"], optimizer.state_dict()["state"]
    assert set(theirs) == set(ours) and ours["0.step"] == 5 and theirs["0.step"] == 5
    for key, value in ours.items():
        np.testing.assert_array_equal(theirs[key], value)


@pytest.mark.skipif(not hasattr(bp.optim, "StepLR"), reason="bp.optim.StepLR does not exist yet")
def test_resuming_with_a_learning_rate_schedule_is_exact(tmp_path: Path) -> None:
    def run(model: bp.Sequential, optimizer: bp.optim.Optimizer, schedule: Any, epochs: int) -> list[float]:
        losses = []
        for _ in range(epochs):
            losses += train(model, optimizer, 1)["loss"]
            schedule.step()
        return losses

    straight = mlp("cpu", "float64", seed=2)
    opt = bp.optim.SGD(straight.parameters(), lr=0.1, momentum=0.9)
    full = run(straight, opt, bp.optim.StepLR(opt, step_size=2, gamma=0.5), 6)

    first = mlp("cpu", "float64", seed=2)
    opt = bp.optim.SGD(first.parameters(), lr=0.1, momentum=0.9)
    schedule = bp.optim.StepLR(opt, step_size=2, gamma=0.5)
    head = run(first, opt, schedule, 3)
    save_checkpoint(tmp_path / "ck.npz", first, opt, scheduler=schedule, epoch=3)
    loaded = load_checkpoint(tmp_path / "ck.npz")
    schedule = bp.optim.StepLR(loaded.optimizer, step_size=2, gamma=0.5)
    schedule.load_state_dict(loaded.scheduler_state)
    assert head + run(loaded.model, loaded.optimizer, schedule, 3) == full
    assert_same_weights(straight, loaded.model)


# ---------------------------------------------------------------------------------- contents
class Schedule:
    """Any object with state_dict() can be saved as the scheduler."""

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": 3, "lrs": (0.1, 0.05), "scale": np.float32(0.5), "table": np.arange(3, dtype=np.int32)}


def test_extra_history_epoch_and_scheduler_state_round_trip(tmp_path: Path) -> None:
    history = bp.History({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}, [1, 2])
    mean = np.array([0.1, -2.5, 3.0, 1e-300])
    extra = {
        "standardiser": {"mean": mean, "scale": np.ones(4, dtype=np.float32)},
        "labels": ["a", "b"],
        "n": np.int64(7),
    }
    path = saved(tmp_path, scheduler=Schedule(), epoch=12, history=history, extra=extra)
    loaded = load_checkpoint(path)
    assert loaded.epoch == 12
    assert loaded.history.to_dict() == history.to_dict()
    assert loaded.extra["labels"] == ["a", "b"] and loaded.extra["n"] == 7
    np.testing.assert_array_equal(loaded.extra["standardiser"]["mean"], mean)
    assert loaded.extra["standardiser"]["scale"].dtype == np.float32
    assert loaded.scheduler_state["last_epoch"] == 3 and loaded.scheduler_state["lrs"] == [0.1, 0.05]
    assert loaded.scheduler_state["scale"] == 0.5
    assert loaded.scheduler_state["table"].dtype == np.int32
    assert isinstance(extra["n"], np.int64) and extra["standardiser"]["mean"] is mean  # inputs untouched


def test_defaults_when_nothing_but_the_model_is_saved(tmp_path: Path) -> None:
    model = mlp(seed=4)
    save_checkpoint(tmp_path / "ck.npz", model)
    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert loaded.optimizer is None and loaded.scheduler_state is None
    assert loaded.epoch == 0 and len(loaded.history) == 0 and loaded.extra == {}
    assert loaded.model.seed == 4
    assert loaded.metadata["library_version"] == bp.__version__ and loaded.metadata["format_version"] == 1


def test_the_file_holds_only_plain_arrays(tmp_path: Path) -> None:
    path = saved(tmp_path, scheduler=Schedule(), history=bp.History({"loss": [1.0]}, [1]), extra={"m": np.zeros(2)})
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())
    with np.load(path, allow_pickle=False) as npz:
        members = {name: npz[name] for name in npz.files}
    assert all(value.dtype.kind in "biuf" for value in members.values())
    assert members["metadata"].dtype == np.uint8
    metadata = json.loads(members["metadata"].tobytes())
    assert metadata["format"] == "backprop.checkpoint"
    assert metadata["architecture"]["class"] == "Sequential"
    assert {"model/0.W", "model/0.b", "model/2.W", "optimizer/0.exp_avg", "extra/0"} <= set(members)


def test_an_optimizer_subset_is_bound_to_the_same_parameters(tmp_path: Path) -> None:
    model = mlp()
    optimizer = bp.optim.SGD(model.parameters()[2:], lr=0.1, momentum=0.5)
    train(model, optimizer, 1)
    save_checkpoint(tmp_path / "ck.npz", model, optimizer)
    loaded = load_checkpoint(tmp_path / "ck.npz")
    assert [p.name for p in loaded.optimizer.params] == ["2.W", "2.b"]
    assert all(any(p is q for q in loaded.model.parameters()) for p in loaded.optimizer.params)


# ---------------------------------------------------------------------------------- saving safely
def test_saving_refuses_an_optimizer_of_another_model(tmp_path: Path) -> None:
    model, other = mlp(), mlp(seed=1)
    with pytest.raises(ValueError, match=r"not this model's \('0\.W', '0\.b', '2\.W', '2\.b'\).*another model"):
        save_checkpoint(tmp_path / "ck.npz", model, bp.optim.SGD(other.parameters(), lr=0.1))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"f": {1, 2}}, r"extra\['f'\] is a set"),
        ({"a": np.array([None], dtype=object)}, r"extra\['a'\] is an array of dtype object"),
        ({1: "x"}, "string keys"),
    ],
)
def test_saving_refuses_extra_values_it_cannot_store(extra: dict[Any, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=message):
        save_checkpoint(tmp_path / "ck.npz", mlp(), extra=extra)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"])
@pytest.mark.parametrize("where", ["writing", "replacing"])
def test_a_failed_save_keeps_the_previous_checkpoint(
    where: str, error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved(tmp_path, epoch=1)
    before = path.read_bytes()
    if where == "replacing":

        def replace(src: Any, dst: Any) -> None:
            raise error

        monkeypatch.setattr(os, "replace", replace)
    else:
        real, calls = np.lib.format.write_array, []

        def write_array(*args: Any, **kwargs: Any) -> None:
            calls.append(1)
            if len(calls) == 3:  # metadata and one array are already in the temporary file
                raise error
            real(*args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", write_array)
    with pytest.raises(type(error)):
        save_checkpoint(path, mlp(seed=9), epoch=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    assert path.read_bytes() == before
    assert load_checkpoint(path).epoch == 1


def test_a_failed_first_save_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        save_checkpoint(tmp_path / "ck.npz", mlp())
    assert os.listdir(tmp_path) == []


def test_saving_replaces_an_existing_checkpoint_and_needs_its_directory(tmp_path: Path) -> None:
    path = saved(tmp_path, epoch=1)
    save_checkpoint(path, mlp(), epoch=2)
    assert load_checkpoint(path).epoch == 2 and os.listdir(tmp_path) == ["ck.npz"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "missing" / "ck.npz", mlp())


# ---------------------------------------------------------------------------------- bad files
def corrupt_weights(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    weights = load_checkpoint(path).model.state_dict()["0.W"].tobytes()
    start = bytes(raw).find(weights)
    assert start > 0
    raw[start + 5] ^= 0xFF
    path.write_bytes(bytes(raw))


def newer_format(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(archive, "FORMAT_VERSION", 7)
        save_checkpoint(path, mlp())


def object_array(path: Path) -> None:
    metadata = np.frombuffer(
        json.dumps({"format": "backprop.checkpoint", "format_version": 1}).encode(), dtype=np.uint8
    )
    np.savez(path, metadata=metadata, **{"model/0.W": np.array([{"x": 1}], dtype=object)})


def unknown_layer(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    metadata["architecture"]["config"]["layers"][1] = {"class": "Conv9D", "config": {}}


def unknown_optimizer(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    metadata["optimizer"]["type"] = "Lion"


def missing_entry(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    del metadata["rng"]


def missing_member(metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    del arrays["model/2.b"]


def raw_metadata(payload: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        np.savez(path, metadata=np.frombuffer(payload, dtype=np.uint8), w=np.zeros(3))

    return write


BAD_FILES: list[tuple[str, Callable[..., None], str]] = [
    ("missing", lambda path: path.unlink(), "there is no such file"),
    ("directory", lambda path: (path.unlink(), path.mkdir()), "it is a directory"),
    ("empty", lambda path: path.write_bytes(b""), "not a backprop checkpoint: the file is empty"),
    ("random-bytes", lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096)), "not a zip/.npz archive"),
    ("pickle", lambda path: path.write_bytes(b"\x80\x04\x95" + b"\x00" * 64), "not a zip/.npz archive"),
    (
        "plain-npz",
        lambda path: np.savez(path, weights=np.ones(3)),
        r"a \.npz archive without backprop's metadata \(members: 'weights'\)",
    ),
    ("truncated", lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "truncated or damaged"),
    ("corrupted", corrupt_weights, r"corrupted: member 'model/0\.W' fails its CRC-32 check"),
    ("object-array", object_array, r"member 'model/0\.W' holds pickled Python objects.*refused"),
    ("not-json", raw_metadata(b"{not json"), "its metadata is not valid JSON"),
    ("foreign-json", raw_metadata(b'{"a": 1}'), "its 'metadata' member was not written by backprop"),
    (
        "bad-version",
        raw_metadata(b'{"format": "backprop.checkpoint", "format_version": "1"}'),
        "invalid format version '1'",
    ),
    (
        "unknown-layer",
        lambda path: rewrite(path, unknown_layer),
        r"unknown layer type 'Conv9D'.*written by backprop 0\.1\.0",
    ),
    (
        "unknown-optimizer",
        lambda path: rewrite(path, unknown_optimizer),
        r"unknown optimizer type 'Lion' \(this backprop .* has .*Adam",
    ),
    (
        "missing-entry",
        lambda path: rewrite(path, missing_entry),
        r"random generators' states cannot be read: the entry 'rng' is missing",
    ),
    ("missing-member", lambda path: rewrite(path, missing_member), r"its weights cannot be used: .*missing '2\.b'"),
]


@pytest.mark.parametrize(("spoil", "message"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_every_unreadable_file_raises_checkpoint_error(
    spoil: Callable[..., None], message: str, tmp_path: Path
) -> None:
    path = saved(tmp_path)
    spoil(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"cannot load checkpoint {str(path)!r}: ")
    assert "\n" not in str(info.value)


def test_a_newer_format_asks_for_an_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck.npz"
    newer_format(path, monkeypatch)
    with pytest.raises(
        CheckpointError,
        match=r"written by backprop 0\.1\.0 with format 7; this is backprop 0\.1\.0 which reads up to format 1: "
        r"upgrade backprop",
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="format 7"):
        load_weights(mlp(), path)


# ---------------------------------------------------------------------------------- load_weights
def test_load_weights_into_an_existing_model_on_another_backend(tmp_path: Path) -> None:
    path = saved(tmp_path)
    source = load(path)
    target = mlp(STRICT, seed=99)
    shuffle_state = target.shuffle_rng.bit_generator.state
    load_weights(target, path)
    assert target.device == STRICT and target.shuffle_rng.bit_generator.state == shuffle_state
    assert_same_weights(source, target)
    X, _ = data()
    np.testing.assert_array_equal(host(target.predict(X)), host(source.predict(X)))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            bp.Sequential(bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 3)),
            r"'0\.W' is \(4, 8\) in the checkpoint but \(4, 6\) in the model; .*'2\.W' is \(8, 3\)",
        ),
        (
            bp.Sequential(bp.Dense(4, 8), bp.Tanh(), bp.Dense(8, 3)),
            r"layer '1' is ReLU in the checkpoint but Tanh in the model$",
        ),
        (
            bp.Sequential(bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 3), bp.ReLU(), bp.Dense(3, 3)),
            r"layer '3' is absent in the checkpoint but ReLU in the model.*"
            r"the model's '4\.W' \(3, 3\) is not in the checkpoint",
        ),
        (bp.Sequential(bp.Dense(4, 8), bp.ReLU()), r"the checkpoint's '2\.W' \(8, 3\) is not in the model"),
    ],
    ids=["shapes", "layer-type", "extra-layers", "missing-layers"],
)
def test_load_weights_refuses_another_architecture(model: bp.Sequential, message: str, tmp_path: Path) -> None:
    path = saved(tmp_path)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match=f"its weights do not fit this model: .*{message}"):
        load_weights(model, path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_weights_reports_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="there is no such file"):
        load_weights(mlp(), tmp_path / "nothing.npz")


def test_a_resumed_run_never_repeats_masks_drawn_on_a_gpu(tmp_path) -> None:
    """A GPU generator's state cannot be saved (a stand-in plays one here): the checkpoint records
    how many device streams Dropout(masks="device") started, and the loaded model starts a new one."""

    class GpuGenerator:  # what CuPy's generator is to the checkpoint: not a NumPy generator
        pass

    model = bp.Sequential(bp.Dense(4, 8), bp.Dropout(0.5, masks="device"), bp.Dense(8, 2), seed=0)
    dropout = model.layers[1]
    assert dropout.stream_state() is None  # a host generator: its exact state is saved instead
    dropout._device_rng = GpuGenerator()
    assert dropout.stream_state() == {"spawned": 1}
    path = tmp_path / "gpu.npz"
    bp.save_checkpoint(path, model)
    loaded = bp.load_checkpoint(path).model.layers[1]
    assert loaded._seeds.n_children_spawned == 1 and loaded._device_rng is None  # the next stream is a new one
    loaded._generator(loaded.backend)
    assert loaded._seeds.n_children_spawned == 2
    fresh = bp.Sequential(bp.Dense(4, 8), bp.Dropout(0.5, masks="device"), bp.Dense(8, 2), seed=0).layers[1]
    X = np.ones((3, 8))
    first_masks = host(fresh.apply(X, True)[0])
    resumed_masks = host(loaded.apply(X, True)[0])
    assert not np.array_equal(first_masks, resumed_masks)
