"""Every method a backend's `Ops` overrides against the generic `Ops` (the reference).

Here the test matrix has one case more than elsewhere: ``numba``, the CPU with numba's compiled
kernels taken for arrays of every size (`NumbaOps` with no size threshold; skipped, visibly,
where numba is not installed), while ``numpy`` is the CPU with ``kernels="numpy"``, so that
each of `NumpyOps` and `NumbaOps` is compared with the generic `Ops` on its own.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import backprop as bp
from backprop.backends import Backend, Ops, finite, numba_ops, numpy_ops
from backprop.backends.numba_ops import NumbaOps
from backprop.backends.numpy_ops import NumpyOps
from backprop.optim import fused
from conftest import BACKEND_PARAMS, make_device
from helpers import host

NO_NUMBA = "numba is not installed (pip install 'backprop-nn[cpu]'): its CPU kernels go untested"
NUMBA_PARAMS = (
    [pytest.param("numba", marks=[] if numba_ops.available() else [pytest.mark.skip(reason=NO_NUMBA)], id="numba")]
    if any(p.values[0] == "numpy" for p in BACKEND_PARAMS)  # BACKPROP_TEST_BACKENDS may leave the CPU out
    else []
)


def every_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """`NumbaOps` made from now on take their kernels for arrays of any size."""
    monkeypatch.setattr(numba_ops, "MIN_SIZE", dict.fromkeys(numba_ops.MIN_SIZE, 0))


@pytest.fixture(params=[*BACKEND_PARAMS, *NUMBA_PARAMS])
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bp.Device:
    """conftest's backends, the CPU's split in two: NumPy's kernels, and numba's at every size."""
    if request.param == "numba":
        every_kernel(monkeypatch)
        return bp.Device("cpu", kernels="numba")
    if request.param == "numpy":
        return bp.Device("cpu", kernels="numpy")
    return make_device(request.param)


def cpu_ops() -> list:
    """The CPU's ops classes, as parameters (numba's skipped where it is not installed)."""
    skip = [] if numba_ops.available() else [pytest.mark.skip(reason=NO_NUMBA)]
    return [
        pytest.param(NumpyOps, id="numpy"),
        pytest.param(lambda: NumbaOps(min_size=0), marks=skip, id="numba"),
    ]


ACTIVATIONS = {
    "relu": bp.ReLU,
    "sigmoid": bp.Sigmoid,
    "tanh": bp.Tanh,
    "leaky_relu": lambda: bp.LeakyReLU(0.1),
    "leaky_relu-alpha2": lambda: bp.LeakyReLU(2.0),
    "gelu": bp.GELU,  # CuPy only: its erf is the generic one, operation for operation
}
RTOL = {"float32": 2e-6, "float64": 1e-14}


def bound(layer: bp.Layer, device: bp.Device, dtype: str) -> tuple[bp.Layer, Backend]:
    model = bp.Sequential(layer, device=device, dtype=dtype, seed=0)
    return layer, model.backend


def overrides(ops: Ops, name: str) -> bool:
    return getattr(type(ops), name) is not getattr(Ops, name)


def needs_kernel(backend: Backend, name: str) -> tuple[Ops, Ops]:
    """``(the backend's ops, the generic ops)``, skipping when the backend's method is the generic one."""
    if not overrides(backend.ops, name):
        where = f"{backend.device.name} ({type(backend.ops).__name__})"
        pytest.skip(f"{where} has no fused {name!r} (the generic method is the kernel)")
    return backend.ops, Ops(backend.xp)


ACTIVATION_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "leaky_relu": "leaky_relu", "gelu": "gelu"}


def activation_methods(name: str) -> set[str]:
    return {name, f"bias_{name}", f"{name}_backward"}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fused_activation_kernels_match_generic(
    name: str, device: bp.Device, dtype: str, rng: np.random.Generator
) -> None:
    act, backend = bound(ACTIVATIONS[name](), device, dtype)
    method = name.split("-")[0]
    if not any(overrides(backend.ops, m) for m in activation_methods(method)):
        pytest.skip(f"{backend.device.name} fuses nothing of {method}")
    ops, ref = backend.ops, Ops(backend.xp)
    Xh = np.concatenate([rng.standard_normal((6, 5)) * 3, [[-1000.0, -30.0, 0.0, 30.0, 1000.0]]])
    X, dY, b = (
        backend.from_host(Xh),
        backend.from_host(rng.standard_normal(Xh.shape)),
        backend.from_host(rng.standard_normal(5)),
    )
    X0, b0 = host(X).copy(), host(b).copy()
    Y = act.f(ops, X)
    np.testing.assert_allclose(host(Y), host(act.f(ref, X)), rtol=RTOL[dtype], atol=1e-30)
    dX = act.df(ops, dY, X, Y)
    np.testing.assert_allclose(host(dX), host(act.df(ref, dY, X, Y)), rtol=RTOL[dtype], atol=1e-30)
    fused = act.bias_f(ops, backend.from_host(Xh.copy()), b)  # may overwrite its Z
    np.testing.assert_allclose(host(fused), host(act.f(ref, X + b)), rtol=RTOL[dtype], atol=1e-30)
    np.testing.assert_array_equal(host(X), X0)
    np.testing.assert_array_equal(host(b), b0)
    assert host(Y).dtype == host(dX).dtype == host(fused).dtype == np.dtype(dtype)


def test_fused_softmax_cross_entropy_matches_generic(device: bp.Device, dtype: str, rng: np.random.Generator) -> None:
    backend = Backend(device, dtype)
    ops, ref = needs_kernel(backend, "softmax_cross_entropy")
    loss = bp.losses.SoftmaxCrossEntropy()
    Zh = rng.standard_normal((9, 4)) * 5
    Zh[0] = [1000.0, -1000.0, 0.0, 3.0]
    with backend.activate():
        Z = backend.from_host(Zh)
        T = loss.prepare_target(backend, rng.integers(0, 4, 9), 9, 4)
        L, dZ = ops.softmax_cross_entropy(Z, T)
        L_ref, dZ_ref = loss.value_and_grad(ref, Z, T)
    assert float(host(L)) == pytest.approx(float(host(L_ref)), rel=RTOL[dtype])
    np.testing.assert_allclose(host(dZ), host(dZ_ref), rtol=RTOL[dtype], atol=1e-7 if dtype == "float32" else 1e-16)
    np.testing.assert_array_equal(host(Z), Zh.astype(dtype))
    assert host(L).dtype == host(dZ).dtype == np.dtype(dtype)


def test_fused_bce_matches_generic(device: bp.Device, dtype: str, rng: np.random.Generator) -> None:
    backend = Backend(device, dtype)
    ops, ref = needs_kernel(backend, "bce")
    loss = bp.losses.BCE()
    Ph = np.concatenate([rng.uniform(0.01, 0.99, (7, 2)), [[0.0, 1.0]]])  # saturated: logs clamped at -100
    Th = np.concatenate([rng.uniform(0, 1, (7, 2)), [[1.0, 0.0]]])
    with backend.activate():
        P, T = backend.from_host(Ph), backend.from_host(Th)
        L, dP = ops.bce(P, T)
        L_ref, dP_ref = loss.value_and_grad(ref, P, T)
    assert float(host(L)) == pytest.approx(float(host(L_ref)), rel=RTOL[dtype])
    np.testing.assert_allclose(host(dP), host(dP_ref), rtol=RTOL[dtype])
    np.testing.assert_array_equal(host(P), Ph.astype(dtype))
    assert host(L).dtype == host(dP).dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", ["matmul", "matmul_tn", "matmul_nt", "sum_rows"])
def test_fused_linear_algebra_matches_generic(
    name: str, device: bp.Device, dtype: str, rng: np.random.Generator
) -> None:
    backend = Backend(device, dtype)
    ops, ref = needs_kernel(backend, name)
    shapes = {
        "matmul": ((5, 3), (3, 4)),
        "matmul_tn": ((5, 3), (5, 4)),
        "matmul_nt": ((5, 3), (4, 3)),
        "sum_rows": ((5, 3),),
    }
    with backend.activate():
        args = [backend.from_host(rng.standard_normal(s)) for s in shapes[name]]
        expected = host(getattr(ref, name)(*args))
        # another summation order (another BLAS kernel) moves an entry by rounding: up to a few
        # eps of the terms' magnitudes, however small the entry itself
        atol = 8 * np.finfo(dtype).eps * np.prod([np.abs(host(a)).max() for a in args]) * max(shapes[name][0])
        close = {"rtol": RTOL[dtype], "atol": atol}
        np.testing.assert_allclose(host(getattr(ops, name)(*args)), expected, **close)
        if name in ("matmul_tn", "sum_rows"):  # the gradient kernels may write into a given slot
            out = backend.zeros(expected.shape)
            result = getattr(ops, name)(*args, out=out)
            np.testing.assert_allclose(host(result), expected, **close)
            np.testing.assert_allclose(host(out), expected, **close)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "leaky_relu", "gelu"])
def test_fused_dense_activation_stage_matches_separate_layers(
    act: str, device: bp.Device, rng: np.random.Generator
) -> None:
    """Sequential fuses Dense + activation; the result equals running the layers one by one."""
    model = bp.Sequential(bp.Dense(5, 4), bp.layers.get_activation(act), device=device, dtype="float64", seed=1)
    assert len(model._stages) == 1
    backend = model.backend
    X, dY = backend.from_host(rng.standard_normal((6, 5))), backend.from_host(rng.standard_normal((6, 4)))
    with backend.activate():
        Y, backward = model.apply(X, True)
        dX = backward(dY, True)
        grads = [host(p.grad) for p in model.parameters()]
        Z, back_dense = model.layers[0].apply(X, True)
        Y2, back_act = model.layers[1].apply(Z, True)
        dX2 = back_dense(back_act(dY, True), True)
    np.testing.assert_allclose(host(Y), host(Y2), rtol=1e-14)
    np.testing.assert_allclose(host(dX), host(dX2), rtol=1e-14)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(g, host(p.grad), rtol=1e-14)


def test_fused_dropout_matches_generic(device: bp.Device, dtype: str, rng: np.random.Generator) -> None:
    backend = Backend(device, dtype)
    ops, ref = needs_kernel(backend, "dropout")
    with backend.activate():
        X, U = backend.from_host(rng.standard_normal((6, 5))), backend.from_host(rng.random((6, 5)))
        Y, scale = ops.dropout(X, U, 0.7)
        Y_ref, scale_ref = ref.dropout(X, U, 0.7)
    np.testing.assert_allclose(host(Y), host(Y_ref), rtol=RTOL[dtype])
    np.testing.assert_allclose(host(scale), host(scale_ref), rtol=RTOL[dtype])


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_fused_all_finite_matches_generic(
    bad: float | None, device: bp.Device, dtype: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finite, "FINITE_BLOCK", 64)  # the host's check: many blocks of whole rows
    backend = Backend(device, dtype)
    ops, _ = needs_kernel(backend, "all_finite")
    Xh = rng.standard_normal((37, 301)) * 1e30  # large, but finite in float32 too
    if bad is not None:
        Xh[36, 300] = bad  # the very last entry: every block of the reduction must count
    fused, xp = ops.all_finite, backend.xp
    with backend.activate():
        X = backend.from_host(Xh)
        for A in (X, X[::2, ::3], X[:0]):  # contiguous, strided (still holding the last entry), empty
            expected = bool(xp.all(xp.isfinite(A)))
            assert fused(A) is expected
        assert fused(X) is backend.all_finite(X) is (bad is None)
        assert fused(backend.from_host(np.arange(6), dtype=xp.int64)) is True


@pytest.mark.parametrize("rows", [1, 5, 9])
def test_take_rows_into_a_reused_buffer_matches_generic(device: bp.Device, rows: int, rng: np.random.Generator) -> None:
    """Rows gathered into `rows_buffer` (where the backend has one) are the generic ``take``'s,
    for inputs and 1-D labels, the buffer refilled with fewer rows than it holds."""
    backend = Backend(device, "float32")
    ops, ref = backend.ops, Ops(backend.xp)
    with backend.activate():
        for Ah in (rng.standard_normal((12, 4)).astype(np.float32), np.arange(12)):
            A = backend.from_host(Ah, dtype=backend.xp.int64 if Ah.dtype.kind == "i" else None)
            buf = ops.rows_buffer(A, 9)
            for idx_h in (rng.permutation(12)[:rows], np.arange(rows)[::-1].copy()):
                idx = backend.from_host(idx_h, dtype=backend.xp.int64)
                got = ops.take_rows(A, idx, buf)
                assert tuple(got.shape) == (rows, *A.shape[1:])
                np.testing.assert_array_equal(host(got), host(ref.take_rows(A, idx)))
                np.testing.assert_array_equal(host(got), Ah[idx_h])


ROUNDED = ("tf32", "bfloat16", "float16")


def _operand_values(backend: Backend, A: object, kind: str) -> np.ndarray:
    """The float32 values of an operand as a backend keeps it (CuPy: 16-bit storage)."""
    if host(A).dtype == np.uint16:
        from backprop.backends.cublas import widen  # noqa: PLC0415 - CuPy's only

        return host(widen(backend._cupy, A, kind))
    return host(A)


@pytest.mark.parametrize("kind", ROUNDED)
def test_generic_round_operand_is_the_host_rounding_bitwise(kind: str, device: bp.Device) -> None:
    """On any namespace the generic method gives `backprop.backends.rounding`'s values."""
    from backprop.backends import rounding  # noqa: PLC0415

    backend = Backend(device, "float32")
    Xh = SPECIAL_FLOAT32.reshape(3, -1)
    with backend.activate():
        X = backend.from_host(Xh)
        got = Ops(backend.xp).round_operand(X, kind)
        out = backend.zeros(Xh.shape)
        assert Ops(backend.xp).round_operand(X, kind, out=out) is out
    expected = rounding.round_operand(Xh, kind).view(np.uint32)
    np.testing.assert_array_equal(host(got).view(np.uint32), expected)
    np.testing.assert_array_equal(host(out).view(np.uint32), expected)
    np.testing.assert_array_equal(host(X).view(np.uint32), Xh.view(np.uint32))  # left as it was


@pytest.mark.parametrize("kind", ROUNDED)
def test_fused_round_operand_matches_generic_bitwise(kind: str, device: bp.Device) -> None:
    backend = Backend(device, "float32")
    ops, ref = needs_kernel(backend, "round_operand")
    Xh = SPECIAL_FLOAT32.reshape(3, -1)
    with backend.activate():
        X = backend.from_host(Xh)
        got = ops.round_operand(X, kind)
        if kind == "tf32" and backend.device.type == "cuda":
            assert got is X  # cuBLAS's tensor cores read float32 as TF32 themselves
            return
        empty = ops.round_operand(X, kind)  # a buffer of the operand's own dtype...
        empty[...] = 0  # ...that holds nothing of the result
        out = ops.round_operand(X, kind, out=empty)
        expected = host(ref.round_operand(X, kind)).view(np.uint32)
        np.testing.assert_array_equal(_operand_values(backend, got, kind).view(np.uint32), expected)
        np.testing.assert_array_equal(_operand_values(backend, out, kind).view(np.uint32), expected)
    assert ops.round_operand(X, "float32") is X
    np.testing.assert_array_equal(host(X).view(np.uint32), Xh.view(np.uint32))


SPECIAL_FLOAT32 = np.concatenate([
    np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 3.4e38, -3.4e38, 65504.0, 65519.0, 65520.0,
              1e-40, -1e-40, 2.0**-25, 2.0**-24, 6e-8, 1.00390625, 1.0 + 2.0**-9, 1.0 + 3 * 2.0**-9], np.float32),
    np.random.default_rng(5).standard_normal(60).astype(np.float32) * 100,
    np.array([0x7F800001, 0xFFBFFFFF, 0x3F808000, 0x3F818000, 0x00000001], np.uint32).view(np.float32),
])[:84]


TESTED = {m for n in ACTIVATION_METHODS for m in activation_methods(n)} | {
    "softmax_cross_entropy",
    "bce",
    "matmul",
    "matmul_tn",
    "matmul_nt",
    "round_operand",
    "sum_rows",
    "dropout",
    "all_finite",
    "rows_buffer",
    "take_rows",
    "adam_update",
    "sgd_update",  # test_fused_optimizer_step_matches_the_per_parameter_rule, and the generic twins below
}


def overridden(cls: type[Ops]) -> set[str]:
    return {
        name for name, value in vars(cls).items() if callable(value) and not name.startswith("_") and hasattr(Ops, name)
    }


def test_cupy_ops_declare_cleanly_and_are_all_tested() -> None:
    """Building CuPy's ops parses every kernel declaration (no GPU needed); each override is tested."""
    cupy = pytest.importorskip("cupy")
    import array_api_compat.cupy as xp  # noqa: PLC0415 - CuPy is optional

    from backprop.backends.cupy_ops import CupyOps  # noqa: PLC0415 - CuPy is optional

    CupyOps(xp, cupy, 0)
    assert overridden(CupyOps) <= TESTED, overridden(CupyOps) - TESTED


@pytest.mark.parametrize("make_ops", cpu_ops())
def test_cpu_bias_relu_is_the_generic_relu_of_x_plus_b(make_ops: type, dtype: str, rng: np.random.Generator) -> None:
    """The CPU bias + ReLU kernels give the generic ``maximum(X + b, 0)``, NaN, infinities and
    signed zeros included."""
    X = rng.standard_normal((64, 96)).astype(dtype)
    X.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    b = rng.standard_normal(96).astype(dtype)
    b[3:7] = [-0.0, 0.0, np.inf, -np.inf]  # X + b is -0 at [0, 3] and +0 at [0, 4]
    with np.errstate(invalid="ignore"):  # inf + -inf
        expected = bp.ReLU().f(Ops(np), X + b)
        got = make_ops().bias_relu(X.copy(), b)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # equal above takes -0 for +0


def test_every_numpy_override_is_tested() -> None:
    assert overridden(NumpyOps) <= TESTED, overridden(NumpyOps) - TESTED


def test_every_numba_override_is_tested() -> None:
    """Runs without numba too: `numba_ops` imports numba only when a kernel is called."""
    assert overridden(NumbaOps) <= TESTED, overridden(NumbaOps) - TESTED


#: one Adam update's arguments, for the flat-buffer methods called directly
ADAM_ARGUMENTS = {
    "step": 3, "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "decoupled": False,
}  # fmt: skip
FUSED_OPTIMIZERS = {
    "SGD": (bp.optim.SGD, {"lr": 0.1}),
    "SGD-momentum-dampening-wd": (bp.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    "SGD-nesterov": (bp.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "Adam": (bp.optim.Adam, {"lr": 0.01}),
    "Adam-wd": (bp.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    "AdamW": (bp.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
}


@pytest.mark.parametrize("name", FUSED_OPTIMIZERS)
def test_fused_optimizer_step_matches_the_per_parameter_rule(
    name: str, device: bp.Device, rng: np.random.Generator
) -> None:
    """One flat update over the model's arena equals the reference loop over parameters."""
    cls, kwargs = FUSED_OPTIMIZERS[name]
    models = [
        bp.Sequential(bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2), device=device, dtype="float64", seed=4)
        for _ in range(2)
    ]
    if models[0].parameters()[0].arenas is None:
        pytest.skip(f"{device.name} keeps parameters as separate arrays (no flat buffer to fuse over)")
    fused, loop = (cls(m.parameters(), **kwargs) for m in models)
    loop.fusable = False  # force the reference path
    for step in range(5):
        X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
        for m, opt in zip(models, (fused, loop)):
            m.backprop(X, y, "mse")
            opt.step()
        assert fused._fused is not None and fused._fused.valid(fused), "the fused path must actually run"
        for a, b in zip(*(m.parameters() for m in models)):
            np.testing.assert_allclose(
                host(a.data), host(b.data), rtol=1e-14, atol=1e-16, err_msg=f"{a.name} step {step}"
            )
            assert a.data is a.arenas.data.views[a.index]  # still a view of the flat buffer
    for sa, sb in zip(fused.state, loop.state):
        assert sa.keys() - {"backend"} == sb.keys() - {"backend"}
        for key in sa.keys() - {"backend"}:
            np.testing.assert_allclose(host(sa[key]), host(sb[key]), rtol=1e-14, atol=1e-16)
    saved = fused.state_dict()  # per-parameter views save like separate arrays: right values, copies
    for key, value in saved["state"].items():
        index, name = key.split(".")
        if hasattr(value, "shape"):
            assert value.shape == fused.params[int(index)].shape
            np.testing.assert_array_equal(value, host(fused.state[int(index)][name]))
            value[...] = 0.5
    assert not any(np.any(host(v) == 0.5) for s in fused.state for k, v in s.items() if k not in ("backend", "step"))


def test_replaced_parameter_arrays_are_gathered_back_into_the_flat_buffer(rng: np.random.Generator) -> None:
    """Assigning p.data (as load_state_dict, gradcheck or a user may) never loses the value."""
    model = bp.Sequential(bp.Dense(3, 2), device="cpu", dtype="float64", seed=0)
    opt = bp.optim.SGD(model.parameters(), lr=0.5)
    W = model.parameters()[0]
    W.data = np.ones((3, 2))
    model.backprop(np.zeros((4, 3)), np.zeros((4, 2)), "mse")  # dW = 0 for zero inputs
    opt.step()
    np.testing.assert_array_equal(host(W.data), np.ones((3, 2)))
    assert W.data is W.arenas.data.views[W.index]


def test_deep_copied_models_keep_a_consistent_flat_buffer(rng: np.random.Generator) -> None:
    model = bp.Sequential(bp.Dense(3, 2), device="cpu", dtype="float64", seed=0)
    twin = copy.deepcopy(model)
    opt = bp.optim.SGD(twin.parameters(), lr=0.1)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    twin.backprop(X, y, "mse")
    before = [host(p.data).copy() for p in twin.parameters()]
    opt.step()
    after = [host(p.data) for p in twin.parameters()]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # the copy really trained
    np.testing.assert_array_equal(host(model.parameters()[0].data), before[0])  # the original did not


@pytest.mark.parametrize("settings", [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled": True}])
def test_numpy_adam_in_chunks_is_bit_identical_to_one_pass(
    settings: dict, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """The NumPy Adam walks its arrays in cache-sized chunks; the chunking never changes a bit,
    including at chunk edges and in a last, shorter chunk."""
    arguments = dict(ADAM_ARGUMENTS)
    arguments.update(settings)
    p, g, m, v = (rng.standard_normal(45).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    g0 = g.copy()
    results = []
    for chunk in (7, 45, 1 << 20):
        monkeypatch.setattr(numpy_ops, "ADAM_CHUNK", chunk)
        arrays = [a.copy() for a in (p, g, m, v)]
        NumpyOps().adam_update(*arrays, **arguments)
        results.append(arrays)
        np.testing.assert_array_equal(arrays[1], g0)  # the gradient is read, never written
    for chunked in results[:2]:
        for a, b in zip(chunked, results[2]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results[2][0], p)  # the step moved the parameters


def test_every_layers_gradients_land_in_the_flat_buffer(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """Dense (with l1/l2), BatchNorm and LayerNorm write their gradients into the flat buffer,
    so the optimizer's fused update is planned once, not re-gathered every step."""
    plans = []
    prepare = fused.prepare
    monkeypatch.setattr(fused, "prepare", lambda opt: plans.append(1) or prepare(opt))
    model = bp.Sequential(
        bp.Dense(3, 8, l1=0.01, l2=0.01),
        bp.BatchNorm(8),
        bp.ReLU(),
        bp.LayerNorm(8),
        bp.Dense(8, 2),
        device="cpu",
        dtype="float64",
        seed=0,
    )
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(4):
        model.backprop(rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), "mse")
        opt.step()
    assert len(plans) == 1
    assert all(p.grad is p.arenas.grad.views[p.index] for p in model.parameters())


@pytest.mark.parametrize("make_ops", cpu_ops())
@pytest.mark.parametrize("settings", [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled": True}])
def test_cpu_adam_is_bit_identical_to_the_generic_adam(
    settings: dict, make_ops: type, dtype: str, rng: np.random.Generator
) -> None:
    arguments = dict(ADAM_ARGUMENTS)
    arguments.update(settings)
    p, g, m, v = (rng.standard_normal(300_000).astype(dtype) for _ in range(4))  # over chunks and threads' blocks
    v = np.abs(v)
    fused, generic = [a.copy() for a in (p, g, m, v)], [a.copy() for a in (p, g, m, v)]
    make_ops().adam_update(*fused, **arguments)
    Ops(np).adam_update(*generic, **arguments)
    for a, b in zip(fused, generic):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(generic[1], g)  # the gradient is read, never written


@pytest.mark.parametrize("settings", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}])
def test_generic_sgd_update_is_the_reference_rule(settings: dict, device: bp.Device, rng: np.random.Generator) -> None:
    """The generic flat SGD (what a backend without its own runs) against SGD's per-parameter rule."""
    backend = Backend(device, "float64")
    kwargs = {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0} | settings
    opt = bp.optim.SGD(bp.Sequential(bp.Dense(4, 3), device=device, dtype="float64", seed=0).parameters(), **kwargs)
    opt.fusable = False
    p0, g0 = rng.standard_normal(12), rng.standard_normal(12)
    with backend.activate():
        p, g = backend.from_host(p0.copy()), backend.from_host(g0.copy())
        buf = [backend.zeros((12,))] if kwargs["momentum"] else []
        param = bp.Parameter("p", backend.from_host(p0.copy()), backend)
        for step in range(3):
            Ops(backend.xp).sgd_update(p, g, *buf, fresh=step == 0, **kwargs)
            param.grad = backend.from_host(g0)
            opt.update(param, opt.state[0], backend.xp)
            np.testing.assert_allclose(host(p), host(param.data), rtol=1e-15, atol=1e-15)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1000.0, -1000.0])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fused_activations_propagate_nan_and_inf_as_the_generic_path(name: str, device: bp.Device, dtype: str) -> None:
    """A fused kernel that turned NaN into a number would hide a diverging run."""
    act, backend = bound(ACTIVATIONS[name](), device, dtype)
    ops, ref = backend.ops, Ops(backend.xp)
    Xh, dYh = np.repeat(SPECIAL, SPECIAL.size), np.tile(SPECIAL, SPECIAL.size)  # every pair
    X, dY = backend.from_host(Xh.reshape(9, 9)), backend.from_host(dYh.reshape(9, 9))
    b = backend.from_host(np.zeros(9))
    with np.errstate(all="ignore"), backend.activate():
        Y_ref = act.f(ref, X)
        for got, want in [
            (act.f(ops, X), Y_ref),
            (act.bias_f(ops, backend.from_host(Xh.reshape(9, 9)), b), Y_ref),
            (act.df(ops, dY, X, Y_ref), act.df(ref, dY, X, Y_ref)),
        ]:
            np.testing.assert_array_equal(np.isnan(host(got)), np.isnan(host(want)))
            np.testing.assert_allclose(host(got), host(want), rtol=RTOL[dtype], atol=1e-30)  # NaN equal to NaN


def test_numpy_relu_backward_is_zero_where_the_output_is_not_positive_whatever_dY() -> None:
    Y = np.array([0.0, 0.0, 0.0, 2.0, 2.0, np.nan], dtype=np.float32)
    dY = np.array([np.nan, np.inf, -3.0, np.nan, -np.inf, 1.0], dtype=np.float32)
    got = NumpyOps().relu_backward(dY, Y)
    np.testing.assert_array_equal(got, Ops(np).relu_backward(dY, Y))
    assert not np.signbit(got[:3]).any()  # +0, as where(Y > 0, dY, 0.0): not -0 from -3 * 0


def test_raw_kernels_refuse_a_dtype_they_have_no_kernel_for() -> None:
    """An explicit dtype map: a 2-byte array never reaches the float kernel (it would read past its end)."""
    cupy = pytest.importorskip("cupy")
    from backprop.backends.cupy_ops import _by_dtype  # noqa: PLC0415 - CuPy is optional

    kernel = _by_dtype(cupy, "bp_mean")
    assert kernel(np.float32) is kernel(np.dtype("float32"))  # made once per dtype
    with pytest.raises(TypeError, match="float32, float64 arrays; got float16"):
        kernel(np.float16)


def test_float32_subnormals_on_a_gpu_are_within_the_smallest_normal_of_numpy(rng: np.random.Generator) -> None:
    """CuPy compiles every kernel with -ftz=true: float32 subnormals (below 2**-126) read and
    written on the GPU are flushed to zero, where NumPy keeps them. Every activation's results
    then differ from the host's by at most the smallest normal float32, never more."""
    gpus, why = bp.backends.cuda_gpus()
    if not gpus:
        pytest.skip(f"no usable GPU: {str(why).split(':')[0]}")
    tiny = np.finfo(np.float32).tiny
    Xh = (rng.uniform(-1, 1, (16, 8)) * tiny).astype(np.float32)  # subnormal, or tiny normal
    Xh[0, :4] = [tiny / 2, -tiny / 3, tiny * 2, 0.0]
    gpu, cpu = Backend("cuda", "float32"), Backend("cpu", "float32")
    for name, make in ACTIVATIONS.items():
        act = make()
        with gpu.activate():
            Y = host(act.f(gpu.ops, gpu.from_host(Xh)))
        np.testing.assert_allclose(Y, act.f(cpu.ops, Xh.copy()), rtol=RTOL["float32"], atol=tiny, err_msg=name)


SGD_SETTINGS = [
    {},
    {"weight_decay": 0.1},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
]


@pytest.mark.parametrize("make_ops", cpu_ops())
@pytest.mark.parametrize("settings", SGD_SETTINGS)
def test_cpu_sgd_is_bit_identical_to_the_generic_sgd(
    settings: dict, make_ops: type, dtype: str, rng: np.random.Generator
) -> None:
    """Three steps (the first with a fresh momentum buffer) over arrays spanning many blocks."""
    kwargs = {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0} | settings
    p, g = (rng.standard_normal(100_003).astype(dtype) for _ in range(2))
    g0 = g.copy()
    runs = []
    for ops in (make_ops(), Ops(np)):
        arrays = [p.copy()] + ([np.zeros_like(p)] if kwargs["momentum"] else [])
        for step in range(3):
            ops.sgd_update(arrays[0], g, *arrays[1:], fresh=step == 0, **kwargs)
        runs.append(arrays)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(g, g0)  # the gradient is read, never written
    assert not np.array_equal(runs[0][0], p)
