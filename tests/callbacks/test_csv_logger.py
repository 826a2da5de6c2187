"""`CSVLogger`: a row per epoch equal to the `History`, whole rows only, continuing a resumed
run, refusing what it cannot log, and written by rank 0 alone."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
import distributed_fit
from backprop import epoch_results
from backprop.backends import Backend
from backprop.callbacks import Callback, CSVLogger, GradientNorms
from fake_ranks import FakeWorld, run_ranks


def blobs(rng: np.random.Generator, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) + 3.0 * np.eye(3, 4)[y]
    return X.astype(np.float32), y


def classifier(device: Any = "cpu") -> bp.Sequential:
    return bp.Sequential(bp.Dense(4, 8, init="he"), bp.ReLU(), bp.Dense(8, 3), device=device, seed=0)


def train(model: bp.Sequential, X: np.ndarray, y: np.ndarray, callbacks: list[Callback], **options: Any) -> bp.History:
    options = {"loss": "cross_entropy", "optimizer": bp.optim.Adam(model.parameters(), lr=0.01), "batch_size": 16,
               "verbose": 0, "epochs": 3, **options}  # fmt: skip
    return model.fit(X, y, callbacks=callbacks, **options)


def read_csv(path: Path, separator: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=separator))


def assert_rows_are_the_history(rows: list[list[str]], history: bp.History) -> None:
    assert rows[0] == ["epoch", *history.history]
    assert [int(row[0]) for row in rows[1:]] == history.epochs
    for column, key in enumerate(rows[0][1:], start=1):
        assert [float(row[column]) for row in rows[1:]] == history[key], key  # repr: the same floats


def test_a_row_per_epoch_holds_every_value_of_the_history(
    tmp_path: Path, device: bp.Device, rng: np.random.Generator
) -> None:
    X, y = blobs(rng)
    path = tmp_path / "log.csv"
    history = train(classifier(device), X, y, [GradientNorms(total=True), CSVLogger(path)], metrics=["accuracy"],
                    validation_data=(X[:12], y[:12]), epochs=4)  # fmt: skip
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "accuracy", "grad_norm/0.W", "grad_norm/0.b", "grad_norm/2.W", "grad_norm/2.b",
                       "grad_norm", "lr", "val_loss", "val_accuracy"]  # fmt: skip
    assert_rows_are_the_history(rows, history)


def test_each_row_is_whole_and_flushed_when_its_epoch_is_logged(tmp_path: Path, rng: np.random.Generator) -> None:
    """A reader looking at the file after each epoch sees the header and one whole line per
    epoch logged so far, nothing more (each row is one write, flushed)."""
    X, y = blobs(rng)
    path = tmp_path / "log.csv"
    seen: list[str] = []

    class Reader(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            seen.append(path.read_text())

    history = train(classifier(), X, y, [CSVLogger(path), Reader()], epochs=3)
    for epoch, text in enumerate(seen, start=1):
        assert text.endswith("\n") and text.count("\n") == 1 + epoch
    assert seen[-1] == path.read_text()
    assert_rows_are_the_history(read_csv(path), history)


def test_it_leaves_epochs_values_to_be_read_in_blocks_also_with_graph_true(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rng: np.random.Generator
) -> None:
    """It needs no epoch's values as it ends: `fit` still reads them in blocks (``graph=True``
    trains eagerly off CUDA, with a warning), and every epoch still gets its row, in order."""
    monkeypatch.setattr(epoch_results, "READ_EVERY", 7)  # 3 batches an epoch: a block every 3 epochs
    reads: list[int] = []
    original = Backend.to_floats
    monkeypatch.setattr(Backend, "to_floats", lambda self, values: reads.append(len(values)) or original(self, values))
    X, y = blobs(rng)
    path = tmp_path / "log.csv"
    with pytest.warns(UserWarning, match="graph=True: training eagerly"):
        history = train(classifier(), X, y, [CSVLogger(path)], epochs=7, graph=True)
    assert len(reads) == 3  # epochs 1-3, 4-6, 7
    assert_rows_are_the_history(read_csv(path), history)


def test_append_continues_a_resumed_run_and_drops_what_it_trains_again(tmp_path: Path,
                                                                       rng: np.random.Generator) -> None:  # fmt: skip
    """Epochs 1-3 saved in a checkpoint, epoch 4 logged, then a crash in the middle of writing
    epoch 5's row; the run resumed from the checkpoint logs epochs 4-5 after epochs 1-3."""
    X, y = blobs(rng)
    log, ckpt = tmp_path / "log.csv", tmp_path / "run.npz"
    model = classifier()
    history = train(model, X, y, [CSVLogger(log)], checkpoint=ckpt, epochs=3)
    train(model, X, y, [CSVLogger(log, append=True)], epochs=1, initial_epoch=3, history=history)
    assert [row[0] for row in read_csv(log)] == ["epoch", "1", "2", "3", "4"]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("5,0.12")  # half a row, no newline: a crash while writing it
    resumed = bp.load_checkpoint(ckpt)
    assert resumed.epoch == 3
    history = resumed.model.fit(X, y, loss="cross_entropy", optimizer=resumed.optimizer, epochs=2, batch_size=16,
                                verbose=0, initial_epoch=3, history=resumed.history,
                                callbacks=[CSVLogger(log, append=True)])  # fmt: skip
    assert history.epochs == [1, 2, 3, 4, 5]
    assert_rows_are_the_history(read_csv(log), history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "run.npz"]  # no temporary file left


def test_append_drops_a_partial_last_line_whatever_it_starts_with(tmp_path: Path, rng: np.random.Generator) -> None:
    """A crash after writing "1" of "12,...": a line without its newline is never a row."""
    X, y = blobs(rng)
    path = tmp_path / "log.csv"
    model = classifier()
    history = train(model, X, y, [CSVLogger(path)], epochs=2)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("1")
    history = train(model, X, y, [CSVLogger(path, append=True)], epochs=1, initial_epoch=2, history=history)
    assert_rows_are_the_history(read_csv(path), history)
    assert path.read_text().count("\n") == 4
    path.write_text("epoch,lo")  # a crash while writing the header: the file starts afresh
    history = train(model, X, y, [CSVLogger(path, append=True)], epochs=1, initial_epoch=3, history=history)
    assert read_csv(path) == [["epoch", *history.history], ["4", *(repr(v[-1]) for v in history.history.values())]]


def test_append_starts_a_missing_file_and_a_tab_separated_one_reads_back(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    X, y = blobs(rng)
    path = tmp_path / "log.tsv"
    model = classifier()
    history = train(model, X, y, [CSVLogger(path, separator="\t", append=True)], epochs=2)
    history = train(model, X, y, [CSVLogger(path, separator="\t", append=True)], epochs=1, initial_epoch=2,
                    history=history)  # fmt: skip
    assert path.read_text().count("epoch") == 1 and "\t" in path.read_text().splitlines()[0]
    assert_rows_are_the_history(read_csv(path, "\t"), history)
    train(model, X, y, [CSVLogger(path, separator="\t")], epochs=1)  # append=False starts afresh
    assert [row[0] for row in read_csv(path, "\t")] == ["epoch", "1"]


def test_append_refuses_a_file_that_lacks_columns_or_is_no_log(tmp_path: Path, rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    path = tmp_path / "log.csv"
    train(classifier(), X, y, [CSVLogger(path)], epochs=1)
    before = path.read_text()
    with pytest.raises(ValueError, match=r"header has no column for 'accuracy'.*append=False"):
        train(classifier(), X, y, [CSVLogger(path, append=True)], epochs=1, initial_epoch=1, metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"epoch 2 reports 'grad_norm/0.W'.*has no column"):
        train(classifier(), X, y, [GradientNorms(), CSVLogger(path, append=True)], epochs=1, initial_epoch=1)
    assert path.read_text() == before  # nothing written to it
    other = tmp_path / "other.csv"
    other.write_text("name,value\nx,1\n")
    with pytest.raises(ValueError, match="does not start with an 'epoch' column"):
        train(classifier(), X, y, [CSVLogger(other, append=True)], epochs=1)
    other.write_text("epoch,loss,lr\nlast,1,2\n")
    with pytest.raises(ValueError, match="line 2 starts with 'last', not an epoch number"):
        train(classifier(), X, y, [CSVLogger(other, append=True)], epochs=1)
    with pytest.raises(FileNotFoundError, match="the folder .* does not exist"):
        train(classifier(), X, y, [CSVLogger(tmp_path / "nowhere" / "log.csv")], epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": 3}, "path must be a file name; got int 3"),
        ({"separator": ";;"}, "separator must be one character"),
        ({"separator": "\n"}, "separator must be one character"),
        ({"separator": '"'}, "separator must be one character"),
        ({"append": "yes"}, "append must be True or False; got 'yes'"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(bp.InvalidParameterError, match=message):
        CSVLogger(**{"path": "log.csv", **kwargs})


def test_only_rank_zero_writes(tmp_path: Path) -> None:
    case = distributed_fit.CASES["sgd"]
    path = tmp_path / "log.csv"

    def body(world: FakeWorld) -> dict[str, Any]:
        model, optimizer = distributed_fit.build(case)
        options = {**distributed_fit.options(case, optimizer), "callbacks": [CSVLogger(path)]}
        return model.fit(*distributed_fit.data(case), distributed=world, **options).to_dict()

    histories = run_ranks(2, body)
    assert histories[0] == histories[1]
    assert_rows_are_the_history(read_csv(path), bp.History.from_dict(histories[0]))
