"""The data layer: built-in data sets, CSV loading and its errors, splits, standardisation."""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
import backprop.datasets as bd
from backprop.datasets import DataError, Dataset, Standardizer


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_partition(ds: Dataset, n: int) -> None:
    train, test = ds.train_rows, ds.test_rows
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))


# ---------------------------------------------------------------------- built-in data sets
def test_xor_is_the_four_samples_with_test_equal_to_train() -> None:
    ds = bd.xor()
    assert ds.X_train.dtype == np.float32 and ds.X_train.shape == (4, 2)
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (4, 1)
    np.testing.assert_array_equal(ds.X_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train[:, 0], [0, 1, 1, 0])
    assert ds.test_is_train and ds.task == "classification" and ds.n_classes == 2
    np.testing.assert_array_equal(ds.X_test, ds.X_train)
    assert not np.shares_memory(ds.X_test, ds.X_train)
    assert (ds.out_features, ds.loss) == (1, "bce_with_logits")


def test_digits_shapes_dtypes_and_description() -> None:
    ds = bd.digits()
    assert ds.X_train.shape == (1437, 64) and ds.X_test.shape == (360, 64)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.y_train.shape == (1437,)
    assert ds.task == "classification" and ds.n_classes == 10 and ds.classes == tuple(range(10))
    assert ds.feature_names[0] == "pixel_0_0" and ds.feature_names[-1] == "pixel_7_7" and len(ds.feature_names) == 64
    assert (ds.out_features, ds.loss, ds.n_features) == (10, "cross_entropy", 64)
    assert ds.X_train.min() == 0 and ds.X_train.max() == 16
    json.dumps(ds.metadata())  # serialisable for a checkpoint
    assert_partition(ds, 1797)
    X, y = bd.digits_arrays()
    np.testing.assert_array_equal(ds.X_train, X[ds.train_rows])
    np.testing.assert_array_equal(ds.y_test, y[ds.test_rows])


def test_digits_split_is_deterministic_per_seed_and_stratified() -> None:
    a, b, c = bd.digits(seed=3), bd.digits(seed=3), bd.digits(seed=4)
    np.testing.assert_array_equal(a.test_rows, b.test_rows)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.test_rows, c.test_rows)
    _, y = bd.digits_arrays()
    counts, test_counts = np.bincount(y), np.bincount(a.y_test, minlength=10)
    assert np.all(np.abs(test_counts - counts * 360 / 1797) < 1)  # each class within one sample of its share
    assert bd.digits(test_size=0.5).n_test == 899


def test_digits_equals_scikit_learns_copy() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    ours_X, ours_y = bd.digits_arrays()
    np.testing.assert_array_equal(ours_X, X)
    np.testing.assert_array_equal(ours_y, y)


def test_digits_loads_without_scikit_learn() -> None:
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import backprop.datasets as bd\n"
        "print(bd.digits().n_train, 'sklearn' in sys.modules and sys.modules['sklearn'] is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1437", "False"]


def test_sine_is_a_seeded_regression_set() -> None:
    ds = bd.sine(n=100, noise=0.0, seed=1)
    assert ds.task == "regression" and ds.n_classes is None and ds.classes is None
    assert ds.X_train.shape == (80, 1) and ds.y_train.shape == (80, 1) and ds.y_train.dtype == np.float32
    np.testing.assert_allclose(ds.y_train, np.sin(ds.X_train), atol=1e-6)
    assert np.abs(ds.X_train).max() <= np.pi
    assert_partition(ds, 100)
    np.testing.assert_array_equal(bd.sine(seed=2).X_test, bd.sine(seed=2).X_test)
    assert not np.array_equal(bd.sine(seed=2).X_test, bd.sine(seed=3).X_test)
    noisy = bd.sine(n=2000, noise=0.1, seed=0)
    assert 0.08 < float(np.std(noisy.y_train - np.sin(noisy.X_train))) < 0.12
    assert (ds.out_features, ds.loss) == (1, "mse")
    with pytest.raises(DataError, match="n >= 2"):
        bd.sine(n=1)


# ---------------------------------------------------------------------- splits
def test_split_indices_plain_and_stratified() -> None:
    train, test = bd.split_indices(10, 0.3, seed=0)
    assert len(test) == 3 and len(train) == 7 and np.all(np.diff(train) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(10))
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    train, test = bd.split_indices(100, 0.2, seed=5, stratify=labels)
    np.testing.assert_array_equal(np.bincount(labels[test]), [10, 6, 4])
    np.testing.assert_array_equal(bd.split_indices(100, 0.2, seed=5, stratify=labels)[1], test)
    assert len(bd.split_indices(30, 0.1)[1]) == 3  # 0.1 * 30 is 3.0000000000000004 in floating point


@pytest.mark.parametrize(("n", "size", "match"), [
    (1, 0.2, "too few samples"), (0, 0.2, "too few samples"), (2, 0.9, "no training samples"),
    (10, 0.0, "between 0 and 1"), (10, 1.0, "between 0 and 1"), (10, True, "between 0 and 1"),
])
def test_split_indices_errors(n: int, size: float, match: str) -> None:
    with pytest.raises(DataError, match=match):
        bd.split_indices(n, size)


def test_dataset_checks_hand_built_fields() -> None:
    X = np.zeros((4, 2), np.float32)
    with pytest.raises(DataError, match="feature names"):
        Dataset(X, np.zeros(4, np.int64), X, np.zeros(4, np.int64), "classification", "t", ("a",), 2, (0, 1))
    with pytest.raises(DataError, match="task must be"):
        Dataset(X, np.zeros(4, np.int64), X, np.zeros(4, np.int64), "clustering", "t", ("a", "b"))
    with pytest.raises(DataError, match=r"lie in 0\.\.1"):
        Dataset(X, np.full(4, 2, np.int64), X, np.zeros(4, np.int64), "classification", "t", ("a", "b"), 2, (0, 1))
    with pytest.raises(DataError, match="class indices"):
        Dataset.from_arrays(X, np.array([0.5, 1, 0, 1]), task="classification", name="t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        bd.xor().name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------- CSV: happy paths
def test_csv_with_header_and_default_label(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 0.5},{(3, 7, 9)[i % 3]}" for i in range(30))
    ds = bd.load_csv(write(tmp_path, "a,b,kind\n" + rows + "\n\n"), test_size=0.2, seed=0)
    assert ds.feature_names == ("a", "b") and ds.target_name == "kind" and ds.name == "data"
    assert ds.task == "classification" and ds.classes == (3, 7, 9) and ds.n_classes == 3
    assert ds.y_train.dtype == np.int64 and ds.X_train.dtype == np.float32 and ds.n_test == 6
    X = np.array([[i, i * 0.5] for i in range(30)], dtype=np.float32)
    y = np.array([(3, 7, 9)[i % 3] for i in range(30)])
    np.testing.assert_array_equal(ds.X_train, X[ds.train_rows])
    np.testing.assert_array_equal(np.array(ds.classes)[ds.y_test], y[ds.test_rows])  # classes[y] = original label
    np.testing.assert_array_equal(np.bincount(ds.y_test), [2, 2, 2])
    assert_partition(ds, 30)


def test_csv_without_header_label_by_index(tmp_path: Path) -> None:
    text = "".join(f"{i % 2},{i}.5,{-i}\n" for i in range(10))
    path = write(tmp_path, text)
    for label in (0, "0", -3, "column 0"):
        ds = bd.load_csv(path, label=label, seed=1)
        assert ds.feature_names == ("column 1", "column 2") and ds.target_name == "column 0"
        assert ds.task == "classification" and ds.classes == (0, 1)
    forced = bd.load_csv(write(tmp_path, "1,2,0\n3,4,1\n5,6,1\n7,8,0\n"), header=True)
    assert forced.feature_names == ("1", "2") and forced.n_train + forced.n_test == 3


def test_csv_label_by_name_regression_and_task_override(tmp_path: Path) -> None:
    path = write(tmp_path, "price,x1,x2\n" + "".join(f"{100 + i * 7},{i},{i * i % 5}\n" for i in range(20)))
    assert bd.load_csv(path, label="price").task == "classification"  # whole numbers: classes by default
    ds = bd.load_csv(path, label="price", task="regression")
    assert ds.task == "regression" and ds.y_train.shape == (16, 1) and ds.y_train.dtype == np.float32
    assert ds.feature_names == ("x1", "x2") and ds.classes is None
    np.testing.assert_array_equal(ds.y_test[:, 0], 100 + 7 * ds.test_rows)
    fractional = bd.load_csv(write(tmp_path, "x,y\n" + "".join(f"{i},{i / 4}\n" for i in range(8)), "f.csv"))
    assert fractional.task == "regression" and fractional.n_classes is None


def test_csv_text_labels_quoting_bom_and_gzip(tmp_path: Path) -> None:
    text = '\ufefflength,"width, cm",species\n' + "".join(
        f"{i}.1,{i % 4},{'setosa' if i % 2 else 'virginica'}\n" for i in range(12)
    )
    ds = bd.load_csv(write(tmp_path, text))
    assert ds.feature_names == ("length", "width, cm") and ds.classes == ("setosa", "virginica")
    np.testing.assert_array_equal(ds.y_test, (ds.test_rows % 2 == 0).astype(np.int64))
    packed = tmp_path / "iris.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    again = bd.load_csv(packed)
    assert again.name == "iris"
    np.testing.assert_array_equal(again.X_train, ds.X_train)
    semicolon_text = text.replace(",", ";").replace('"width; cm"', "w")
    semicolons = bd.load_csv(write(tmp_path, semicolon_text, "s.csv"), delimiter=";")
    assert semicolons.feature_names == ("length", "w")


# ---------------------------------------------------------------------- CSV: errors
@pytest.mark.parametrize(("text", "kwargs", "match"), [
    ("", {}, "is empty"),
    ("\n  \n", {}, "is empty"),
    ("a,b,y\n", {}, "header row but no data rows"),
    ("a,b,y\n1,2,0\n3,4\n5,6,1\n", {}, r"line 3 has 2 values but the header \(line 1\) has 3"),
    ("1,2,0\n3,4,1,\n", {}, r"line 2 has 4 values .*trailing delimiter"),
    ("a,b,y\n1,2,0\n3,x7,1\n", {}, r"line 3, column 'b': 'x7' is not a number"),
    ("a,b,y\n1,,0\n3,4,1\n", {}, r"line 2, column 'b': missing value"),
    ("a,b,y\n1,NA,0\n3,4,1\n", {}, r"line 2, column 'b': missing value \('NA'\)"),
    ("a,b,y\n1,2,0\n3,4,?\n", {}, r"line 3, label column 'y': missing label"),
    ("a,b,y\n1,inf,0\n3,4,1\n", {}, r"line 2, column 'b': 'inf' is not a finite number"),
    ("a,b,y\n1,2,0\n3,4,1\n", {"label": "z"}, r"no column 'z'; its columns are 'a' \(0\), 'b' \(1\), 'y' \(2\)"),
    ("a,b,y\n1,2,0\n3,4,1\n", {"label": 3}, r"has 3 columns, so label index 3 does not exist"),
    ("a,b,y\n1,2,0\n3,4,cat\n", {}, r"mixes numbers and text \(line 2 has '0', line 3 has 'cat'\)"),
    ("a,b,y\n1,2,5\n3,4,5\n", {}, r"single value 5 in all 2 rows.*task='regression'"),
    ("a,b,y\n1,2,x\n3,4,z\n", {"task": "regression"}, "regression needs numbers"),
    ("a,b,y\n1,2,0\n", {}, "too few samples to split"),
    ("a;b;y\n1;2;0\n3;4;1\n", {}, "only one column.*delimiter"),
    ("a,a,y\n1,2,0\n3,4,1\n", {}, r"names column 'a' twice \(columns 0 and 1\)"),
    ("a,b,y\n1,2,0\n3,4,1\n", {"task": "guess"}, "task must be one of"),
    ('a,b,y\n1,2,0\n3,"4,1\n', {}, "line 3 has 2 values"),
])
def test_csv_errors_say_what_to_fix(tmp_path: Path, text: str, kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        bd.load_csv(write(tmp_path, text), **kwargs)


def test_csv_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CSV file not found: .*nope\.csv"):
        bd.load_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        bd.load_csv(tmp_path)
    (tmp_path / "latin.csv").write_bytes("a,b,\xe9\n1,2,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        bd.load_csv(tmp_path / "latin.csv")


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------------- load(spec)
def test_load_spec_forms(tmp_path: Path) -> None:
    assert bd.load("xor").test_is_train
    assert bd.load(" Digits ", test_size=0.5, seed=2).n_test == 899
    assert bd.load("sine", seed=4).task == "regression"
    path = write(tmp_path, "y,a,b\n" + "".join(f"{i % 2},{i},{i * 2}\n" for i in range(10)))
    ds = bd.load(f"csv:{path}:label=y", test_size=0.3, seed=1)
    assert ds.target_name == "y" and ds.feature_names == ("a", "b") and ds.n_test == 3
    np.testing.assert_array_equal(ds.test_rows, bd.load_csv(path, label="y", test_size=0.3, seed=1).test_rows)
    assert bd.load(f"csv:{path}:label=0:task=regression").task == "regression"
    assert bd.load(f"csv:{path}").target_name == "b"
    bare = write(tmp_path, "".join(f"{i + 10},{i % 2},{i + 100}\n" for i in range(10)), "bare.csv")
    assert bd.load(f"csv:{bare}:header=no:label=1").feature_names == ("column 0", "column 2")
    assert bd.load(f"csv:{bare}:label=0:header=yes").feature_names == ("10", "100")  # a header name wins


@pytest.mark.parametrize(("spec", "match"), [
    ("mnist", r"unknown data set 'mnist': use one of xor, digits, sine, csv:PATH, csv:PATH:label=COLUMN"),
    ("data.csv", r"a CSV file\? write csv:data.csv"),
    ("csv:", "has no file path"),
    ("csv:x.csv:lable=y", "unknown option 'lable'"),
    ("csv:x.csv:label=", "empty label="),
    ("csv:x.csv:task=guess", "task must be one of"),
    ("csv:x.csv:label=a:label=b", "label= twice"),
])
def test_load_spec_errors(spec: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        bd.load(spec)


# ---------------------------------------------------------------------- Standardizer
def test_standardizer_uses_training_statistics_only(rng: np.random.Generator) -> None:
    train = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    test = rng.normal(-1.0, 5.0, size=(20, 4)).astype(np.float32)
    scaler = Standardizer().fit(train)
    expected = (test.astype(np.float64) - train.astype(np.float64).mean(0)) / train.astype(np.float64).std(0)
    out = scaler.transform(test)
    assert out.dtype == np.float32 and out.shape == test.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    fitted = scaler.transform(train)
    np.testing.assert_allclose(fitted.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(fitted.std(0), 1, rtol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(out), test, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(Standardizer().fit_transform(train), fitted)


def test_standardizer_constant_feature_is_centred_not_divided() -> None:
    train = np.array([[1.0, 0.1], [2.0, 0.1], [3.0, 0.1]])
    scaler = Standardizer().fit(train)
    assert scaler.scale[1] == 1.0
    out = scaler.transform(train)
    assert np.isfinite(out).all() and np.all(out[:, 1] == 0)
    np.testing.assert_allclose(scaler.transform(np.array([[2.0, 0.6]])), [[0.0, 0.5]], atol=1e-12)
    zeros = Standardizer().fit(np.zeros((5, 2), np.float32)).transform(np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(zeros, [[1, 1]])


def test_standardizer_never_modifies_its_input() -> None:
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    before = X.copy()
    X.flags.writeable = False
    scaler = Standardizer()
    out = scaler.fit_transform(X)
    scaler.transform(X)
    np.testing.assert_array_equal(X, before)
    assert not np.shares_memory(out, X)
    assert Standardizer().fit(np.arange(6).reshape(3, 2)).transform(np.arange(6).reshape(3, 2)).dtype == np.float64


def test_standardizer_round_trips_through_json(rng: np.random.Generator) -> None:
    X = rng.normal(size=(30, 5)) * [1, 10, 100, 0, 1e-3] + [0, -5, 7, 2, 1]
    scaler = Standardizer().fit(X)
    state = json.loads(json.dumps(scaler.to_dict()))
    again = Standardizer.from_dict(state)
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.scale, scaler.scale)
    np.testing.assert_array_equal(again.transform(X), scaler.transform(X))
    assert again.n_features == 5 and "n_features=5" in repr(again)


def test_standardizer_errors() -> None:
    with pytest.raises(DataError, match="not fitted yet: call fit"):
        Standardizer().transform(np.zeros((2, 3)))
    scaler = Standardizer().fit(np.zeros((2, 3)))
    with pytest.raises(DataError, match="fitted on 3 features but transform got 4"):
        scaler.transform(np.zeros((2, 4)))
    with pytest.raises(DataError, match=r"2-D.*reshape\(1, -1\)"):
        scaler.transform(np.zeros(3))
    with pytest.raises(DataError, match="NaN or Inf"):
        Standardizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(DataError, match="at least one sample"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(DataError, match="to_dict"):
        Standardizer.from_dict({"mean": [0.0]})
    with pytest.raises(DataError, match="not positive"):
        Standardizer.from_dict({"kind": "Standardizer", "mean": [0.0], "scale": [0.0]})


def test_dataset_standardize_fits_on_the_training_part() -> None:
    ds = bd.digits(seed=1)
    scaled, scaler = ds.standardize()
    np.testing.assert_allclose(scaler.mean, ds.X_train.astype(np.float64).mean(0), atol=1e-9)
    np.testing.assert_array_equal(scaled.X_test, scaler.transform(ds.X_test))
    np.testing.assert_array_equal(scaled.y_train, ds.y_train)
    assert scaled.X_train.dtype == np.float32 and np.isfinite(scaled.X_train).all()
    assert ds.X_train.max() == 16  # the original is unchanged


# ---------------------------------------------------------------------- end to end
def test_small_model_learns_digits_well_above_chance() -> None:
    data, _ = bd.digits(seed=0).standardize()
    model = bp.Sequential(bp.Dense(data.n_features, 32, init="he"), bp.ReLU(), bp.Dense(32, data.out_features), seed=0)
    model.fit(data.X_train, data.y_train, loss=data.loss, optimizer=bp.optim.Adam(model.parameters(), lr=0.01),
              epochs=3, batch_size=64, verbose=0)
    accuracy = float(np.mean(bp.to_numpy(model.predict(data.X_test)).argmax(axis=1) == data.y_test))
    assert accuracy > 0.85  # chance is 0.1
