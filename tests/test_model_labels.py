"""model.classes and model.predict_labels: the labels a classifier gives, on every backend,
saved in checkpoints (and absent from the files of older versions), bad labels refused."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.checkpoint.archive import write_archive
from backprop.checkpoint.save import checkpoint_contents
from helpers import host


def test_several_outputs_give_the_label_of_the_largest(device: bp.Device, rng: np.random.Generator) -> None:
    X = rng.standard_normal((40, 4))
    model = bp.Sequential(bp.Dense(4, 3), device=device, seed=0)
    index = host(model.predict(X)).argmax(axis=1)
    assert len(set(index.tolist())) > 1  # a test that can tell labels apart
    np.testing.assert_array_equal(model.predict_labels(X), index)  # no classes: the indices
    model.classes = ["setosa", "versicolor", "virginica"]
    labels = model.predict_labels(X, batch_size=7)
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, np.array(["setosa", "versicolor", "virginica"])[index])


@pytest.mark.parametrize(("last", "default"), [((bp.Sigmoid(),), 0.5), ((), 0.0)], ids=["probabilities", "logits"])
def test_one_output_is_thresholded(last: tuple, default: float, rng: np.random.Generator) -> None:
    X = rng.standard_normal((50, 2))
    model = bp.Sequential(bp.Dense(2, 1), *last, dtype="float64", seed=3)
    model.classes = [-1, 7]
    outputs = host(model.predict(X))[:, 0]
    assert ((outputs > default).any()) and ((outputs <= default).any())
    np.testing.assert_array_equal(model.predict_labels(X), np.where(outputs > default, 7, -1))
    cut = float(np.median(outputs))
    np.testing.assert_array_equal(model.predict_labels(X, threshold=cut), np.where(outputs > cut, 7, -1))


def test_classes_are_saved_and_loaded(tmp_path, rng: np.random.Generator) -> None:
    X = rng.standard_normal((20, 4))
    for classes in (["b", "a", "c"], [10, 20, 30], [0.5, 1.5, 2.5]):
        model = bp.Sequential(bp.Dense(4, 3), seed=0)
        model.classes = classes
        model.save(tmp_path / "m.npz")
        loaded = bp.load_checkpoint(tmp_path / "m.npz").model
        np.testing.assert_array_equal(loaded.classes, np.array(classes))
        assert loaded.classes.dtype == np.array(classes).dtype
        np.testing.assert_array_equal(loaded.predict_labels(X), model.predict_labels(X))
    model.classes = None
    model.save(tmp_path / "none.npz")
    assert bp.load_checkpoint(tmp_path / "none.npz").model.classes is None


def test_a_file_of_an_older_version_has_no_classes(tmp_path) -> None:
    metadata, arrays = checkpoint_contents(bp.Sequential(bp.Dense(4, 3), seed=0))
    del metadata["classes"]  # as files written before class labels were saved
    write_archive(tmp_path / "old.npz", metadata, arrays)
    assert bp.load_checkpoint(tmp_path / "old.npz").model.classes is None


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([0, 0, 1], "must be distinct"),
        ([True, False, True], "all strings or all numbers"),
        (["a", 1, 2], "all strings or all numbers"),
        ([1.0, float("nan"), 2.0], "finite"),
        (["a", "b"], "2 labels but the model has 3 outputs"),
    ],
)
def test_damaged_labels_in_a_file_are_refused(tmp_path, classes: list, message: str) -> None:
    metadata, arrays = checkpoint_contents(bp.Sequential(bp.Dense(4, 3), seed=0))
    metadata["classes"] = classes
    write_archive(tmp_path / "bad.npz", metadata, arrays)
    with pytest.raises(bp.CheckpointError, match=f"class labels.*{message}"):
        bp.load_checkpoint(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ("abc", "list or 1-D array"),
        ([], "non-empty"),
        ([[0, 1], [2, 3]], "1-D"),
        (["x", "x", "y"], "distinct"),
        ([None, 1, 2], "all strings or all numbers"),
        ([1, 2], "2 labels but the model has 3 outputs, so 3 classes"),
    ],
)
def test_bad_classes_are_refused_with_the_fix(classes, message: str) -> None:
    model = bp.Sequential(bp.Dense(4, 3), seed=0)
    with pytest.raises((ValueError, TypeError), match=message):
        model.classes = classes
    assert model.classes is None


def test_classes_are_read_only_and_a_binary_model_has_two() -> None:
    model = bp.Sequential(bp.Dense(4, 1), seed=0)
    model.classes = np.array(["no", "yes"])
    with pytest.raises(ValueError, match="read-only"):
        model.classes[0] = "maybe"


def test_the_models_threshold_is_its_default_cut_and_saved(tmp_path, rng: np.random.Generator) -> None:
    X = rng.standard_normal((60, 2))
    model = bp.Sequential(bp.Dense(2, 1), dtype="float64", seed=3)
    outputs = host(model.predict(X))[:, 0]
    model.threshold = float(np.quantile(outputs, 0.3))
    expected = (outputs > model.threshold).astype(np.int64)
    assert 0 < expected.sum() < len(X)
    np.testing.assert_array_equal(model.predict_labels(X), expected)
    model.save(tmp_path / "m.npz")
    loaded = bp.load_checkpoint(tmp_path / "m.npz", dtype="float64").model
    assert loaded.threshold == model.threshold
    np.testing.assert_array_equal(loaded.predict_labels(X), expected)
    with pytest.raises(ValueError, match="threshold must be a float"):
        model.predict_labels(X, threshold="half")
