"""The math of every fused CuPy kernel, checked without a GPU: each kernel body (and preamble)
is compiled as host C++ (float64, no contraction, as on the GPU) and run elementwise on NumPy
arrays, then compared with the generic path it replaces. This proves the formulas, constants
and argument order; tests/test_kernels.py repeats the comparison on a GPU, where the kernels
really run, and tests/test_cupy_compile.py checks that NVRTC compiles them. Needs a C++
compiler (skipped without one)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as xp
import numpy as np
import pytest

import backprop as bp
from backprop.backends import Ops
from backprop.backends.cupy_sources import DEFINITIONS, RAW_SOURCES, Definition, raw_source

_CTYPES = {
    "T": "double", "float64": "double", "int64": "long long", "bool": "bool", "float32": "float",
    "uint16": "unsigned short",
}
_PRELUDE = """
#include <cmath>
#include <cstring>
using std::exp; using std::log; using std::tanh; using std::floor; using std::fabs; using std::sqrt;
// CUDA's reinterpretation of a float's bits
inline unsigned int __float_as_uint(float x) { unsigned int u; std::memcpy(&u, &x, sizeof u); return u; }
// CUDA's floating min and max are fmin and fmax: a NaN operand gives the other one
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
#define __device__
typedef double T;
"""


def _params(spec: str) -> list[tuple[str, str, bool]]:
    """``"T x, raw float64 s"`` -> ``[("x", "double", False), ("s", "double", True)]``."""
    out = []
    for part in spec.split(","):
        words = part.split()
        raw = words[0] == "raw"
        out.append((words[-1], _CTYPES[words[-2]], raw))
    return out


def _source(name: str, d: Definition) -> str:
    args, loads = ["long long n"], []
    for (pname, ctype, raw), is_out in [(p, False) for p in _params(d.inputs)] + [
        (p, True) for p in _params(d.outputs)
    ]:
        const = "" if is_out else "const "
        if pname in d.scalars:
            args.append(f"{ctype} {pname}")
        elif raw:
            args.append(f"{const}{ctype}* {pname}")
        else:
            args.append(f"{const}{ctype}* _raw_{pname}")
            loads.append(
                f"{ctype}& {pname} = _raw_{pname}[i];" if is_out else f"const {ctype} {pname} = _raw_{pname}[i];"
            )
    loop = f"for (long long i = 0; i < n; ++i) {{ {' '.join(loads)} {d.body}; }}"
    return f'extern "C" void {name}({", ".join(args)}) {{\n  {loop}\n}}\n'


def _build(folder: Any, source: str, *flags: str) -> ctypes.CDLL:
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to run the kernel bodies on the host")
    (folder / "kernels.cpp").write_text(source)
    out = folder / "kernels.so"
    command = [compiler, "-shared", "-fPIC", "-O1", "-ffp-contract=off", "-fno-fast-math", *flags]
    subprocess.run([*command, "-o", str(out), str(folder / "kernels.cpp")], check=True, capture_output=True)
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    preambles = dict.fromkeys(d.preamble for d in DEFINITIONS.values())  # each once, in order
    kernels = [_source(name, d) for name, d in DEFINITIONS.items()]
    return _build(tmp_path_factory.mktemp("kernels"), "\n".join([_PRELUDE, *preambles, *kernels]))


# The raw kernels on the host: each warp is 32 host threads that meet at every shuffle, warps
# run one after another (the kernels share nothing between warps).
_RAW_PRELUDE = """
#include <barrier>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>
using std::exp; using std::log;
struct bp_dim3 { unsigned x = 0, y = 0, z = 0; };
struct uint4 { unsigned x, y, z, w; };
static thread_local bp_dim3 threadIdx, blockIdx;
static bp_dim3 blockDim, gridDim;
#define __global__
static std::barrier<>* bp_warp = nullptr;
static double bp_lanes[32];
template <typename V> V __shfl_xor_sync(unsigned, V v, int o) {
    const unsigned lane = threadIdx.x % 32;
    bp_lanes[lane] = v;
    bp_warp->arrive_and_wait();
    const V other = (V)bp_lanes[lane ^ o];
    bp_warp->arrive_and_wait();
    return other;
}
static void bp_launch(unsigned grid, unsigned block, const std::function<void()>& kernel) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned w = 0; w < block; w += 32) {
            std::barrier<> warp(32);
            bp_warp = &warp;
            std::vector<std::thread> lanes;
            for (unsigned l = 0; l < 32; ++l)
                lanes.emplace_back([&, b, w, l] { blockIdx.x = b; threadIdx.x = w + l; kernel(); });
            for (auto& lane : lanes) lane.join();
        }
}
"""
_RAW_LAUNCHERS = """
extern "C" void run_softmax_ce_rows(unsigned grid, unsigned block, const T* z, const long long* labels, T* dz, T* rows,
                                    long long n, int c) {
    bp_launch(grid, block, [=] { bp_softmax_ce_rows(z, labels, dz, rows, n, c); });
}
extern "C" void run_mean(const T* x, T* out, long long n) { bp_launch(1, 32, [=] { bp_mean(x, out, n); }); }
extern "C" void run_set_scalars(double* s, double a, double b, double c) { bp_set_scalars(s, a, b, c); }
extern "C" void run_set_replay(double* s, double a, double b, double c, long long* slots, long long x, long long t,
                               long long out0, long long out1) {
    bp_set_replay(s, a, b, c, slots, x, t, out0, out1);
}
extern "C" void run_copy_slot(unsigned grid, unsigned block, const long long* slots, int slot, unsigned char* buf,
                              long long nbytes, int inward) {
    bp_launch(grid, block, [=] { bp_copy_slot(slots, slot, buf, nbytes, inward); });
}
"""


@pytest.fixture(scope="module")
def raw_library(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    kernels = [raw_source(name, "double") for name in RAW_SOURCES]
    source = "\n".join([_RAW_PRELUDE, *kernels, _RAW_LAUNCHERS])
    return _build(tmp_path_factory.mktemp("raw_kernels"), source, "-std=c++20", "-pthread")


def run(library: ctypes.CDLL, name: str, n: int, **values: Any) -> dict[str, np.ndarray]:
    """Call kernel ``name`` over ``n`` elements; arrays (already broadcast to ``n``) by name,
    scalars by name; returns the output arrays (fresh ones unless given)."""
    d = DEFINITIONS[name]
    call: list[Any] = [ctypes.c_longlong(n)]
    outputs = {}
    for (pname, ctype, raw), is_out in [(p, False) for p in _params(d.inputs)] + [
        (p, True) for p in _params(d.outputs)
    ]:
        dtype = {
            "double": np.float64, "long long": np.int64, "bool": np.bool_, "float": np.float32,
            "unsigned short": np.uint16,
        }[ctype]
        if pname in d.scalars:
            call.append(
                {"double": ctypes.c_double, "long long": ctypes.c_longlong, "bool": ctypes.c_bool}[ctype](values[pname])
            )
            continue
        array = values.get(pname)
        array = np.zeros(n if not raw else 3, dtype) if array is None else np.ascontiguousarray(array, dtype=dtype)
        if is_out:
            outputs[pname] = array
        call.append(array.ctypes.data_as(ctypes.c_void_p))
    getattr(library, name)(*call)
    return outputs


ACTIVATIONS: dict[str, Callable[[], bp.layers.Elementwise]] = {
    "relu": bp.ReLU,
    "sigmoid": bp.Sigmoid,
    "tanh": bp.Tanh,
    "leaky_relu": lambda: bp.LeakyReLU(0.1),
    "gelu": bp.GELU,
}


def test_every_kernel_is_checked_here() -> None:
    checked = {f"bp_{a}_{k}" for a in ACTIVATIONS for k in ("forward", "backward")} | {
        f"bp_bias_{a}_forward" for a in ACTIVATIONS
    }
    checked |= {
        "bp_bce",
        "bp_adam_update",
        "bp_sgd_momentum_update",
        "bp_sgd_update",
        "bp_dropout_forward",
        "bp_round_bfloat16",  # tests/backends/test_rounding.py
        "bp_round_float16",
    }
    assert set(DEFINITIONS) == checked
    assert set(RAW_SOURCES) == {
        "bp_softmax_ce_rows",
        "bp_mean",
        "bp_set_scalars",
        "bp_set_replay",
        "bp_copy_slot",
    }


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_kernels(name: str, library: ctypes.CDLL, rng: np.random.Generator) -> None:
    layer = ACTIVATIONS[name]()
    bp.Sequential(layer, seed=0, dtype="float64")
    scalars = {"alpha": layer.alpha} if isinstance(layer, bp.LeakyReLU) else {}
    ops = Ops(xp)
    X = np.concatenate(
        [rng.standard_normal(300) * 4, [-1000.0, -40.5, -30.0, -5.0, 0.0, 0.46875, 4.0, 27.0, 30.0, 1000.0]]
    )
    dY, b = rng.standard_normal(X.size), rng.standard_normal(X.size)
    n = X.size
    Y = run(library, f"bp_{name}_forward", n, x=X, **scalars)["y"]
    np.testing.assert_allclose(Y, layer.f(ops, X), rtol=1e-13, atol=1e-300)
    dX = run(library, f"bp_{name}_backward", n, dy=dY, x=X, y=Y, **scalars)["dx"]
    np.testing.assert_allclose(dX, layer.df(ops, dY, X, Y), rtol=1e-12, atol=1e-15)
    Z = X.copy()
    fused = run(library, f"bp_bias_{name}_forward", n, b=b, z=Z, **scalars)["z"]
    np.testing.assert_allclose(fused, layer.f(ops, X + b), rtol=1e-13, atol=1e-300)


def _pointer(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("shape", [(7, 4), (9, 70)])  # 70: more classes than a warp has lanes
def test_softmax_cross_entropy_kernels(
    raw_library: ctypes.CDLL, shape: tuple[int, int], rng: np.random.Generator
) -> None:
    """One warp per row (loss per row and gradient), then one warp for the mean, launched as
    the CuPy backend launches them, give the generic loss and gradient."""
    from backprop.backends import cupy_ops  # noqa: PLC0415 - it imports nothing of CuPy's, but belongs to it

    n, c = shape
    Z = rng.standard_normal(shape) * 5
    Z[0, :4] = [1000.0, -1000.0, 0.0, 3.0]
    labels = rng.integers(0, c, n)
    T = bp.losses.SoftmaxCrossEntropy().prepare_target(bp.backends.Backend("cpu", "float64"), labels, n, c)
    dZ, rows, L = np.full(shape, np.nan), np.full(n, np.nan), np.full(1, np.nan)
    blocks, block = -(-n // cupy_ops._ROWS_PER_BLOCK), cupy_ops._ROWS_PER_BLOCK * cupy_ops._WARP
    raw_library.run_softmax_ce_rows(
        ctypes.c_uint(blocks), ctypes.c_uint(block), _pointer(Z), _pointer(T), _pointer(dZ), _pointer(rows),
        ctypes.c_longlong(n), ctypes.c_int(c),
    )  # fmt: skip
    raw_library.run_mean(_pointer(rows), _pointer(L), ctypes.c_longlong(n))
    L_ref, dZ_ref = bp.losses.SoftmaxCrossEntropy().value_and_grad(Ops(xp), Z, T)
    assert L[0] == pytest.approx(float(L_ref), rel=1e-14)
    np.testing.assert_allclose(dZ, dZ_ref, rtol=1e-14, atol=1e-17)


def test_loss_kernels(library: ctypes.CDLL, rng: np.random.Generator) -> None:
    P = np.concatenate([rng.uniform(0.01, 0.99, 12), [0.0, 1.0, 1e-300]])
    Tb = np.concatenate([rng.uniform(0, 1, 12), [1.0, 0.0, 1.0]])
    out = run(library, "bp_bce", P.size, p=P, t=Tb, scale=float(P.size))
    L_ref, dP_ref = bp.losses.BCE().value_and_grad(Ops(xp), P, Tb)
    assert -out["term"].mean() == pytest.approx(float(L_ref), rel=1e-14)
    np.testing.assert_allclose(out["dp"], dP_ref, rtol=1e-14)


OPTIMIZERS = {
    "Adam": (bp.optim.Adam, {"lr": 0.01}),
    "Adam-wd": (bp.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    "AdamW": (bp.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    "SGD": (bp.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    "SGD-momentum": (bp.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    "SGD-nesterov": (bp.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_kernels_follow_the_reference_rule(name: str, library: ctypes.CDLL, rng: np.random.Generator) -> None:
    """Five steps of the kernel (fed `step_scalars`, as on a GPU) against the per-parameter rule."""
    cls, kwargs = OPTIMIZERS[name]
    model = bp.Sequential(bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2), dtype="float64", seed=3)
    reference = cls(model.parameters(), **kwargs)
    reference.fusable = False  # the per-parameter rule
    p = np.concatenate([np.ravel(q.data) for q in model.parameters()])
    state = {"m": np.zeros_like(p), "v": np.zeros_like(p), "buf": np.zeros_like(p)}
    for step in range(1, 6):
        model.backprop(rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), "mse")
        g = np.concatenate([np.ravel(q.grad) for q in model.parameters()])
        reference.step()
        scalars = np.array([*reference.step_scalars(step), 0.0, 0.0][:3])
        if cls is bp.optim.SGD and reference.momentum:
            run(
                library,
                "bp_sgd_momentum_update",
                p.size,
                g=g,
                scalars=scalars,
                momentum=reference.momentum,
                dampening=reference.dampening,
                nesterov=reference.nesterov,
                wd=reference.weight_decay,
                fresh=step == 1,
                p=p,
                buf=state["buf"],
            )
        elif cls is bp.optim.SGD:
            run(library, "bp_sgd_update", p.size, g=g, scalars=scalars, wd=reference.weight_decay, p=p)
        else:
            beta1, beta2 = reference.betas
            run(
                library,
                "bp_adam_update",
                p.size,
                g=g,
                scalars=scalars,
                beta1=beta1,
                beta2=beta2,
                eps=reference.eps,
                wd=reference.weight_decay,
                decoupled=reference.decoupled_weight_decay,
                p=p,
                m=state["m"],
                v=state["v"],
            )
        expected = np.concatenate([np.ravel(q.data) for q in model.parameters()])
        np.testing.assert_allclose(p, expected, rtol=1e-14, atol=1e-16, err_msg=f"step {step}")
        for q, start in zip(model.parameters(), np.cumsum([0] + [q.data.size for q in model.parameters()])):
            q.data = p[start : start + q.data.size].reshape(q.data.shape).copy()  # both go on from the same weights


def test_set_scalars_kernel(raw_library: ctypes.CDLL) -> None:
    s = np.zeros(3)
    raw_library.run_set_scalars(_pointer(s), ctypes.c_double(0.5), ctypes.c_double(2.0), ctypes.c_double(-3.0))
    np.testing.assert_array_equal(s, [0.5, 2.0, -3.0])


def test_set_replay_kernel(raw_library: ctypes.CDLL) -> None:
    s, slots = np.zeros(3), np.zeros(4, np.int64)
    raw_library.run_set_replay(
        _pointer(s), ctypes.c_double(0.5), ctypes.c_double(2.0), ctypes.c_double(-3.0), _pointer(slots),
        ctypes.c_longlong(11), ctypes.c_longlong(-12), ctypes.c_longlong(2**40), ctypes.c_longlong(0),
    )  # fmt: skip
    np.testing.assert_array_equal(s, [0.5, 2.0, -3.0])
    np.testing.assert_array_equal(slots, [11, -12, 2**40, 0])


@pytest.mark.parametrize("offset", [0, 3])  # 3: the source is not 16-byte aligned (bytes one by one)
@pytest.mark.parametrize("nbytes", [1, 100, 4096 + 7])  # 100: six 16-byte words and a 4-byte tail
def test_graph_copy_kernels(raw_library: ctypes.CDLL, offset: int, nbytes: int, rng: np.random.Generator) -> None:
    """Bytes in through the address in a slot, and out to one, exactly, aligned or not, with
    more bytes than threads (the grid-stride loop) and fewer."""
    source = np.zeros(nbytes + 64, np.uint8)
    start = (-source.ctypes.data) % 16 + offset
    src = source[start : start + nbytes]
    src[:] = rng.integers(0, 256, nbytes)
    dst = np.zeros(nbytes, np.uint8)
    slots = np.array([0, src.ctypes.data, 0, 0], np.int64)
    raw_library.run_copy_slot(
        ctypes.c_uint(2), ctypes.c_uint(32), _pointer(slots), ctypes.c_int(1), _pointer(dst), ctypes.c_longlong(nbytes),
        ctypes.c_int(1),
    )  # fmt: skip
    np.testing.assert_array_equal(dst, src)
    back = np.zeros(nbytes, np.uint8)
    slots[3] = back.ctypes.data
    raw_library.run_copy_slot(
        ctypes.c_uint(1), ctypes.c_uint(64), _pointer(slots), ctypes.c_int(3), _pointer(src), ctypes.c_longlong(nbytes),
        ctypes.c_int(0),
    )  # fmt: skip
    np.testing.assert_array_equal(back, src)


def test_dropout_kernel(library: ctypes.CDLL, rng: np.random.Generator) -> None:
    X, U = rng.standard_normal(40), rng.random(40)
    out = run(library, "bp_dropout_forward", 40, x=X, u=U, keep=0.7)
    Y_ref, scale_ref = Ops(xp).dropout(X, U, 0.7)
    np.testing.assert_allclose(out["y"], Y_ref, rtol=1e-15)
    np.testing.assert_allclose(out["scale"], scale_ref, rtol=1e-15)


def test_a_wrong_kernel_is_caught(library: ctypes.CDLL) -> None:
    """The harness itself can fail: the sigmoid body fed to the ReLU comparison differs."""
    X = np.linspace(-3, 3, 13)
    Y = run(library, "bp_sigmoid_forward", X.size, x=X)["y"]
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(Y, bp.ReLU().f(Ops(xp), X), rtol=1e-13)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1000.0, -1000.0])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_kernels_propagate_nan_and_inf_as_the_generic_path(name: str, library: ctypes.CDLL) -> None:
    """NaN and +-inf in X (forward) and in dY (backward) come out where, and as, the generic
    Array API code gives them: a kernel that maps NaN to a number would hide a diverging run."""
    layer = ACTIVATIONS[name]()
    bp.Sequential(layer, seed=0, dtype="float64")
    scalars = {"alpha": layer.alpha} if isinstance(layer, bp.LeakyReLU) else {}
    ops = Ops(xp)
    X = np.repeat(SPECIAL, SPECIAL.size)  # every pair of a special X and a special dY
    dY = np.tile(SPECIAL, SPECIAL.size)
    with np.errstate(all="ignore"):
        Y_ref = layer.f(ops, X)
        dX_ref = layer.df(ops, dY, X, Y_ref)
        Y = run(library, f"bp_{name}_forward", X.size, x=X, **scalars)["y"]
        dX = run(library, f"bp_{name}_backward", X.size, dy=dY, x=X, y=Y_ref, **scalars)["dx"]
        fused = run(library, f"bp_bias_{name}_forward", X.size, b=np.zeros_like(X), z=X.copy(), **scalars)["z"]
    np.testing.assert_array_equal(np.isnan(Y), np.isnan(Y_ref))
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(Y_ref))
    np.testing.assert_array_equal(np.isnan(dX), np.isnan(dX_ref))
    finite = ~np.isnan(Y_ref)
    np.testing.assert_allclose(Y[finite], Y_ref[finite], rtol=1e-13, atol=1e-300)
    finite = ~np.isnan(dX_ref)
    np.testing.assert_allclose(dX[finite], dX_ref[finite], rtol=1e-12, atol=1e-15)


def test_bce_kernel_turns_a_nan_probability_into_a_nan_loss(library: ctypes.CDLL) -> None:
    P = np.array([0.3, np.nan, 0.7, np.inf, 0.0, 1.0])
    Tb = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = run(library, "bp_bce", P.size, p=P, t=Tb, scale=float(P.size))
    with np.errstate(all="ignore"):
        L_ref, dP_ref = bp.losses.BCE().value_and_grad(Ops(xp), P, Tb)
        term_ref = [float(bp.losses.BCE().value(Ops(xp), P[i : i + 1], Tb[i : i + 1])) for i in range(P.size)]
    np.testing.assert_array_equal(np.isnan(-out["term"]), np.isnan(term_ref))
    np.testing.assert_array_equal(np.isnan(out["dp"]), np.isnan(dP_ref))
    assert np.isnan(-out["term"].mean()) and np.isnan(L_ref)


def test_softmax_cross_entropy_kernel_propagates_nan_and_inf(raw_library: ctypes.CDLL) -> None:
    Z = np.array([[0.5, np.nan, 1.0], [np.nan, 0.5, 1.0], [np.inf, 0.5, 1.0], [0.1, 0.2, 0.3]])
    n, c = Z.shape
    labels = np.array([0, 2, 1, 1], dtype=np.int64)
    dZ, rows = np.full(Z.shape, 7.0), np.full(n, 7.0)
    raw_library.run_softmax_ce_rows(
        ctypes.c_uint(1), ctypes.c_uint(4 * 32), _pointer(Z), _pointer(labels), _pointer(dZ), _pointer(rows),
        ctypes.c_longlong(n), ctypes.c_int(c),
    )  # fmt: skip
    with np.errstate(all="ignore"):
        _, dZ_ref = bp.losses.SoftmaxCrossEntropy().value_and_grad(Ops(xp), Z, labels)
    np.testing.assert_array_equal(np.isnan(dZ), np.isnan(dZ_ref))
    np.testing.assert_array_equal(np.isnan(rows), [True, True, True, False])
