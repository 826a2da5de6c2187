"""The command line: ``backprop train | evaluate | predict | gradcheck | devices``.

Most tests call `backprop.cli.main` in-process (it returns the exit status); a few run
``python -m backprop`` in a subprocess to check the real entry point and its output.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.backends.cuda import GpuInfo
from backprop.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["train", "evaluate", "predict", "gradcheck", "devices"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` with its exit status, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(out: str, part: str = "test") -> float:
    match = re.search(rf"^{part}: loss [\d.]+, accuracy ([\d.]+)%", out, flags=re.MULTILINE)
    assert match, out
    return float(match.group(1))


def assert_one_paragraph_error(err: str, prog: str) -> None:
    """An expected error: one non-empty paragraph naming the command, no traceback."""
    assert err.startswith(f"{prog}: error: "), err
    assert "\n\n" not in err.strip() and "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err


def python_m(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # the checkout first, anything already on the path after it (where dependencies come from)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, "-m", "backprop", *argv]
    return subprocess.run(command, check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of a short digits run, shared by the evaluate/predict/gradcheck tests."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    assert main(["train", "--epochs", "8", "--checkpoint", str(path), "--quiet"]) == 0
    return path


# ------------------------------------------------------------------------------------ train
def test_defaults_train_a_digits_classifier_above_97_percent(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "train", "--quiet")
    assert code == 0, err
    assert accuracy(out) >= 97.0
    lines = out.strip().splitlines()
    assert len(lines) == 2  # --quiet: only the result lines
    assert re.fullmatch(r"time: [\d.]+s for 60 epochs on cpu", lines[1])
    assert "(360 samples)" in lines[0]


def test_train_reports_progress_and_settings_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "train", "--epochs", "3", "--val-split", "0.1", "--layers", "32,10")
    assert code == 0
    assert "data: digits: 1293 training, 144 validation, 360 test samples; 64 features, 10 classes" in out
    assert "Dense(64, 32) -> ReLU() -> Dropout(0.5) -> Dense(32, 10)" in out
    assert re.search(r"^ +loss .*val_loss", out, flags=re.MULTILINE)  # the table's column names
    assert re.search(r"^epoch 3/3 ", out, flags=re.MULTILINE)
    assert accuracy(out) > 50


def test_train_progress_fits_80_columns_with_the_validation_values(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(capsys, "train", "--epochs", "100", "--val-split", "0.1", "--layers", "8,10",
                           "--batch-size", "256")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith(("epoch", " "))]
    assert len(table) == 22 and all(len(line) <= 80 for line in table), table
    assert "val_loss" in table[0].split() and "val_acc" in table[0].split()
    assert all(re.fullmatch(r"epoch +\d+/100( +[\d.e+-]+){4,}.*", line) for line in table[1:]), table
    assert "steps/s" in table[0] and not re.search(r"\d\.\d+e\+\d", out)  # no 1.006e+04 steps/s


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_train_wraps_its_header_lines_on_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["train", "--epochs", "2", "--val-split", "0.1"]) == 0
    lines = terminal.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    text = " ".join(line.strip() for line in lines)
    model = "Standardize(64) -> Dense(64, 128) -> ReLU() -> Dropout(0.5) -> Dense(128, 10)"
    assert f"model: {model}: 9,610 parameters" in text


def test_python_m_backprop_runs_the_cli(tmp_path: Path) -> None:
    done = python_m("train", "--data", "xor", "--layers", "8,1", "--epochs", "300", "--batch-size", "4",
                    "--lr", "0.05", "--dropout", "0", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.match(r"training data \(no held-out set\): loss [\d.]+, accuracy 100\.00% \(4 samples\)", done.stdout)
    assert done.stderr == ""


def test_python_m_backprop_usage_error_is_one_paragraph(tmp_path: Path) -> None:
    done = python_m("train", "--activation", "swish", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_paragraph_error(done.stderr, "backprop train")
    assert "relu" in done.stderr and "tanh" in done.stderr


def test_diverged_training_exits_1_with_advice(tmp_path: Path) -> None:
    done = python_m("train", "--data", "sine", "--optimizer", "sgd", "--lr", "1e6", "--dropout", "0",
                    "--epochs", "3", "--checkpoint", "run.npz", cwd=tmp_path)
    assert done.returncode == 1
    assert_one_paragraph_error(done.stderr, "backprop train")
    assert "training diverged" in done.stderr and "--clip-grad-norm" in done.stderr
    assert "RuntimeWarning" not in done.stderr


def test_csv_classification_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    centres = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    labels = rng.integers(0, 3, size=150)
    X = centres[labels] + rng.standard_normal((150, 3))
    table = tmp_path / "flowers.csv"
    rows = [f"{a:.4f},{names[k]},{b:.4f},{c:.4f}" for (a, b, c), k in zip(X, labels)]
    table.write_text("length,species,width,height\n" + "\n".join(rows) + "\n")
    ckpt = tmp_path / "flowers.npz"
    spec = f"csv:{table}:label=species"
    code, out, err = run_cli(capsys, "train", "--data", spec, "--layers", "16,3", "--epochs", "30",
                             "--dropout", "0", "--checkpoint", str(ckpt), "--quiet")
    assert code == 0, err
    assert accuracy(out) >= 90 and "(30 samples)" in out
    # predict on the file itself: the header names the features, so the label column is skipped
    labels_csv = tmp_path / "labels.csv"
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(table),
                             "--output", str(labels_csv))
    assert code == 0, err
    predicted = labels_csv.read_text().split()
    assert predicted[0] == "species" and set(predicted[1:]) <= set(names)
    assert np.mean(np.array(predicted[1:]) == np.array(names)[labels]) >= 0.9
    # a new file, its columns in another order: evaluated on every row, columns matched by name
    new = tmp_path / "new.csv"
    picks = rng.permutation(150)[:20]
    rows = [f"{names[labels[i]]},{X[i, 2]:.4f},{X[i, 1]:.4f},{X[i, 0]:.4f}" for i in picks]
    new.write_text("species,height,width,length\n" + "\n".join(rows) + "\n")
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt), "--data", f"csv:{new}:label=species")
    assert code == 0, err
    assert accuracy(out, "new all") >= 90 and "(20 samples)" in out
    # a file of one class cannot be loaded as a data set (bp.datasets.load_csv needs 2 classes): exit 1, the reason
    one = tmp_path / "one.csv"
    one.write_text("length,species,width,height\n0.1,setosa,0.2,5.1\n-0.3,setosa,0.1,4.8\n")
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt), "--data", f"csv:{one}:label=species")
    assert code == 1
    assert_one_paragraph_error(err, "backprop evaluate")
    assert "at least 2 classes" in err


def test_sine_regression_predicts_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "sine.npz"
    code, out, err = run_cli(capsys, "train", "--data", "sine", "--layers", "32,1", "--activation", "tanh",
                             "--dropout", "0", "--epochs", "100", "--lr", "0.01", "--checkpoint", str(ckpt), "--quiet")
    assert code == 0, err
    assert re.match(r"test: loss [\d.]+ \(52 samples\)", out) and "accuracy" not in out
    x = np.linspace(-2, 2, 9).reshape(-1, 1)
    np.save(tmp_path / "x.npy", x)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy"))
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (9, 1)
    assert np.abs(y - np.sin(x)).max() < 0.3
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                           "--output", "y.npy", "--probabilities", "p.npy")
    assert code == 1 and "no class probabilities" in err


def test_metrics_by_name_are_reported_per_epoch_and_on_the_test_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "train", "--data", "sine", "--layers", "16,1", "--epochs", "2", "--metrics",
                             "mae,r2")  # fmt: skip
    assert code == 0, err
    assert re.search(r"^ +loss +mae +r2 ", out, flags=re.MULTILINE), out  # the table's header
    assert re.search(r"^epoch 2/2 +[\d.]+ +[\d.]+ +-?[\d.]+ ", out, flags=re.MULTILINE), out
    assert re.search(r"^test: loss [\d.]+, mae [\d.]+, r2 -?[\d.]+ \(52 samples\)", out, flags=re.MULTILINE), out
    code, _, err = run_cli(capsys, "train", "--data", "sine", "--metrics", "f1")
    assert code == 2 and "f1 needs a classification loss" in err


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves" / "run.png"
    code, out, err = run_cli(capsys, "train", "--epochs", "2", "--val-split", "0.1", "--plot", str(png), "--quiet")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out.strip().splitlines()) == 2


def test_early_stopping_holds_out_validation_and_keeps_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "run.npz"
    code, out, err = run_cli(capsys, "train", "--epochs", "30", "--early-stopping", "0", "--checkpoint", str(ckpt))
    assert code == 0, err
    assert "144 validation" in out  # 10% of the training part, by default with early stopping
    saved = bp.load_checkpoint(ckpt)
    assert saved.extra["args"]["val_split"] == 0.1
    assert len(saved.history) < 30  # patience 0 stops at the first epoch without improvement
    assert f"early stopping: kept the weights of epoch {len(saved.history) - 1} " in out
    # the checkpoint holds the best weights, the model that was reported
    test_line = next(line for line in out.splitlines() if line.startswith("test: "))
    code, evaluated, _ = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt))
    assert code == 0 and f"digits {test_line}" in evaluated


# ------------------------------------------------------------------------------------ model files
def test_layers_from_json_and_toml_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_file = tmp_path / "model.json"
    json_file.write_text(json.dumps({"activation": "tanh", "layers": [24, {"units": 12, "activation": "gelu",
                                                                         "dropout": 0.1}, 10]}))
    toml_file = tmp_path / "model.toml"
    toml_file.write_text('dropout = 0.0\nactivation = "tanh"\n\n[[layers]]\nunits = 24\n\n'
                         '[[layers]]\nunits = 12\nactivation = "gelu"\ndropout = 0.1\n\n[[layers]]\nunits = 10\n')
    # --dropout fills in where the file says nothing (JSON); the file's own setting wins (TOML)
    expected = {
        json_file: "Standardize(64) -> Dense(64, 24) -> Tanh() -> Dropout(0.3) -> Dense(24, 12) -> GELU() -> "
        "Dropout(0.1) -> Dense(12, 10)",
        toml_file: "Standardize(64) -> Dense(64, 24) -> Tanh() -> Dense(24, 12) -> GELU() -> Dropout(0.1) -> "
        "Dense(12, 10)",
    }
    if sys.version_info < (3, 11):  # TOML needs tomllib (or tomli) there
        del expected[toml_file]
    for model_file, layers in expected.items():
        ckpt = tmp_path / f"{model_file.suffix[1:]}.npz"
        code, out, err = run_cli(capsys, "train", "--layers", str(model_file), "--epochs", "1", "--dropout", "0.3",
                                 "--checkpoint", str(ckpt))
        assert code == 0, err
        assert f"model: {layers}: " in out
        assert repr(bp.load(ckpt).layers[2]) == "Tanh()"  # after Standardize and Dense


def test_toml_without_tomllib_or_tomli_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_file = tmp_path / "model.toml"
    model_file.write_text("layers = [16, 10]\n")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10 without tomli
    monkeypatch.setitem(sys.modules, "tomli", None)
    code, _, err = run_cli(capsys, "train", "--layers", str(model_file))
    assert code == 2
    assert_one_paragraph_error(err, "backprop train")
    assert "Python 3.11+" in err and "pip install tomli" in err and ".json" in err


def test_model_file_errors_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"units": 8, "activaton": "relu"}, 10]}))
    code, _, err = run_cli(capsys, "train", "--layers", str(bad))
    assert code == 2
    assert_one_paragraph_error(err, "backprop train")
    assert "'activaton'" in err and "units, activation, dropout, init" in err


# ------------------------------------------------------------------------------------ resume
class _InterruptAtEpoch3(bp.progress.Progress):
    def start_epoch(self, epoch: int) -> None:
        if epoch == 3:
            raise KeyboardInterrupt
        super().start_epoch(epoch)


@pytest.mark.parametrize("how", ["interrupted", "extended"])
def test_resume_equals_an_uninterrupted_run(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["--dtype", "float64", "--val-split", "0.1", "--layers", "32,10"]
    if how == "extended":
        common += ["--lr-schedule", "constant"]  # a cosine schedule depends on the planned total
    full, part = tmp_path / "full.npz", tmp_path / "part.npz"
    assert main(["train", *common, "--epochs", "4", "--checkpoint", str(full), "--quiet"]) == 0
    if how == "interrupted":
        with monkeypatch.context() as patch:
            patch.setattr("backprop.callbacks.progress.Progress", _InterruptAtEpoch3)
            code, _, err = run_cli(capsys, "train", *common, "--epochs", "4", "--checkpoint", str(part))
        assert code == 130
        assert_one_paragraph_error(err, "backprop train")
        assert f"epoch 2 is saved in {part}" in err and "--resume" in err
        resume = ["train", "--resume", str(part)]
    else:
        assert main(["train", *common, "--epochs", "2", "--checkpoint", str(part), "--quiet"]) == 0
        resume = ["train", "--resume", str(part), "--epochs", "4"]
    capsys.readouterr()
    code, out, err = run_cli(capsys, *resume)
    assert code == 0, err
    assert "resuming" in out
    assert re.search(r"^epoch 3/4 ", out, flags=re.MULTILINE) and re.search(r"^epoch 4/4 ", out, flags=re.MULTILINE)
    a, b = bp.load_checkpoint(full), bp.load_checkpoint(part)
    assert a.epoch == b.epoch == 4
    assert b.history.epochs == [1, 2, 3, 4]
    assert a.history.to_dict() == b.history.to_dict()
    for name, value in a.model.state_dict().items():
        assert np.array_equal(value, b.model.state_dict()[name]), name  # bit for bit
    assert a.optimizer is not None and b.optimizer is not None
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(np.asarray(sa[k]), np.asarray(sb[k])) for k in sa)


def test_resume_keeps_the_runs_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "run.npz"
    assert main(["train", "--epochs", "1", "--layers", "16,10", "--checkpoint", str(ckpt), "--quiet"]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, "train", "--resume", str(ckpt), "--epochs", "2", "--layers", "64,10",
                           "--lr", "0.5", "--quiet")
    assert code == 0, err
    assert "--layers 64,10 is ignored: the architecture comes from the checkpoint" in err
    assert "--lr 0.5 is ignored: the resumed run keeps its own (0.002)" in err
    saved = bp.load_checkpoint(ckpt)
    assert saved.epoch == 2 and saved.model.layers[1].out_features == 16  # layers[0]: Standardize


# ------------------------------------------------------------------------------------ evaluate / predict
def test_checkpoint_stores_what_evaluate_and_predict_need(trained: Path) -> None:
    extra = bp.load_checkpoint(trained).extra
    assert extra["data"] == "digits" and extra["loss"] == "cross_entropy" and extra["task"] == "classification"
    assert extra["classes"] == list(range(10))
    model = bp.load_checkpoint(trained).model  # the model standardises its inputs and knows its labels
    assert isinstance(model.layers[0], bp.Standardize) and model.layers[0].features == 64
    assert "standardizer" not in extra and model.classes.tolist() == list(range(10))
    assert extra["args"]["epochs"] == 8 and extra["args"]["layers"] is None


def test_evaluate_matches_the_training_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "run.npz"
    code, trained_out, _ = run_cli(capsys, "train", "--epochs", "3", "--checkpoint", str(ckpt), "--quiet")
    assert code == 0
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt))
    assert code == 0, err
    assert re.search(r"^digits test: loss [\d.]+, accuracy [\d.]+% \(360 samples\)", out, flags=re.MULTILINE)
    assert trained_out.splitlines()[0].split(": ", 1)[1] == out.splitlines()[1].split(": ", 1)[1]
    code, out, _ = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt), "--part", "all")
    assert code == 0 and "(1797 samples)" in out


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_predict_writes_original_labels_and_probabilities(
    suffix: str, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = bp.datasets.digits()
    inputs = tmp_path / f"X{suffix}"
    if suffix == ".csv":
        np.savetxt(inputs, ds.X_test, delimiter=",", fmt="%g")
    else:
        np.save(inputs, ds.X_test)
    out_file, proba_file = tmp_path / f"labels{suffix}", tmp_path / f"proba{suffix}"
    code, out, err = run_cli(capsys, "predict", "--checkpoint", str(trained), "--input", str(inputs),
                             "--output", str(out_file), "--probabilities", str(proba_file))
    assert code == 0, err
    assert "predicted 360 samples" in out
    if suffix == ".csv":
        labels = np.loadtxt(out_file, skiprows=1, dtype=np.int64)
        assert out_file.read_text().startswith("digit\n")
        proba = np.loadtxt(proba_file, delimiter=",", skiprows=1)
        assert proba_file.read_text().startswith("0,1,2,3,4,5,6,7,8,9\n")
    else:
        labels, proba = np.load(out_file), np.load(proba_file)
    assert labels.shape == (360,) and proba.shape == (360, 10)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(labels, proba.argmax(axis=1))
    model = bp.load(trained)  # standardises the raw features itself
    expected = bp.to_numpy(model.predict(ds.X_test)).argmax(axis=1)
    assert np.array_equal(labels, expected)
    assert np.array_equal(labels, model.predict_labels(ds.X_test))
    assert np.mean(labels == ds.y_test) > 0.9


def test_predict_rejects_a_wrong_feature_count(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "X.npy"
    np.save(inputs, np.zeros((5, 63)))
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(trained), "--input", str(inputs),
                           "--output", str(tmp_path / "y.csv"))
    assert code == 1
    assert_one_paragraph_error(err, "backprop predict")
    assert "has 63 features per sample but the model takes 64" in err
    assert not (tmp_path / "y.csv").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_a_damaged_checkpoint_exits_1_with_one_paragraph(
    damage: str, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.npz"
    if damage == "garbage":
        bad.write_bytes(b"this is not a checkpoint\n" * 10)
    elif damage == "truncated":
        bad.write_bytes(trained.read_bytes()[:3000])
    for argv in (["evaluate", "--checkpoint", str(bad)], ["train", "--resume", str(bad)],
                 ["predict", "--checkpoint", str(bad), "--input", "x.npy", "--output", "y.npy"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 1, argv
        assert_one_paragraph_error(err, f"backprop {argv[0]}")
        assert f"cannot load checkpoint {str(bad)!r}" in err


# ------------------------------------------------------------------------------------ gradcheck
def test_gradcheck_passes_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "gradcheck", "--layers", "6,5,2", "--activation", "tanh",
                             "--loss", "bce_with_logits", "--features", "3")
    assert code == 0, err
    assert re.search(r"^0\.W +[\d.e+-]+ +18 +\d+ +0 +0$", out, flags=re.MULTILINE)  # checked, near 0, failed, kinks
    assert "gradient check OK" in out


def test_gradcheck_on_a_checkpoint(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "gradcheck", "--checkpoint", str(trained), "--batch", "4")
    assert code == 0, err
    assert "batch: 4 samples of 64 features, loss cross_entropy" in out and "gradient check OK" in out


def test_gradcheck_fails_for_a_wrong_backward(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bp.Dense._backward

    def wrong(self: bp.Dense, *args: object, **kwargs: object) -> object:
        dX = original(self, *args, **kwargs)
        self.W.grad = self.W.grad * 1.01  # a 1% error in dW
        return dX

    monkeypatch.setattr(bp.Dense, "_backward", wrong)
    code, out, err = run_cli(capsys, "gradcheck")
    assert code == 1
    assert "gradient check FAILED" in out
    assert_one_paragraph_error(err, "backprop gradcheck")
    assert "0.W" in err and "2.W" in err and "0.b" not in err


# ------------------------------------------------------------------------------------ devices
def test_devices_lists_the_cpu_and_the_gpus_or_why_not(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(capsys, "devices")
    gpus, reason = bp.backends.cuda_gpus()
    assert code == 0 and out.startswith("cpu ")
    assert (f"no usable CUDA GPU: {reason}" in out) if not gpus else ("cuda:0" in out)
    fake = GpuInfo(index=0, name="Fake GPU", total_memory=8 * 2**30, compute_capability="9.0")
    monkeypatch.setattr("backprop.cli.devices.cuda_gpus", lambda: ([fake], None))
    code, out, _ = run_cli(capsys, "devices")
    assert code == 0 and "cuda:0  Fake GPU  8.0 GiB  compute capability 9.0" in out


def test_cuda_without_a_gpu_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backprop.cli.devices.cuda_gpus", lambda: ([], "no NVIDIA driver was found"))
    for argv in (["train", "--device", "cuda"], ["gradcheck", "--device", "cuda:0"],
                 ["evaluate", "--checkpoint", "x.npz", "--device", "cuda"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 1 and out == ""
        assert_one_paragraph_error(err, f"backprop {argv[0]}")
        assert "no NVIDIA driver was found" in err and "use --device cpu" in err
    fake = GpuInfo(index=0, name="Fake GPU", total_memory=2**30, compute_capability="8.0")
    monkeypatch.setattr("backprop.cli.devices.cuda_gpus", lambda: ([fake], None))
    code, _, err = run_cli(capsys, "train", "--device", "cuda:3")
    assert code == 1 and "cuda:0 to cuda:0" in err


def test_cuda_on_this_machine_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    gpus, reason = bp.backends.cuda_gpus()
    if gpus:
        pytest.skip("a CUDA GPU is usable here")
    code, _, err = run_cli(capsys, "train", "--device", "cuda")
    assert code == 1
    assert_one_paragraph_error(err, "backprop train")
    assert str(reason).split(":")[0] in err and "--device cpu" in err


# ------------------------------------------------------------------------------------ help and usage
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert "examples:" in out
    assert re.search(rf"^  backprop {command or 'train'}\b", out, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("argv", "valid"),
    [
        (["train", "--activation", "swish"], ["gelu", "leaky_relu", "relu", "sigmoid", "tanh"]),
        (["train", "--optimizer", "lbfgs"], ["adagrad", "adam", "adamw", "rmsprop", "sgd"]),
        (["train", "--loss", "hinge"], ["bce", "bce_with_logits", "cross_entropy", "mse"]),
        (["train", "--device", "gpu"], ["'cpu'", "'cuda'", "'cuda:N'"]),
        (["train", "--data", "mnist"], ["xor", "digits", "sine", "csv:PATH"]),
        (["train", "--dtype", "float16"], ["float32", "float64"]),
        (["train", "--lr-schedule", "step"], ["constant", "cosine"]),
        (["train", "--loss", "mse"], ["cross_entropy"]),
        (["train", "--layers", "64,3"], ["--layers 64,10"]),
        (["train", "--layers", "64,relu,10"], ["128,10"]),
        (["train", "--metrics", "f2"], ["accuracy"]),  # f1 exists since issue #16
        (["train", "--epochs", "0"], [">= 1"]),
        (["train", "--val-split", "1.5"], ["fraction"]),
        (["train", "--momentum", "0.9"], ["sgd and rmsprop"]),
        (["gradcheck", "--activation", "swish"], ["relu", "tanh"]),
        (["evaluate"], ["--checkpoint"]),
        (["predict", "--checkpoint", "x.npz", "--input", "x.npy"], ["--output"]),
        (["fit"], ["train", "evaluate", "predict", "gradcheck", "devices"]),
        ([], ["train", "evaluate", "predict", "gradcheck", "devices"]),
    ],
)
def test_usage_errors_exit_2_and_list_the_valid_values(
    argv: list[str], valid: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    prog = "backprop" if not argv or argv[0] == "fit" else f"backprop {argv[0]}"
    assert_one_paragraph_error(err, prog)
    assert out == ""
    for value in valid:
        assert value in err
