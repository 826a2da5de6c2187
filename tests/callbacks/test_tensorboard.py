"""`bp.callbacks.TensorBoard`: the event files, read back with TensorBoard's own reader, hold the
`History` (tags, steps, values), per-step losses, weight and gradient histograms; a resumed run
hides what it trains again; rank 0 alone writes; tensorboardX is optional."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
import distributed_fit
from backprop import epoch_results
from backprop.backends import Backend
from backprop.callbacks import BatchLogs, Callback, GradientNorms, TensorBoard
from fake_ranks import FakeWorld, run_ranks

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def events(run: Path) -> Any:
    """TensorBoard's reader on one run folder, keeping every event."""
    accumulator = event_accumulator.EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: Any, tag: str) -> tuple[list[int], list[float]]:
    found = accumulator.Scalars(tag)
    return [e.step for e in found], [e.value for e in found]


def assert_scalars_are_the_history(log_dir: Path, history: bp.History) -> None:
    """Each key is a tag (``val_*`` in the validation run, without the prefix), each epoch a
    step, each value the History's as float32 (what TensorBoard stores)."""
    train, validation = events(log_dir / "train"), events(log_dir / "validation")
    assert sorted(train.Tags()["scalars"]) == sorted(k for k in history.history if not k.startswith("val_"))
    assert sorted(validation.Tags()["scalars"]) == sorted(k[4:] for k in history.history if k.startswith("val_"))
    for key, values in history.history.items():
        run, tag = (validation, key[4:]) if key.startswith("val_") else (train, key)
        steps, got = scalars(run, tag)
        assert steps == history.epochs, key
        np.testing.assert_array_equal(np.float32(got), np.float32(values), err_msg=key)


def blobs(rng: np.random.Generator, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    return (rng.standard_normal((n, 4)) + 3.0 * np.eye(3, 4)[y]).astype(np.float32), y


def classifier(device: Any = "cpu", dtype: str = "float32") -> bp.Sequential:
    return bp.Sequential(bp.Dense(4, 8, init="he"), bp.ReLU(), bp.Dense(8, 3), device=device, dtype=dtype, seed=0)


def train(model: bp.Sequential, X: np.ndarray, y: np.ndarray, callbacks: list[Callback], **options: Any) -> bp.History:
    options = {"loss": "cross_entropy", "optimizer": bp.optim.Adam(model.parameters(), lr=0.01), "batch_size": 16,
               "verbose": 0, "epochs": 3, **options}  # fmt: skip
    return model.fit(X, y, callbacks=callbacks, **options)


def test_every_epoch_value_is_a_scalar_equal_to_the_history(
    tmp_path: Path, device: bp.Device, rng: np.random.Generator
) -> None:
    X, y = blobs(rng)
    schedule = bp.optim.lr_scheduler.StepLR  # the lr changes: its tag must follow
    model = classifier(device)
    opt = bp.optim.Adam(model.parameters(), lr=0.02)
    history = train(model, X, y, [GradientNorms(total=True), TensorBoard(tmp_path / "tb")], optimizer=opt,
                    epochs=4, metrics=["accuracy"], validation_data=(X[:12], y[:12]),
                    scheduler=schedule(opt, step_size=2, gamma=0.5))  # fmt: skip
    assert "grad_norm/0.W" in history and "grad_norm" in history and len(set(history["lr"])) == 2
    assert_scalars_are_the_history(tmp_path / "tb", history)
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["train", "validation"]  # no per-step run


def test_per_step_losses_every_update_freq_steps(tmp_path: Path, rng: np.random.Generator) -> None:
    """``batch_loss`` at steps 2, 4, ... counted over the epochs: the running mean loss of
    the epoch at that step, which at an epoch's last step is the epoch's loss."""
    X, y = blobs(rng)  # 3 steps an epoch
    running: dict[int, float] = {}

    class Running(Callback):
        def on_train_begin(self, logs: dict[str, Any]) -> None:
            self.step = 0

        def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
            self.step += 1
            running[self.step] = logs["loss"]

    history = train(classifier(), X, y, [Running(), TensorBoard(tmp_path, update_freq=2)], epochs=4)
    steps, values = scalars(events(tmp_path / "batch"), "batch_loss")
    assert steps == [2, 4, 6, 8, 10, 12]
    np.testing.assert_array_equal(np.float32(values), np.float32([running[s] for s in steps]))
    np.testing.assert_allclose(values[2], history["loss"][1], rtol=1e-6)  # step 6 ends epoch 2
    train(classifier(), X, y, [TensorBoard(tmp_path / "every", update_freq="batch")], epochs=1)
    assert scalars(events(tmp_path / "every" / "batch"), "batch_loss")[0] == [1, 2, 3]


def test_weight_and_gradient_histograms_every_histogram_freq_epochs(tmp_path: Path, rng: np.random.Generator) -> None:
    """Full-batch SGD without momentum: the epoch's one step is ``W -= lr * g``, so its gradient
    is ``(W_before - W_after) / lr``, found without looking at ``.grad``."""
    X, y = blobs(rng, 24)
    lr = 0.5
    weights: dict[int, dict[str, np.ndarray]] = {}

    class Weights(Callback):
        def on_train_begin(self, logs: dict[str, Any]) -> None:
            weights[0] = self.model.state_dict()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            weights[epoch] = self.model.state_dict()

    model = classifier(dtype="float64")
    train(model, X, y, [Weights(), TensorBoard(tmp_path, histogram_freq=2)], epochs=5, batch_size=24,
                    optimizer=bp.optim.SGD(model.parameters(), lr=lr))  # fmt: skip
    train_run = events(tmp_path / "train")
    names = [p.name for p in model.parameters()]
    assert sorted(train_run.Tags()["histograms"]) == sorted(
        [f"weights/{n}" for n in names] + [f"gradients/{n}" for n in names]
    )
    for name in names:
        for kind in ("weights", "gradients"):
            found = train_run.Histograms(f"{kind}/{name}")
            assert [e.step for e in found] == [2, 4]
            for event in found:
                epoch, h = event.step, event.histogram_value
                if kind == "weights":
                    values = weights[epoch][name]
                    assert (h.num, h.min, h.max) == (values.size, values.min(), values.max())
                    rtol = 1e-12  # sums in another order
                else:
                    values = (weights[epoch - 1][name] - weights[epoch][name]) / lr
                    rtol = 1e-9  # the difference of two weights loses digits of the step lr * g
                np.testing.assert_allclose([h.min, h.max, h.sum, h.sum_squares],
                                           [values.min(), values.max(), values.sum(), np.sum(values * values)],
                                           rtol=rtol, atol=1e-12, err_msg=f"{kind}/{name} epoch {epoch}")  # fmt: skip


def test_only_histograms_make_fit_read_each_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  rng: np.random.Generator) -> None:  # fmt: skip
    """Scalars leave epochs' values to be read in blocks (also with ``graph=True``, eager off
    CUDA); histograms are of the weights as each epoch ends, so they need each epoch's end."""
    monkeypatch.setattr(epoch_results, "READ_EVERY", 7)  # 3 steps an epoch: a block every 3 epochs
    reads: list[int] = []
    original = Backend.to_floats
    monkeypatch.setattr(Backend, "to_floats", lambda self, values: reads.append(len(values)) or original(self, values))
    X, y = blobs(rng)
    with pytest.warns(UserWarning, match="graph=True: training eagerly"):
        history = train(classifier(), X, y, [TensorBoard(tmp_path / "a")], epochs=7, graph=True)
    assert len(reads) == 3
    steps, values = scalars(events(tmp_path / "a" / "train"), "loss")
    assert steps == history.epochs and np.array_equal(np.float32(values), np.float32(history["loss"]))
    reads.clear()
    train(classifier(), X, y, [TensorBoard(tmp_path / "b", histogram_freq=3)], epochs=7)
    assert len(reads) == 7


def test_a_resumed_run_hides_the_epochs_it_trains_again(tmp_path: Path, rng: np.random.Generator) -> None:
    """Epochs 1-4 written, then a run resumed after epoch 2 writes 3-4 anew: TensorBoard shows
    1-2 of the first run and 3-4 of the second, which is that run's History."""
    X, y = blobs(rng)
    first = classifier()
    history = train(first, X, y, [TensorBoard(tmp_path, update_freq=1)], epochs=4)
    kept = bp.History({k: v[:2] for k, v in history.history.items()}, history.epochs[:2])
    resumed = classifier()  # other weights: other losses for epochs 3-4
    history = train(resumed, X, y, [TensorBoard(tmp_path, update_freq=1)], epochs=2, initial_epoch=2, history=kept,
                    optimizer=bp.optim.SGD(resumed.parameters(), lr=0.001))  # fmt: skip
    steps, values = scalars(events(tmp_path / "train"), "loss")
    assert steps == [1, 2, 3, 4]
    np.testing.assert_array_equal(np.float32(values), np.float32(history["loss"]))
    assert len(list((tmp_path / "train").iterdir())) == 2  # one event file per run
    assert scalars(events(tmp_path / "batch"), "batch_loss")[0] == list(range(1, 13))  # 3 steps an epoch


def test_only_rank_zero_writes(tmp_path: Path) -> None:
    case = distributed_fit.CASES["sgd"]

    def body(world: FakeWorld) -> dict[str, Any]:
        model, optimizer = distributed_fit.build(case)
        options = {**distributed_fit.options(case, optimizer), "callbacks": [TensorBoard(tmp_path, update_freq=2)]}
        return model.fit(*distributed_fit.data(case), distributed=world, **options).to_dict()

    histories = run_ranks(2, body)
    for run in ("train", "validation", "batch"):
        assert len(list((tmp_path / run).iterdir())) == 1, run
    assert_scalars_are_the_history(tmp_path, bp.History.from_dict(histories[0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_dir": 3}, "log_dir must be a folder name; got int 3"),
        ({"histogram_freq": -1}, "TensorBoard histogram_freq must be a non-negative integer; got -1"),
        ({"histogram_freq": 1.5}, "TensorBoard histogram_freq must be a non-negative integer"),
        ({"update_freq": "step"}, "TensorBoard update_freq must be 'epoch' or 'batch'; got 'step'"),
        ({"update_freq": 0}, "TensorBoard update_freq must be a positive integer; got 0"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(bp.InvalidParameterError, match=message):
        TensorBoard(**{"log_dir": "logs", **kwargs})


def test_without_tensorboardx_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'backprop-nn\[tensorboard\]'"):
        TensorBoard("logs")


def test_import_backprop_does_not_import_tensorboardx() -> None:
    code = "import sys, backprop; backprop.callbacks.TensorBoard; print('tensorboardX' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
