"""``--task`` and ``--delimiter``: whole-number regression targets and CSV files that are not
comma-separated, through train, evaluate, predict and gradcheck; the defaults of each task."""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main
from backprop.cli.settings import for_task, resolve_settings
from backprop.datasets import DataError
from backprop.datasets.csv_table import sniff_delimiter
from backprop.datasets.spec import load


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_counts(path: Path, delimiter: str = ",", rows: int = 160) -> Path:
    """Two features and a whole-number target with many values (a count, a score): what
    ``--task auto`` alone reads as dozens of classes."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(rows, 2))
    y = np.rint(40 + 25 * X[:, 0] - 10 * X[:, 1]).astype(int)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["a", "b", "score"])
        writer.writerows([[f"{u:.5f}", f"{v:.5f}", int(t)] for (u, v), t in zip(X, y)])
    return path


TRAIN = ("--epochs", "3", "--layers", "8,1", "--dropout", "0", "--quiet")


@pytest.mark.parametrize(("given", "loss"), [("mse", "mse"), ("mae", "mae"), ("l1", "mae"), ("huber", "huber")])
def test_a_regression_loss_alone_trains_whole_number_targets_as_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, loss: str
) -> None:
    data = write_counts(tmp_path / "counts.csv")
    ckpt = tmp_path / "run.npz"
    code, out, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--loss", given, *TRAIN[:-1],
                             "--checkpoint", str(ckpt))
    assert code == 0, err
    assert f"--loss {loss} implies --task regression" in err
    assert "features, regression" in out and "accuracy" not in out

    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt))
    assert code == 0, err
    assert "counts test: loss" in out and "accuracy" not in out

    predicted = tmp_path / "pred.csv"
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(data),
                             "--output", str(predicted))
    assert code == 0, err
    assert "values written" in out
    lines = predicted.read_text().splitlines()
    values = np.array([float(v) for v in lines[1:]])
    assert lines[0] == "score" and len(values) == 160
    assert not np.all(values == np.rint(values))  # values of a regression, not class labels

    code, out, err = run_cli(capsys, "gradcheck", "--checkpoint", str(ckpt))
    assert code == 0, err
    assert f"loss {loss}" in out
    assert type(bp.load_checkpoint(ckpt).extra["loss"]) is str and bp.load_checkpoint(ckpt).extra["loss"] == loss


def test_task_option_picks_the_task_and_refuses_what_does_not_fit(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = write_counts(tmp_path / "counts.csv")
    code, out, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--task", "regression", *TRAIN)
    assert code == 0, err
    assert "accuracy" not in out and "implies" not in err
    code, out, err = run_cli(capsys, "train", "--data", f"csv:{data}", *TRAIN[:4], "--quiet")  # auto: classes
    assert code == 2 and "output layer has 1 units" in err and "classes" in err
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--task", "classification", "--loss", "mse",
                           *TRAIN)
    assert code == 2
    assert "--loss mse does not fit the class labels" in err and "--task regression" in err
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--task", "regression", "--loss", "cross_entropy",
                           *TRAIN)
    assert code == 2 and "does not fit the regression targets of counts: use mse, mae or huber" in err
    code, _, err = run_cli(capsys, "train", "--data", "digits", "--task", "regression", *TRAIN)
    assert code == 1 and "digits is a classification data set" in err and "CSV" in err
    code, _, err = run_cli(capsys, "train", "--task", "values", *TRAIN)
    assert code == 2 and "auto" in err and "regression" in err


@pytest.mark.parametrize(("delimiter", "given"), [(";", None), (";", ";"), ("\t", "tab"), ("\t", "\\t"),
                                                  ("|", None)])
def test_delimiter_sniffed_or_given_for_train_evaluate_and_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   delimiter: str, given: str | None) -> None:
    data = write_counts(tmp_path / "counts.csv", delimiter)
    option = [] if given is None else ["--delimiter", given]
    ckpt = tmp_path / "run.npz"
    code, out, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--task", "regression", *TRAIN, *option,
                             "--checkpoint", str(ckpt))
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt))
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt), "--data", f"csv:{data}", "--part", "all",
                             *option)
    assert code == 0 and "(160 samples)" in out, err
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(data), "--output", "-",
                             *option)
    assert code == 0, err
    assert len(out.splitlines()) == 1 + 160


def test_a_wrong_or_misplaced_delimiter_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_counts(tmp_path / "counts.csv", ";")
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--delimiter", ",", *TRAIN)
    assert code == 1 and "only one column" in err
    code, _, err = run_cli(capsys, "train", "--delimiter", ";", *TRAIN)
    assert code == 1 and "delimiter applies to CSV files" in err
    for bad in ("ab", "x", ""):
        code, _, err = run_cli(capsys, "train", "--data", f"csv:{data}", "--delimiter", bad, *TRAIN)
        assert code == 2 and "tab" in err, err


def test_sniffing_prefers_the_delimiter_that_splits_every_line_into_numbers() -> None:
    assert sniff_delimiter("a;b;y\n1;2;0\n3;4;1\n") == ";"
    assert sniff_delimiter("a\tb\n1.5\t2\n") == "\t"
    assert sniff_delimiter("a|b\n1|2\n") == "|"
    assert sniff_delimiter("a,b;c\n1,5;2\n") == ","  # both split evenly: the one giving numbers wins
    assert sniff_delimiter("a;b\n1,5;2,5\n") == ";"  # decimal commas: only ';' splits every line alike
    assert sniff_delimiter("x\n1\n") == ","


def test_load_passes_task_and_delimiter_to_csv_files_only(tmp_path: Path) -> None:
    data = write_counts(tmp_path / "counts.csv", ";")
    assert load(f"csv:{data}", delimiter="auto").task == "classification"
    assert load(f"csv:{data}", delimiter=";", task="regression").task == "regression"
    assert load(f"csv:{data}:task=regression", delimiter=";", task="regression").task == "regression"
    with pytest.raises(DataError, match="task=classification but task regression"):
        load(f"csv:{data}:task=classification", delimiter=";", task="regression")
    with pytest.raises(DataError, match="built-in"):
        load("sine", delimiter=";")
    assert load("sine", task="regression").task == "regression"


def test_regression_defaults_to_no_dropout_and_a_constant_rate(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "sine.npz"
    code, out, err = run_cli(capsys, "train", "--data", "sine", "--checkpoint", str(ckpt))
    assert code == 0, err
    assert "Dense(1, 128) -> ReLU() -> Dense(128, 1)" in out and "constant lr" in out
    mse = float(re.search(r"^test: loss ([\d.]+)", out, flags=re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert mse < 0.05  # 0.115 with the classifier's dropout 0.5 and cosine schedule; the noise floor is 0.01
    saved = bp.load_checkpoint(ckpt).extra["args"]
    assert saved["dropout"] == 0.0 and saved["lr_schedule"] == "constant"  # a resumed run keeps them
    code, out, err = run_cli(capsys, "train", "--data", "sine", "--dropout", "0.2", "--lr-schedule", "cosine",
                             "--epochs", "1")
    assert code == 0 and "Dropout(0.2)" in out and "cosine schedule" in out, err
    code, out, err = run_cli(capsys, "train", "--epochs", "1", "--layers", "8,10")
    assert code == 0 and "Dropout(0.5)" in out and "cosine schedule" in out, err  # classification as before


def test_for_task_fills_in_only_what_was_not_given() -> None:
    settings = resolve_settings(argparse.Namespace(dropout=0.3))
    assert settings.dropout == 0.3 and settings.lr_schedule is None
    assert for_task(settings, "regression").dropout == 0.3
    assert for_task(settings, "regression").lr_schedule == "constant"
    assert for_task(settings, "classification").lr_schedule == "cosine"
    assert for_task(resolve_settings(argparse.Namespace()), "classification").dropout == 0.5
