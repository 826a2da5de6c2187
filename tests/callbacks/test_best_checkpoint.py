"""``ModelCheckpoint(save_best_only=True)``: the file is written exactly at the epochs that
improve the monitored value, holds that epoch's model, survives a failed write, is not
overwritten by a worse resumed run, refuses a key the logs lack, and is written by rank 0 alone;
and ``GradientNorms(total=True)``: the global gradient norm, per epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
import distributed_fit
from backprop.callbacks import Callback, GradientNorms, ModelCheckpoint
from backprop.callbacks import checkpoint as checkpoint_module
from backprop.checkpoint import archive
from fake_ranks import FakeWorld, run_ranks


def blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    return (rng.standard_normal((n, 4)) + 1.5 * np.eye(3, 4)[y]).astype(np.float32), y


def data(seed: int = 5) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    X, y = blobs(rng, 64)
    return X, y, blobs(rng, 24)


def classifier(device: Any = "cpu") -> bp.Sequential:
    return bp.Sequential(bp.Dense(4, 8, init="he"), bp.ReLU(), bp.Dense(8, 3), device=device, seed=2)


class Snapshots(Callback):
    """Each epoch's weights as it ends."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, np.ndarray]] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.states[epoch] = self.model.state_dict()


def record_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The epoch of each checkpoint written, in order."""
    written: list[int] = []
    original = checkpoint_module.write_archive

    def write(path: Any, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        written.append(metadata["epoch"])
        original(path, metadata, arrays)

    monkeypatch.setattr(checkpoint_module, "write_archive", write)
    return written


def improving_epochs(values: list[float], epochs: list[int], maximize: bool) -> list[int]:
    best, out = math.nan, []
    for epoch, value in zip(epochs, values):
        if math.isnan(best) or (value > best if maximize else value < best):
            best = value
            out.append(epoch)
    return out


def train(model: bp.Sequential, callbacks: list[Callback], epochs: int = 8, **options: Any) -> bp.History:
    X, y, val = data()
    options = {"validation_data": val, "metrics": ["accuracy"], **options}
    return model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.SGD(model.parameters(), lr=0.6), epochs=epochs,
                     batch_size=16, verbose=0, callbacks=callbacks, **options)  # fmt: skip


@pytest.mark.parametrize(
    ("monitor", "mode", "maximize"),
    [("val_loss", "auto", False), ("loss", "min", False), ("accuracy", "auto", True), ("val_loss", "max", True)],
)
def test_it_writes_exactly_when_the_monitored_value_improves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, device: bp.Device, monitor: str, mode: str, maximize: bool
) -> None:
    written = record_writes(monkeypatch)
    path, snapshots = tmp_path / "best.npz", Snapshots()
    best = ModelCheckpoint(path, monitor=monitor, mode=mode, save_best_only=True)
    history = train(classifier(device), [snapshots, best])
    expected = improving_epochs(history[monitor], history.epochs, maximize)
    assert written == expected and expected[0] == 1
    if monitor == "val_loss":
        assert len(expected) < len(history)  # some epochs were worse: the test can tell
    assert best.best_epoch == expected[-1] and best.best_value == history[monitor][expected[-1] - 1]
    saved = bp.load_checkpoint(path)
    assert saved.epoch == best.best_epoch and saved.history.epochs == list(range(1, best.best_epoch + 1))
    for name, value in saved.model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots.states[best.best_epoch][name])


def test_early_stopping_and_the_best_checkpoint_keep_the_same_model(tmp_path: Path) -> None:
    path = tmp_path / "best.npz"
    model = classifier()
    stopper = bp.EarlyStopping(monitor="val_loss", patience=1)
    best = ModelCheckpoint(path, save_best_only=True)
    train(model, [stopper, best], epochs=30)
    assert stopper.stopped_epoch is not None and best.best_epoch == stopper.best_epoch
    for name, value in bp.load_checkpoint(path).model.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[name])


def test_a_failed_write_leaves_the_previous_best_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "best.npz"
    calls = {"n": 0}
    original = archive._write_zip

    def failing(fh: Any, members: dict[str, np.ndarray]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            fh.write(b"PK\x03\x04 half a zip")
            raise OSError("disk full")
        original(fh, members)

    monkeypatch.setattr(archive, "_write_zip", failing)
    with pytest.raises(OSError, match="disk full"):
        train(classifier(), [ModelCheckpoint(path, save_best_only=True)])
    assert calls["n"] == 2 and bp.load_checkpoint(path).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]


def test_a_resumed_run_does_not_overwrite_a_better_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The continued history's best value is the one to beat, when the file exists."""
    written = record_writes(monkeypatch)
    path = tmp_path / "best.npz"

    def resume(best_before: float) -> None:
        history = bp.History({"val_loss": [best_before]}, [1])
        train(classifier(), [ModelCheckpoint(path, save_best_only=True)], epochs=1, initial_epoch=1, history=history)

    resume(1e-9)
    assert written == [2]  # no file yet: this run's first epoch is the best it has
    resume(1e-9)
    assert written == [2]  # the file holds a model better than anything this run reached
    resume(1e9)
    assert written == [2, 2] and bp.load_checkpoint(path).epoch == 2


def test_a_monitored_key_the_logs_lack_is_an_error_listing_those_they_have(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = record_writes(monkeypatch)
    path = tmp_path / "best.npz"
    with pytest.raises(ValueError, match=r"monitors 'val_loss', but fit reports 'loss', 'accuracy', 'lr'; pass "
                                         r"validation_data"):  # fmt: skip
        train(classifier(), [ModelCheckpoint(path, save_best_only=True)], validation_data=None)
    with pytest.raises(ValueError, match=r"monitors 'val_acc', but fit reports 'loss', 'accuracy', 'lr', 'val_loss', "
                                         r"'val_accuracy'$"):  # fmt: skip
        train(classifier(), [ModelCheckpoint(path, monitor="val_acc", save_best_only=True)])
    assert written == [] and not path.exists()


def test_a_key_added_by_an_earlier_callback_can_be_monitored(tmp_path: Path) -> None:
    class Gap(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            logs["gap"] = logs["val_loss"] - logs["loss"]

    best = ModelCheckpoint(tmp_path / "best.npz", monitor="gap", save_best_only=True)
    history = train(classifier(), [Gap(), best], epochs=4)
    gaps = [v - t for v, t in zip(history["val_loss"], history["loss"])]
    assert best.best_epoch == improving_epochs(gaps, history.epochs, False)[-1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "bigger"}, "ModelCheckpoint mode must be 'auto', 'min' or 'max'; got 'bigger'"),
        ({"save_best_only": "yes"}, "save_best_only must be True or False"),
        ({"monitor": ""}, "monitor must be a log key"),
        ({"min_delta": math.nan}, "min_delta must be a finite number"),
        ({"every": 0}, "ModelCheckpoint every must be a positive integer"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(bp.InvalidParameterError, match=message):
        ModelCheckpoint("best.npz", **kwargs)


def test_only_rank_zero_writes_the_best_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    written = record_writes(monkeypatch)
    case = distributed_fit.CASES["sgd"]
    path = tmp_path / "best.npz"

    def body(world: FakeWorld) -> Any:
        model, optimizer = distributed_fit.build(case)
        options = {**distributed_fit.options(case, optimizer), "early_stopping": None,
                   "callbacks": [ModelCheckpoint(path, monitor="val_loss", save_best_only=True)]}  # fmt: skip
        history = model.fit(*distributed_fit.data(case), distributed=world, **options)
        return history, world.comm

    (history, comm0), (_, comm1) = run_ranks(2, body)
    expected = improving_epochs(history["val_loss"], history.epochs, False)
    assert written == expected  # rank 0's writes only
    assert comm0.barriers == comm1.barriers >= len(expected)  # every rank waited for each file
    assert bp.load_checkpoint(path).epoch == expected[-1]


def test_the_total_gradient_norm_is_the_global_norm_of_each_step(device: bp.Device, rng: np.random.Generator) -> None:
    """``"grad_norm"``: per epoch, the mean over its steps of ``sqrt(sum_p ||g_p||^2)``, the norm
    `bp.clip_grad_norm` reports; the per-parameter norms may be left out."""
    X, y = blobs(rng, 40)
    steps: list[float] = []

    class Global(Callback):
        def on_backward_end(self, batch: int, logs: Any) -> None:
            grads = [bp.to_numpy(p.grad).astype(np.float64) for p in self.model.parameters()]
            steps.append(math.sqrt(sum(float(np.sum(g * g)) for g in grads)))

    model = bp.Sequential(bp.Dense(4, 8), bp.Tanh(), bp.Dense(8, 3), device=device, dtype="float64", seed=1)
    history = model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), epochs=2,
                        batch_size=16, verbose=0, callbacks=[Global(), GradientNorms(per_parameter=False, total=True)])
    assert list(history.history) == ["loss", "grad_norm", "lr"]
    np.testing.assert_allclose(history["grad_norm"], [np.mean(steps[:3]), np.mean(steps[3:])], rtol=1e-12)
    assert steps[0] != steps[3]
    with pytest.raises(bp.InvalidParameterError, match="records nothing"):
        GradientNorms(per_parameter=False)
    with pytest.raises(bp.InvalidParameterError, match="total must be True or False"):
        GradientNorms(total=1)  # type: ignore[arg-type]
