"""``backprop train --tensorboard DIR --csv-log FILE``: the events (read back with TensorBoard's
reader) and the CSV rows are the run's history, a resumed run continues both, and outputs that
cannot be written are refused before training, in one paragraph."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
pytest.importorskip("tensorboardX")

TRAIN = ["train", "--layers", "16,10", "--val-split", "0.1", "--quiet"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_logs(log_dir: Path, csv_log: Path, history: bp.History) -> None:
    """Every key of ``history`` as TensorBoard scalars (``val_*`` in the validation run) and as
    CSV columns, every epoch a step and a row."""
    with open(csv_log, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["epoch", *history.history] and [int(r[0]) for r in rows[1:]] == history.epochs
    runs = {}
    for run in ("train", "validation"):
        runs[run] = event_accumulator.EventAccumulator(str(log_dir / run), size_guidance={"scalars": 0})
        runs[run].Reload()
    for column, (key, values) in enumerate(history.history.items(), start=1):
        assert [float(r[column]) for r in rows[1:]] == values, key
        run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
        events = runs[run].Scalars(tag)
        assert [e.step for e in events] == history.epochs, key
        np.testing.assert_array_equal(np.float32([e.value for e in events]), np.float32(values), err_msg=key)


def test_train_writes_tensorboard_events_and_a_csv_log_and_resuming_continues_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir, csv_log, ckpt = tmp_path / "tb", tmp_path / "log.csv", tmp_path / "run.npz"
    outputs = ["--tensorboard", str(log_dir), "--csv-log", str(csv_log), "--checkpoint", str(ckpt)]
    code, _out, err = run_cli(capsys, *TRAIN, "--epochs", "3", *outputs)
    assert code == 0, err
    history = bp.load_checkpoint(ckpt).history
    assert list(history.history) == ["loss", "accuracy", "lr", "val_loss", "val_accuracy"]
    check_logs(log_dir, csv_log, history)
    code, _out, err = run_cli(capsys, "train", "--resume", str(ckpt), "--epochs", "5", "--quiet", *outputs[:4])
    assert code == 0, err
    history = bp.load_checkpoint(ckpt).history
    assert history.epochs == [1, 2, 3, 4, 5]
    check_logs(log_dir, csv_log, history)


@pytest.mark.parametrize("problem", ["csv folder", "csv is a folder", "csv is the checkpoint", "tensorboard is a file",
                                     "no tensorboardX", "csv is no log"])  # fmt: skip
def test_outputs_that_cannot_be_written_are_refused_in_one_paragraph(
    problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("name,value\n")
    options, expected = {
        "csv folder": (["--csv-log", str(tmp_path / "missing" / "log.csv")], "does not exist; create it first"),
        "csv is a folder": (["--csv-log", str(tmp_path)], "that is a folder; give a file name"),
        "csv is the checkpoint": (["--csv-log", str(a_file), "--checkpoint", str(a_file)], "give another name"),
        "tensorboard is a file": (["--tensorboard", str(a_file)], "that is a file; give a folder"),
        "no tensorboardX": (["--tensorboard", str(tmp_path / "tb")], "pip install 'backprop-nn[tensorboard]'"),
        "csv is no log": (["--csv-log", str(a_file), "--resume", "RUN"], "does not start with an 'epoch' column"),
    }[problem]
    if problem == "no tensorboardX":
        monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if it were not installed
    if "RUN" in options:
        ckpt = tmp_path / "run.npz"
        assert main([*TRAIN, "--epochs", "1", "--checkpoint", str(ckpt)]) == 0
        options[options.index("RUN")] = str(ckpt)
        capsys.readouterr()
    code, _out, err = run_cli(capsys, *TRAIN, "--epochs", "2", *options)
    last = err.splitlines()[-1]  # after any note (a resumed schedule's)
    assert code in (1, 2) and last.startswith("backprop train: error: ") and expected in last, err
    assert "Traceback" not in err and "append=False" not in err
    assert a_file.read_text() == "name,value\n"
