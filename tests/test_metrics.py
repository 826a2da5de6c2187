"""Every metric against scikit-learn's on random data, on every backend: one batch, several
batches added up (the state is summed, then finalised once) and the edge cases where a ratio's
denominator is 0 (scikit-learn's ``zero_division=0``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.metrics import get_metrics

metrics_sk = pytest.importorskip("sklearn.metrics")

CE, BCE, LOGITS, MSE = (bp.losses.SoftmaxCrossEntropy(), bp.losses.BCE(), bp.losses.BCEWithLogits(), bp.losses.MSE())


def on_device(device: bp.Device, P: np.ndarray, T: np.ndarray) -> tuple[bp.backends.Backend, Any, Any]:
    backend = bp.backends.Backend(device, "float64")
    with backend.activate():
        Pd = backend.from_host(P)
        Td = backend.from_host(T, dtype=backend.xp.int64) if T.ndim == 1 else backend.from_host(T)
    return backend, Pd, Td


def computed(metric: bp.metrics.Metric, device: bp.Device, P: np.ndarray, T: np.ndarray, batches: int) -> float:
    """The metric over ``(P, T)`` split into ``batches`` parts: states summed, result once."""
    backend, Pd, Td = on_device(device, P, T)
    n = P.shape[0]
    bounds = np.linspace(0, n, batches + 1).astype(int)
    with backend.activate():
        states = [metric.batch_state(backend.xp, Pd[a:b, ...], Td[a:b, ...]) for a, b in itertools.pairwise(bounds)]
    size = metric.state_size()
    host = np.asarray(backend.to_floats(states)).reshape(batches, size)
    return metric.result(host.sum(axis=0).tolist(), float(n))


# (metric name, loss, outputs, data maker, scikit-learn on (P, T))
Case = tuple[str, Any, int, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]], Callable[..., float]]


def multiclass(rng: np.random.Generator, n: int = 97, c: int = 5) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, c)), rng.integers(0, c, n)


def binary(rng: np.random.Generator, n: int = 97, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.0, 1.0, (n, k)), rng.integers(0, 2, (n, k)).astype(np.float64)


def logits(rng: np.random.Generator, n: int = 97) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 1)), rng.integers(0, 2, (n, 1)).astype(np.float64)


def regression(rng: np.random.Generator, n: int = 97, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    T = rng.standard_normal((n, k)) * 2.0 + 1.0
    return T + rng.standard_normal((n, k)), T


def labels_of(P: np.ndarray) -> np.ndarray:
    return P.argmax(axis=1)


def sk_confusion(fn: Callable[..., float], average: str) -> Callable[..., float]:
    def score(P: np.ndarray, T: np.ndarray, loss: Any) -> float:
        if loss is CE:
            return fn(T, labels_of(P), average=average, zero_division=0)
        predicted = (P > (0.5 if loss is BCE else 0.0)).astype(int)
        if P.shape[1] == 1:
            return fn(T[:, 0].astype(int), predicted[:, 0], zero_division=0)
        return fn(T.astype(int), predicted, average=average, zero_division=0)

    return score


CASES: list[Case] = [
    ("accuracy", CE, 5, multiclass, lambda P, T, loss: metrics_sk.accuracy_score(T, labels_of(P))),
    ("accuracy", BCE, 1, binary, lambda P, T, loss: metrics_sk.accuracy_score(T[:, 0], P[:, 0] > 0.5)),
    ("top_k_accuracy", CE, 7, lambda rng: multiclass(rng, c=7),
     lambda P, T, loss: metrics_sk.top_k_accuracy_score(T, P, k=5, labels=range(7))),
    ("top_2_accuracy", CE, 5, multiclass,
     lambda P, T, loss: metrics_sk.top_k_accuracy_score(T, P, k=2, labels=range(5))),
    ("mae", MSE, 1, regression, lambda P, T, loss: metrics_sk.mean_absolute_error(T, P)),
    ("mae", MSE, 3, lambda rng: regression(rng, k=3), lambda P, T, loss: metrics_sk.mean_absolute_error(T, P)),
    ("mse", MSE, 3, lambda rng: regression(rng, k=3), lambda P, T, loss: metrics_sk.mean_squared_error(T, P)),
    ("mse", BCE, 1, binary, lambda P, T, loss: metrics_sk.mean_squared_error(T, P)),  # the Brier score
    ("r2", MSE, 1, regression, lambda P, T, loss: metrics_sk.r2_score(T, P)),
    ("r2", MSE, 3, lambda rng: regression(rng, k=3), lambda P, T, loss: metrics_sk.r2_score(T, P)),
]  # fmt: skip
for _name, _fn in (("precision", metrics_sk.precision_score), ("recall", metrics_sk.recall_score),
                   ("f1", metrics_sk.f1_score)):  # fmt: skip
    CASES += [
        (_name, CE, 5, multiclass, sk_confusion(_fn, "macro")),
        (_name, BCE, 1, binary, sk_confusion(_fn, "binary")),
        (_name, LOGITS, 1, logits, sk_confusion(_fn, "binary")),
        (_name, BCE, 3, lambda rng: binary(rng, k=3), sk_confusion(_fn, "macro")),
    ]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{type(c[1]).__name__}-{c[2]}" for c in CASES])
def test_metric_matches_sklearn_in_one_batch_and_many(case: Case, device: bp.Device) -> None:
    name, loss, outputs, make, sk = case
    P, T = make(np.random.default_rng(5))
    assert P.shape[1] == outputs
    (metric,) = get_metrics([name], loss, outputs)
    expected = sk(P, T, loss)
    assert 0.0 < abs(expected) < 1.0 or name in ("mae", "mse")  # not a trivial value
    one = computed(metric, device, P, T, 1)
    many = computed(metric, device, P, T, 7)
    assert one == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert many == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
@pytest.mark.parametrize("cls", [bp.metrics.Precision, bp.metrics.Recall, bp.metrics.F1])
def test_every_average_matches_sklearn(cls: Any, average: str, device: bp.Device) -> None:
    fn = {"precision": metrics_sk.precision_score, "recall": metrics_sk.recall_score, "f1": metrics_sk.f1_score}
    rng = np.random.default_rng(3)
    P, y = multiclass(rng, 80, 4)
    metric = cls(average=average).bind(CE, 4)
    assert computed(metric, device, P, y, 5) == pytest.approx(fn[cls.name](y, P.argmax(axis=1), average=average))
    Pb, Tb = binary(rng, 80, 3)  # multi-label
    metric = cls(average=average).bind(BCE, 3)
    expected = fn[cls.name](Tb.astype(int), (Pb > 0.5).astype(int), average=average, zero_division=0)
    assert computed(metric, device, Pb, Tb, 5) == pytest.approx(expected)


def test_a_class_never_predicted_counts_as_precision_zero(device: bp.Device) -> None:
    """Class 2 occurs in the targets but is never the argmax: its precision is 0 (no
    division by zero), its recall 0, and the macro average includes it, as scikit-learn's with
    ``zero_division=0``. Class 3 occurs nowhere: scikit-learn leaves it out, and so do we."""
    rng = np.random.default_rng(11)
    P, y = multiclass(rng, 60, 4)
    P[:, 2] -= 100.0  # never predicted
    P[:, 3] -= 100.0
    y[y == 3] = 2  # class 3 absent from the targets too
    assert (y == 2).any() and not (P.argmax(axis=1) >= 2).any()
    for name, fn in (("precision", metrics_sk.precision_score), ("recall", metrics_sk.recall_score),
                     ("f1", metrics_sk.f1_score)):  # fmt: skip
        (metric,) = get_metrics([name], CE, 4)
        expected = fn(y, P.argmax(axis=1), average="macro", zero_division=0)
        assert computed(metric, device, P, y, 3) == pytest.approx(expected), name


def test_binary_edge_cases_follow_zero_division_zero(device: bp.Device) -> None:
    """No positive prediction: precision 0; no positive target: recall 0; neither: F1 0."""
    T = np.array([[0.0], [1.0], [0.0], [1.0]])
    never = np.full((4, 1), 0.2)  # every probability below 0.5
    none_true = np.zeros((4, 1))
    for name, fn in (("precision", metrics_sk.precision_score), ("recall", metrics_sk.recall_score),
                     ("f1", metrics_sk.f1_score)):  # fmt: skip
        (metric,) = get_metrics([name], BCE, 1)
        for P, target in ((never, T), (never, none_true), (np.full((4, 1), 0.9), none_true)):
            expected = fn(target[:, 0].astype(int), (P[:, 0] > 0.5).astype(int), zero_division=0)
            assert computed(metric, device, P, target, 2) == expected, (name, P[:, 0], target[:, 0])


def test_r2_of_a_constant_target_is_that_of_sklearn(device: bp.Device) -> None:
    T = np.column_stack([np.full(10, 2.0), np.linspace(-1.0, 1.0, 10)])
    for P in (T + 0.5, T.copy()):
        (metric,) = get_metrics(["r2"], MSE, 2)
        assert computed(metric, device, P, T, 3) == pytest.approx(metrics_sk.r2_score(T, P))


def test_r2_of_targets_far_from_zero_keeps_its_digits_in_a_float32_model(device: bp.Device) -> None:
    """Targets of mean 1e4 and spread 1: ``sum T^2 - (sum T)^2 / N`` cancels eight digits, all
    that float32 sums hold (Keras' and torchmetrics' R2 return noise here); float64 sums keep
    the rest. Compared with scikit-learn on the same float32 values."""
    rng = np.random.default_rng(2)
    T = (1e4 + rng.standard_normal((500, 2))).astype(np.float32)
    P = (T + 0.3 * rng.standard_normal((500, 2))).astype(np.float32)
    expected = metrics_sk.r2_score(T.astype(np.float64), P.astype(np.float64))
    backend = bp.backends.Backend(device, "float32")
    with backend.activate():
        Pd, Td = backend.from_host(P), backend.from_host(T)
        (metric,) = get_metrics(["r2"], MSE, 2)
        xp = backend.xp
        states = [metric.batch_state(xp, Pd[a : a + 100, ...], Td[a : a + 100, ...]) for a in range(0, 500, 100)]
    sums = np.asarray(backend.to_floats(states)).reshape(5, 6).sum(axis=0)
    assert metric.result(sums.tolist(), 500.0) == pytest.approx(expected, rel=1e-6)


def test_precision_recall_and_f1_count_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """They keep the same counts: one `batch_state` per batch serves all three, in `fit` and
    in `evaluate`, with the values each gives alone."""
    from backprop.metrics.confusion import ConfusionMetric  # noqa: PLC0415 - its batch_state is counted

    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((90, 5)), rng.integers(0, 3, 90)
    names = ["precision", "recall", "f1"]

    def run(metrics: list[str]) -> tuple[dict, dict]:
        model = bp.Sequential(bp.Dense(5, 3), seed=0)
        history = model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=2, batch_size=30, verbose=0,
                            metrics=metrics)  # fmt: skip
        return {k: history[k] for k in metrics}, model.evaluate(X, y, loss="cross_entropy", metrics=metrics)

    alone = [run([name]) for name in names]
    calls: list[int] = []
    real = ConfusionMetric.batch_state
    monkeypatch.setattr(ConfusionMetric, "batch_state", lambda self, *a: calls.append(1) or real(self, *a))
    together, evaluated = run(names)
    assert len(calls) == 2 * 3 + 1  # 2 epochs of 3 batches, and one evaluation batch: once each
    for name, (history, scores) in zip(names, alone):
        assert together[name] == history[name] and evaluated[name] == scores[name]
    assert bp.metrics.Precision(average="micro").bind(CE, 3).state_key() == bp.metrics.F1().bind(CE, 3).state_key()
    assert bp.metrics.Precision().bind(CE, 3).state_key() != bp.metrics.Precision().bind(BCE, 3).state_key()


def test_metrics_refuse_what_they_cannot_measure() -> None:
    with pytest.raises(ValueError, match="precision needs a classification loss"):
        get_metrics(["precision"], MSE, 1)
    with pytest.raises(ValueError, match="top_k_accuracy needs integer class labels"):
        get_metrics(["top_k_accuracy"], BCE, 3)
    with pytest.raises(ValueError, match=r"k=5 needs more than 5 classes, but the model has 5 outputs"):
        get_metrics(["top_k_accuracy"], CE, 5)
    with pytest.raises(ValueError, match="r2 compares outputs with targets"):
        get_metrics(["r2"], CE, 3)
    with pytest.raises(ValueError, match=r"unknown metric 'auc': use one of acc, accuracy, f1"):
        get_metrics(["auc"], CE, 3)
    with pytest.raises(ValueError, match="'accuracy' given twice"):
        get_metrics(["acc", bp.metrics.Accuracy()], CE, 3)
    with pytest.raises(bp.InvalidParameterError, match="F1 average must be 'macro', 'weighted' or 'micro'"):
        bp.metrics.F1(average="binary")
    with pytest.raises(bp.InvalidParameterError, match="TopKAccuracy k must be a positive integer"):
        bp.metrics.TopKAccuracy(0)
    with pytest.raises(ValueError, match="not bound to a model"):
        bp.metrics.F1().state_size()
    with pytest.raises(TypeError, match="metrics must be names or bp.metrics.Metric objects"):
        get_metrics([3], CE, 3)


def test_binding_leaves_the_users_instance_alone() -> None:
    mine = bp.metrics.F1()
    (bound,) = get_metrics([mine], CE, 4)
    assert bound is not mine and bound.state_size() == 12 and mine.outputs is None


def test_early_stopping_maximises_the_metrics_that_improve_upwards() -> None:
    up = ["val_accuracy", "val_top_3_accuracy", "val_precision", "val_recall", "f1", "val_r2", "my_acc"]
    down = ["val_loss", "loss", "val_mae", "mse"]
    assert [bp.EarlyStopping(monitor=key).maximize for key in up] == [True] * len(up)
    assert [bp.EarlyStopping(monitor=key).maximize for key in down] == [False] * len(down)
    assert not bp.EarlyStopping(monitor="val_f1", mode="min").maximize
