"""numba's CPU kernels (`NumbaOps`): how they are chosen and opted out of, that numba is never
imported when they are not used, and their numbers on arrays large enough to be split among
threads. Every override is also compared with the generic `Ops` in tests/test_kernels.py."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.backends import Backend, Ops, numba_ops
from backprop.backends.numba_ops import NumbaOps
from backprop.backends.numpy_ops import NumpyOps

ROOT = Path(__file__).resolve().parents[2]
needs_numba = pytest.mark.skipif(
    not numba_ops.available(), reason="numba is not installed (pip install 'backprop-nn[cpu]'): its kernels go untested"
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env},
    )


# ---------------------------------------------------------------------- choice and opt-out
def test_the_device_chooses_the_cpu_kernels() -> None:
    auto = Backend(bp.Device("cpu"), "float32").ops
    assert type(auto) is (NumbaOps if numba_ops.available() else NumpyOps)
    assert type(Backend(bp.Device("cpu", kernels="numpy"), "float32").ops) is NumpyOps
    assert bp.Device("cpu", kernels="numpy") == bp.Device("cpu")  # where arrays live: the same
    assert bp.Device("cpu", kernels="numpy").name == "cpu"
    assert repr(bp.Device("cpu", kernels="numba")) == "Device('cpu', kernels='numba')"
    for kernels in ("auto", "numpy", "numba"):
        device = bp.Device("cpu", kernels=kernels)
        assert pickle.loads(pickle.dumps(device)).kernels == kernels


def test_a_model_moved_to_a_device_takes_its_kernels() -> None:
    model = bp.Sequential(bp.Dense(3, 2), seed=0)
    model.to(bp.Device("cpu", kernels="numpy"))
    assert type(model.backend.ops) is NumpyOps


def test_bad_kernel_choices_are_refused() -> None:
    with pytest.raises(ValueError, match="kernels must be one of 'auto', 'numpy', 'numba'"):
        bp.Device("cpu", kernels="fast")
    with pytest.raises(ValueError, match="chooses the CPU's kernels"):
        bp.Device("cuda", kernels="numpy")


def test_insisting_on_numba_without_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numba_ops, "available", lambda: False)
    with pytest.raises(ImportError, match=r"backprop-nn\[cpu\]"):
        bp.Sequential(bp.Dense(3, 2), device=bp.Device("cpu", kernels="numba"))
    assert type(bp.Sequential(bp.Dense(3, 2)).backend.ops) is NumpyOps  # auto: NumPy's, quietly


def test_numba_is_imported_only_for_a_model_that_wins_it_back() -> None:
    """``import backprop``, `backprop train`'s digits model (evaluated on large batches too), a
    large model that only predicts and a large model that opted out never import numba; a large
    model on ``auto`` does at its first update (where numba is installed)."""
    proc = _python(
        """
        import sys
        import numpy as np
        import backprop as bp

        rng = np.random.default_rng(0)
        def model(sizes, device="cpu"):
            layers = [bp.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            layers = [x for layer in layers for x in (layer, bp.ReLU())][:-1]
            return bp.Sequential(*layers, device=device, seed=0)

        def train(m, batch):
            X, y = rng.standard_normal((512, m.layers[0].in_features)), rng.integers(0, 10, 512)
            m.fit(X, y, loss="cross_entropy", optimizer=bp.optim.Adam(m.parameters()), epochs=1,
                  batch_size=batch, verbose=0)
            m.evaluate(rng.standard_normal((4096, m.layers[0].in_features)), rng.integers(0, 10, 4096),
                       loss="cross_entropy")

        seen = [sys.modules.get("numba") is not None]
        train(model([64, 128, 10]), 32)  # `backprop train`'s digits model
        seen.append(sys.modules.get("numba") is not None)
        model([784, 256, 256, 10]).predict(rng.standard_normal((4096, 784)))
        seen.append(sys.modules.get("numba") is not None)
        train(model([784, 256, 256, 10], bp.Device("cpu", kernels="numpy")), 128)
        seen.append(sys.modules.get("numba") is not None)
        large = model([784, 256, 256, 10])
        train(large, 128)
        seen.append((sys.modules.get("numba") is not None, getattr(large.backend.ops, "on", False)))
        print(seen)
        """
    )
    assert proc.returncode == 0, proc.stderr
    on = numba_ops.available()
    assert proc.stdout.strip() == str([False, False, False, False, (on, on)])


def test_the_kernels_switch_on_at_a_large_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off until an optimizer update of ``MIN_SIZE["parameters"]`` parameters; on from the
    start with ``kernels="numba"``."""
    monkeypatch.setattr(numba_ops, "_load", lambda: pytest.fail("no kernel may run here"))
    ops = NumbaOps()
    assert not ops.on
    n = numba_ops.MIN_SIZE["parameters"]
    Z = np.ones((256, 1024), dtype=np.float32)
    ops.bias_relu(Z, np.zeros(1024, dtype=np.float32))  # over its own threshold, but off: NumPy's
    p = np.ones(n - 1, dtype=np.float32)
    ops.sgd_update(p, p.copy(), fresh=True, lr=0.1, momentum=0, dampening=0, nesterov=False, weight_decay=0)
    assert not ops.on
    if numba_ops.available():
        assert Backend(bp.Device("cpu", kernels="numba"), "float32").ops.on
        monkeypatch.undo()
        p = np.ones(n, dtype=np.float32)
        ops.sgd_update(p, p.copy(), fresh=True, lr=0.1, momentum=0, dampening=0, nesterov=False, weight_decay=0)
        assert ops.on


def test_small_arrays_stay_on_numpy(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    """Below a method's threshold `NumbaOps` is `NumpyOps`, kernels on or not: none is even loaded."""

    def no_kernels() -> None:
        raise AssertionError("a kernel was loaded for a small array")

    monkeypatch.setattr(numba_ops, "_load", no_kernels)
    ops, ref = NumbaOps(on=True), NumpyOps()
    Z, b, dY = rng.standard_normal((8, 5)), rng.standard_normal(5), rng.standard_normal((8, 5))
    np.testing.assert_array_equal(ops.bias_relu(Z.copy(), b), ref.bias_relu(Z.copy(), b))
    np.testing.assert_array_equal(ops.relu_backward(dY, Z), ref.relu_backward(dY, Z))
    np.testing.assert_array_equal(ops.sum_rows(Z), ref.sum_rows(Z))
    labels = rng.integers(0, 5, 8)
    for a, e in zip(ops.softmax_cross_entropy(Z, labels), ref.softmax_cross_entropy(Z, labels)):
        np.testing.assert_array_equal(a, e)
    p, g, m, v = (rng.random(40) for _ in range(4))
    ops.adam_update(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0, decoupled=False)
    ops.sgd_update(p, g, fresh=True, lr=0.1, momentum=0, dampening=0, nesterov=False, weight_decay=0)
    ops.dropout(Z, rng.random(Z.shape), 0.5)


@needs_numba
def test_arrays_the_kernels_are_not_made_for_take_numpy(rng: np.random.Generator) -> None:
    """Strided, mixed-dtype or integer arrays: `NumpyOps`' numbers, whatever the size."""
    ops, ref = NumbaOps(min_size=0), NumpyOps()
    A = rng.standard_normal((64, 96)).astype(np.float32)
    strided = A[:, ::2]
    np.testing.assert_array_equal(ops.sum_rows(strided), ref.sum_rows(strided))
    np.testing.assert_array_equal(ops.relu_backward(strided, strided), ref.relu_backward(strided, strided))
    b64 = rng.standard_normal(96)
    np.testing.assert_array_equal(ops.bias_relu(A.copy(), b64), ref.bias_relu(A.copy(), b64))
    ints = rng.integers(-3, 3, (64, 96))
    np.testing.assert_array_equal(ops.sum_rows(ints), ref.sum_rows(ints))


# ---------------------------------------------------------------------- numbers, at scale
SHAPES = [(512, 1024), (3, 70_001), (33, 257)]  # a training batch; few rows, long; odd edges


@needs_numba
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_elementwise_kernels_are_bit_identical_to_the_generic_methods(
    shape: tuple[int, int], dtype: str, rng: np.random.Generator
) -> None:
    ops, ref = NumbaOps(min_size=0), Ops(np)
    X, dY, U = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    U = np.abs(U) % 1
    X.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40]
    dY.flat[6:9] = [np.nan, np.inf, -np.inf]
    b = rng.standard_normal(shape[1]).astype(dtype)
    X0 = X.copy()
    np.testing.assert_array_equal(ops.relu_backward(dY, X), ref.relu_backward(dY, X))
    with np.errstate(invalid="ignore"):
        got, expected = ops.bias_relu(X.copy(), b), ref.bias_relu(X.copy(), b)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    for keep in (0.7, 0.5, 1.0):
        with np.errstate(invalid="ignore"):  # inf * 0
            for a, e in zip(ops.dropout(X, U, keep), ref.dropout(X, U, keep)):
                np.testing.assert_array_equal(a, e)
                assert a.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(X, X0)  # inputs are read, never written


@needs_numba
@pytest.mark.parametrize("shape", [*SHAPES, (1, 40_000)], ids=str)
def test_column_sums_add_rows_in_numpys_order_and_within_the_bound(
    shape: tuple[int, int], dtype: str, rng: np.random.Generator
) -> None:
    """The rows are added one after the other: NumPy's own numbers for a C-contiguous array,
    and in any case within the bound of any summation order, ``rows * eps * sum |A|``."""
    A = (rng.standard_normal(shape) * rng.uniform(0.1, 100, shape[1])).astype(dtype)
    ops = NumbaOps(min_size=0)
    out = np.full(shape[1], np.nan, dtype=dtype)
    got = ops.sum_rows(A, out=out)
    assert got is out and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, np.add.reduce(A, axis=0))
    exact = A.astype(np.float64).sum(axis=0)
    bound = shape[0] * np.finfo(dtype).eps * np.abs(A).astype(np.float64).sum(axis=0)
    assert np.all(np.abs(ops.sum_rows(A) - exact) <= bound)
    generic = Ops(np).sum_rows(A)
    assert np.all(np.abs(got - generic) <= 2 * bound)


@needs_numba
@pytest.mark.parametrize("shape", [(512, 10), (128, 1000), (7, 3)], ids=str)
def test_softmax_cross_entropy_is_within_its_bound(
    shape: tuple[int, int], dtype: str, rng: np.random.Generator
) -> None:
    """C library exp/log and float64 sums against NumPy's SIMD exp/log and pairwise sums in
    the dtype: the loss within 2e-6 (relative, float32) of the generic; each dZ entry within
    ``(C + 4) eps`` of its size, plus ``(C + 4) eps / N`` (the error a row's sum of C terms in any
    order may carry into every softmax entry, and ``exp``'s ulps)."""
    n, c = shape
    Z = (rng.standard_normal(shape) * 5).astype(dtype)
    Z[0, :3] = [1000.0, -1000.0, 0.0][: min(3, c)]
    labels = rng.integers(0, c, n)
    L, dZ = NumbaOps(min_size=0).softmax_cross_entropy(Z, labels)
    L_ref, dZ_ref = Ops(np).softmax_cross_entropy(Z, labels)
    assert L.dtype == dZ.dtype == np.dtype(dtype) and L.shape == ()
    assert float(L) == pytest.approx(float(L_ref), rel=2e-6 if dtype == "float32" else 1e-14)
    tol = (c + 4) * np.finfo(dtype).eps
    np.testing.assert_allclose(dZ, dZ_ref, rtol=tol, atol=tol / n)
    np.testing.assert_allclose(dZ.sum(axis=1), 0, atol=c * tol / n)


@needs_numba
def test_softmax_cross_entropy_refuses_a_label_out_of_range() -> None:
    Z = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(IndexError, match="label 3 at row 2 is out of range for 3 classes"):
        NumbaOps(min_size=0).softmax_cross_entropy(Z, np.array([0, 1, 3, 2]))
    with pytest.raises(IndexError, match="label -1 at row 0"):
        NumbaOps(min_size=0).softmax_cross_entropy(Z, np.array([-1, 1, 2, 2]))


@needs_numba
def test_a_training_run_on_numba_kernels_follows_numpys(rng: np.random.Generator) -> None:
    """A few hundred Adam steps of a model large enough for every kernel: the weights stay
    within float32 rounding of the NumPy run (the loss kernel's bound, carried along)."""
    X = rng.standard_normal((512, 64)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    weights = []
    for kernels in ("numba", "numpy"):
        model = bp.Sequential(
            bp.Dense(64, 512), bp.ReLU(), bp.Dense(512, 10), device=bp.Device("cpu", kernels=kernels), seed=3
        )
        opt = bp.optim.Adam(model.parameters(), lr=1e-3)
        model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=4, batch_size=128, verbose=0, shuffle=False)
        weights.append([bp.to_numpy(p.data) for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------------- the disk cache
@needs_numba
def test_without_a_writable_cache_the_kernels_still_run_and_say_why_they_are_slow(tmp_path: Path) -> None:
    """numba raises where it finds no directory to cache in; we compile uncached and warn."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    proc = _python(
        """
        import warnings
        import numpy as np
        from backprop.backends.numba_ops import NumbaOps

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dX = NumbaOps(min_size=0).relu_backward(np.ones((2, 3)), np.ones((2, 3)))
        print(dX.sum(), [str(w.message) for w in caught])
        """,
        NUMBA_CACHE_DIR=str(blocked / "cache"),  # under a file: never creatable
        NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator",  # no fallback to __pycache__ or ~/.cache
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("6.0 ")
    assert "set NUMBA_CACHE_DIR to a writable directory" in proc.stdout
