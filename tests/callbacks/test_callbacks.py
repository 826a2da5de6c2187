"""`bp.callbacks`: the hooks `fit` calls, in order; what they see; stopping; no needless device
reads; and the keyword options being exactly the callbacks they stand for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop import epoch_results
from backprop.backends import Backend
from backprop.callbacks import (
    BatchLogs,
    Callback,
    CallbackList,
    EarlyStopping,
    GradientNorms,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
)
from backprop.optim import lr_scheduler


def blobs(rng: np.random.Generator, n: int = 48, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, classes, n)
    X = rng.standard_normal((n, 4)) + 3.0 * np.eye(classes, 4)[y]
    return X.astype(np.float32), y


def classifier(device: Any = "cpu", seed: int = 0) -> bp.Sequential:
    return bp.Sequential(bp.Dense(4, 8, init="he"), bp.ReLU(), bp.Dense(8, 3), device=device, seed=seed)


def fit(model: bp.Sequential, X: np.ndarray, y: np.ndarray, **options: Any) -> bp.History:
    options = {"loss": "cross_entropy", "optimizer": bp.optim.Adam(model.parameters(), lr=0.01), "batch_size": 16,
               "verbose": 0, **options}  # fmt: skip
    return model.fit(X, y, **options)


class Recorder(Callback):
    """Writes down every hook it gets, with what it can see then."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch: int, logs: BatchLogs) -> None:
        self.calls.append(("batch_begin", batch))

    def on_backward_end(self, batch: int, logs: BatchLogs) -> None:
        self.calls.append(("backward_end", batch))

    def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
        self.calls.append(("batch_end", batch, logs["size"]))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs: dict[str, Any]) -> None:
        self.calls.append(("train_end", type(logs.get("error")).__name__ if "error" in logs else None))


def test_hooks_come_in_order(device: bp.Device, rng: np.random.Generator) -> None:
    X, y = blobs(rng, 40)  # batches of 16, 16 and 8
    recorder = Recorder()
    fit(classifier(device), X, y, epochs=2, callbacks=[recorder], initial_epoch=3)
    batch = [("batch_begin", 0), ("backward_end", 0), ("batch_end", 0, 16), ("batch_begin", 1), ("backward_end", 1),
             ("batch_end", 1, 16), ("batch_begin", 2), ("backward_end", 2), ("batch_end", 2, 8)]  # fmt: skip
    names = [call[:2] if call[0] == "epoch_end" else call for call in recorder.calls]
    assert names == [("train_begin",), ("epoch_begin", 4), *batch, ("epoch_end", 4), ("epoch_begin", 5), *batch,
                     ("epoch_end", 5), ("train_end", None)]  # fmt: skip


def test_a_user_callback_sees_the_model_the_optimizer_the_params_and_the_logs(rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    model = classifier()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    seen: dict[str, Any] = {"batch_losses": []}

    class Watcher(Callback):
        def on_train_begin(self, logs: dict[str, Any]) -> None:
            seen["model"], seen["optimizer"], seen["params"] = self.model, self.optimizer, dict(self.params)

        def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
            seen["batch_losses"].append((batch, logs["loss"]))

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            seen[epoch] = dict(logs)

    history = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=16, metrics=["accuracy"],
                        validation_data=(X[:10], y[:10]), callbacks=[Watcher()], verbose=0)  # fmt: skip
    assert seen["model"] is model and seen["optimizer"] is opt
    params = seen["params"]
    assert params["history"] is history and params["scheduler"] is None
    assert {k: params[k] for k in ("epochs", "initial_epoch", "steps", "batch_size", "samples", "verbose")} == {
        "epochs": 2, "initial_epoch": 0, "steps": 3, "batch_size": 16, "samples": 48, "verbose": 0}  # fmt: skip
    assert params["metrics"] == ["loss", "accuracy", "lr", "val_loss", "val_accuracy"]
    for epoch in (1, 2):
        assert list(seen[epoch]) == ["loss", "accuracy", "lr", "val_loss", "val_accuracy"]
        assert seen[epoch] == {key: values[epoch - 1] for key, values in history.history.items()}
    # a batch's "loss" is the running mean of the epoch so far: after its last batch, the epoch's loss
    assert [b for b, _ in seen["batch_losses"]] == [0, 1, 2, 0, 1, 2]
    assert seen["batch_losses"][2][1] == pytest.approx(history["loss"][0], rel=1e-6)
    assert seen["batch_losses"][5][1] == pytest.approx(history["loss"][1], rel=1e-6)


@pytest.mark.parametrize("where", ["epoch", "batch"])
def test_a_callback_stops_training(where: str, rng: np.random.Generator) -> None:
    X, y = blobs(rng)

    class Stop(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            if where == "epoch" and epoch == 2:
                self.model.stop_training = True

        def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
            if where == "batch" and batch == 1:
                self.model.stop_training = True

    recorder = Recorder()
    model = classifier()
    history = fit(model, X, y, epochs=10, callbacks=[Stop(), recorder])
    if where == "epoch":
        assert history.epochs == [1, 2]
    else:  # the epoch ends after that batch, and its values are those of its two batches
        assert history.epochs == [1]
        assert [c for c in recorder.calls if c[0] == "batch_end"] == [("batch_end", 0, 16), ("batch_end", 1, 16)]
    assert recorder.calls[-1] == ("train_end", None)
    assert fit(model, X, y, epochs=3).epochs == [1, 2, 3]  # the next fit starts afresh


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = Backend.to_floats
    monkeypatch.setattr(Backend, "to_floats", lambda self, values: reads.append(len(values)) or original(self, values))
    return reads


def test_callbacks_that_need_no_epoch_values_leave_reading_in_blocks(
    monkeypatch: pytest.MonkeyPatch, device: bp.Device, rng: np.random.Generator
) -> None:
    """``needs_epoch_values = False``: its on_epoch_end comes when a block is read; batch hooks
    that do not look at ``logs["loss"]`` read nothing. A callback that needs each epoch's
    values gets them as each epoch ends: one read per epoch."""
    monkeypatch.setattr(epoch_results, "READ_EVERY", 7)  # 3 batches an epoch: a block every 3 epochs
    reads = count_reads(monkeypatch)
    X, y = blobs(rng)

    class Quiet(Recorder):
        needs_epoch_values = False

    class Eager(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            pass

    runs = {}
    for name, callbacks in (("none", []), ("quiet", [Quiet()]), ("eager", [Eager()])):
        reads.clear()
        model = classifier(device)
        history = fit(model, X, y, epochs=7, callbacks=callbacks)
        runs[name] = (history.to_dict(), model.state_dict(), list(reads))
    assert len(runs["none"][2]) == len(runs["quiet"][2]) == 3  # epochs 1-3, 4-6, 7
    assert len(runs["eager"][2]) == 7
    for name in ("quiet", "eager"):
        assert runs[name][0] == runs["none"][0]
        for key, value in runs["none"][1].items():
            np.testing.assert_array_equal(runs[name][1][key], value)
    quiet = [c for c in fit_calls(Quiet, X, y) if c[0] in ("epoch_begin", "epoch_end")]
    assert [c[:2] for c in quiet] == [("epoch_begin", 1), ("epoch_begin", 2), ("epoch_begin", 3), ("epoch_end", 1),
                                      ("epoch_end", 2), ("epoch_end", 3)]  # late, in order  # fmt: skip


def fit_calls(cls: type[Recorder], X: np.ndarray, y: np.ndarray) -> list[tuple[Any, ...]]:
    recorder = cls()
    fit(classifier(), X, y, epochs=3, callbacks=[recorder])
    return recorder.calls


def test_recorded_batch_values_are_read_with_the_losses(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """`BatchLogs.record` keeps a device value per step; the epoch reports their mean, read in the
    same transfer as the losses."""
    reads = count_reads(monkeypatch)
    X, y = blobs(rng)
    on_host: list[float] = []  # NumPy: reading here is no device sync, and not a `to_floats`

    class FirstWeight(Callback):
        needs_epoch_values = False

        def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
            W = self.model.parameters()[0].data
            logs.record("w00", W[0, 0] * 1.0)  # a copy: the weight changes in place
            on_host.append(float(W[0, 0]))

    model = classifier()
    history = fit(model, X, y, epochs=2, callbacks=[FirstWeight()])
    assert len(reads) == 1 and list(history.history) == ["loss", "w00", "lr"]
    assert history["w00"] == pytest.approx([np.mean(on_host[:3]), np.mean(on_host[3:])], rel=1e-6)


def test_train_end_comes_with_the_error_that_ended_training(rng: np.random.Generator) -> None:
    X = rng.standard_normal((32, 4)).astype(np.float32)
    recorder = Recorder()
    model = bp.Sequential(bp.Dense(4, 1), seed=0)
    with pytest.raises(bp.TrainingDivergedError), np.errstate(over="ignore", invalid="ignore"):
        model.fit(X, X.sum(axis=1, keepdims=True), loss="mse", optimizer=bp.optim.SGD(model.parameters(), lr=50.0),
                  epochs=50, batch_size=8, callbacks=[recorder], verbose=0)  # fmt: skip
    assert recorder.calls[-1] == ("train_end", "TrainingDivergedError")


def test_callbacks_must_be_callbacks() -> None:
    with pytest.raises(TypeError, match="bp.callbacks.Callback"):
        CallbackList([lambda epoch, logs: None])
    assert isinstance(bp.EarlyStopping(), Callback) and bp.EarlyStopping is EarlyStopping
    with pytest.raises(ValueError, match="verbose must be"):
        ProgressBar(-1)
    with pytest.raises(ValueError, match="every must be"):
        ModelCheckpoint("x.npz", every=0)


def run_options(tmp_path: Path, name: str, explicit: bool, rng_seed: int = 5) -> tuple[Any, ...]:
    """One run with every option that is a callback: as keyword options, or as the objects."""
    rng = np.random.default_rng(rng_seed)
    X, y = blobs(rng, 64)
    Xv, yv = rng.standard_normal((24, 4)).astype(np.float32), rng.integers(0, 3, 24)  # noise: val loss soon rises
    model = classifier(seed=2)
    opt = bp.optim.Adam(model.parameters(), lr=0.05)
    schedule = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    path = tmp_path / f"{name}.npz"
    common = {"loss": "cross_entropy", "optimizer": opt, "epochs": 12, "batch_size": 16, "metrics": ["accuracy"],
              "validation_data": (Xv, yv), "clip_grad_norm": 5.0}  # fmt: skip
    if explicit:
        callbacks = [GradientNorms(), LearningRateScheduler(schedule), stopper, ModelCheckpoint(path, every=3)]
        history = model.fit(X, y, callbacks=callbacks, verbose=0, **common)
    else:
        history = model.fit(X, y, record_grad_norms=True, scheduler=schedule, early_stopping=stopper, checkpoint=path,
                            checkpoint_every=3, verbose=0, **common)  # fmt: skip
    return history, model.state_dict(), stopper, bp.load_checkpoint(path)


def test_keyword_options_and_explicit_callbacks_train_the_same(tmp_path: Path) -> None:
    (h0, w0, s0, c0), (h1, w1, s1, c1) = run_options(tmp_path, "options", False), run_options(tmp_path, "objects", True)
    assert h0.to_dict() == h1.to_dict()
    assert any(key.startswith("grad_norm/") for key in h0.history)
    assert s0.stopped_epoch == s1.stopped_epoch is not None and s0.best_epoch == s1.best_epoch
    for name, value in w0.items():
        np.testing.assert_array_equal(w1[name], value)
    assert c0.epoch == c1.epoch == s0.stopped_epoch
    assert c0.scheduler_state == c1.scheduler_state is not None  # the explicit schedule is saved too
    for name, value in c0.model.state_dict().items():
        np.testing.assert_array_equal(c1.model.state_dict()[name], value)
        np.testing.assert_array_equal(w0[name], value)  # the restored best weights


def test_a_progress_bar_given_explicitly_replaces_the_verbose_one(capsys: pytest.CaptureFixture[str],
                                                                  rng: np.random.Generator) -> None:  # fmt: skip
    X, y = blobs(rng)
    fit(classifier(), X, y, epochs=3, verbose=1, callbacks=[ProgressBar(2)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 3 and all(line.startswith("epoch") for line in lines[1:])  # column names, 3 epochs
