"""Issue #16: a model trained by ``backprop train`` carries its standardisation (a first
`bp.Standardize` layer) and its class labels, so that ``bp.load_checkpoint(path).model``
gives on raw features exactly what ``backprop predict`` writes; checkpoints of older versions
(the standardiser in ``extra``, no labels on the model) still predict, evaluate and resume as
they did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main
from backprop.datasets import Standardizer

NAMES = ["setosa", "versicolor", "virginica"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flowers(path: Path, n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An iris-like CSV file: string labels, features of very different scales and offsets
    (so that skipping the standardisation would give other predictions)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    centres = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    X = (centres[labels] + rng.standard_normal((n, 3))) * [100.0, 0.01, 1.0] + [1000.0, -3.0, 0.0]
    rows = [f"{a:.6g},{NAMES[k]},{b:.6g},{c:.6g}" for (a, b, c), k in zip(X, labels)]
    path.write_text("length,species,width,height\n" + "\n".join(rows) + "\n")
    return np.array([[float(v) for v in (r.split(",")[0], r.split(",")[2], r.split(",")[3])] for r in rows]), labels


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    folder = tmp_path_factory.mktemp("iris")
    table = folder / "flowers.csv"
    X, labels = flowers(table)
    ckpt = folder / "flowers.npz"
    assert main(["train", "--data", f"csv:{table}:label=species", "--layers", "16,3", "--epochs", "30", "--dropout",
                 "0", "--checkpoint", str(ckpt), "--quiet"]) == 0
    return table, ckpt, X, labels


def test_the_loaded_model_labels_raw_features_as_predict_does(
    iris: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, ckpt, X, labels = iris
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(table),
                           "--output", str(tmp_path / "labels.npy"))
    assert code == 0, err
    written = np.load(tmp_path / "labels.npy")
    model = bp.load_checkpoint(ckpt).model
    assert isinstance(model.layers[0], bp.Standardize)
    assert model.classes.tolist() == NAMES
    ours = model.predict_labels(X)  # raw features, as in the file
    np.testing.assert_array_equal(ours, written)
    assert np.mean(ours == np.array(NAMES)[labels]) >= 0.9  # and they are right
    # the statistics are the training part's: a standardiser fitted on it gives the same inputs
    assert "standardizer" not in bp.load_checkpoint(ckpt).extra


def test_the_loaded_regression_model_predicts_what_predict_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "sine.npz"
    code, _, err = run_cli(capsys, "train", "--data", "sine", "--layers", "16,1", "--activation", "tanh",
                           "--epochs", "5", "--checkpoint", str(ckpt), "--quiet")
    assert code == 0, err
    x = np.linspace(-3, 3, 13).reshape(-1, 1)
    np.save(tmp_path / "x.npy", x)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy"))
    assert code == 0, err
    model = bp.load_checkpoint(ckpt).model
    assert model.classes is None and isinstance(model.layers[0], bp.Standardize)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), bp.to_numpy(model.predict(x)).astype(np.float64))


# ---------------------------------------------------------------------------------- older files
def old_checkpoint(new: Path, path: Path) -> tuple[bp.Sequential, Standardizer, dict[str, Any]]:
    """The file an older version wrote for the same run: the model without its Standardize
    layer, the standardiser and class labels in ``extra`` only (made from a new file's parts)."""
    saved = bp.load_checkpoint(new, dtype="float64")
    first = saved.model.layers[0]
    scaler = Standardizer.from_dict({"kind": "Standardizer", "mean": first.mean.tolist(), "scale": first.std.tolist()})
    rest = [bp.layers.layer_from_config(bp.layers.layer_config(layer)) for layer in saved.model.layers[1:]]
    model = bp.Sequential(*rest, dtype="float32", seed=saved.model.seed)
    state = saved.model.state_dict()
    model.load_state_dict({f"{int(k.split('.')[0]) - 1}.{k.split('.', 1)[1]}": v for k, v in state.items()
                           if not k.startswith("0.")})
    optimizer = bp.optim.Adam(model.parameters(), lr=saved.extra["args"]["lr"])
    extra = {**saved.extra, "standardizer": scaler.to_dict()}
    model.save(path, optimizer, epoch=saved.epoch, history=saved.history, extra=extra)
    return model, scaler, extra


def test_an_older_file_predicts_evaluates_and_resumes_as_before(
    iris: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, new, X, _ = iris
    old = tmp_path / "old.npz"
    model, scaler, extra = old_checkpoint(new, old)
    loaded = bp.load_checkpoint(old)
    assert loaded.model.classes is None and not isinstance(loaded.model.layers[0], bp.Standardize)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(old), "--input", str(table),
                           "--output", str(tmp_path / "old.npy"), "--probabilities", str(tmp_path / "p.npy"))
    assert code == 0, err
    # what the older version computed: its standardiser on the host, then the model, then extra's labels
    outputs = bp.to_numpy(model.predict(scaler.transform(X).astype(np.float32)))
    np.testing.assert_array_equal(np.load(tmp_path / "old.npy"), np.array(extra["classes"])[outputs.argmax(axis=1)])
    assert np.load(tmp_path / "p.npy").shape == (len(X), 3)
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(old), "--part", "all")
    assert code == 0 and "accuracy" in out, err
    code, _, err = run_cli(capsys, "train", "--resume", str(old), "--epochs", str(extra["args"]["epochs"] + 2),
                           "--quiet")
    assert code == 0, err
    resumed = bp.load_checkpoint(old)
    assert resumed.epoch == extra["args"]["epochs"] + 2
    assert "standardizer" in resumed.extra and not isinstance(resumed.model.layers[0], bp.Standardize)


def test_a_new_file_resumes_with_raw_features(
    iris: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, new, X, labels = iris
    copy = tmp_path / "copy.npz"
    copy.write_bytes(new.read_bytes())
    before = bp.load_checkpoint(copy).model.state_dict()
    code, _, err = run_cli(capsys, "train", "--resume", str(copy), "--epochs", "40", "--quiet")
    assert code == 0, err
    resumed = bp.load_checkpoint(copy)
    after = resumed.model.state_dict()
    np.testing.assert_array_equal(after["0.mean"], before["0.mean"])  # the statistics stay the first run's
    assert "standardizer" not in resumed.extra and resumed.model.classes.tolist() == NAMES
    assert np.mean(resumed.model.predict_labels(X) == np.array(NAMES)[labels]) >= 0.9


def test_too_large_after_standardising_is_refused_before_the_model_runs(
    iris: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ckpt, _, _ = iris
    np.save(tmp_path / "x.npy", np.full((2, 3), 3e38))
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.csv"))
    assert code == 1
    assert "after standardising with the training statistics, too large for the model's float32" in err
    assert not (tmp_path / "y.csv").exists()


@pytest.mark.parametrize("loss", ["mse", "bce", "bce_with_logits"])
def test_a_binary_model_labels_as_predict_does_whatever_its_loss(
    loss: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "xor.npz"
    code, _, err = run_cli(capsys, "train", "--data", "xor", "--loss", loss, "--layers", "8,1", "--epochs", "40",
                           "--lr", "0.05", "--checkpoint", str(ckpt), "--quiet")
    assert code == 0, err
    X = np.random.default_rng(5).uniform(-0.5, 1.5, size=(200, 2))
    np.save(tmp_path / "x.npy", X)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy"))
    assert code == 0, err
    model = bp.load_checkpoint(ckpt).model
    assert model.threshold == (0.5 if loss == "mse" else None)  # mse regresses onto 0/1: cut halfway
    written = np.load(tmp_path / "y.npy")
    assert len(set(written.tolist())) == 2  # both labels occur: the cut matters
    np.testing.assert_array_equal(model.predict_labels(X), written)
