"""Mixed precision on a GPU against the CPU emulation: the rounding kernels bitwise, cuBLAS's
TF32 conversion against the emulated one, whole models' outputs and gradients, CUDA-graph
replay of mixed steps, fp16's loss scaling on the device. Each skips, visibly, without a GPU
(the same checks run on the host elsewhere: test_rounding.py, test_precision.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_rounding import float32_patterns

import backprop as bp
from backprop.backends import Backend, rounding
from backprop.backends.cublas import widen
from backprop.training import make_step
from helpers import host


def gpu_or_skip() -> Any:
    gpus, why = bp.backends.cuda_gpus()
    if not gpus:
        pytest.skip(f"needs a usable GPU ({str(why).split(':')[0]})")
    import cupy  # noqa: PLC0415 - only with a GPU

    return cupy


@pytest.mark.parametrize("kind", ["bfloat16", "float16"])
def test_rounding_kernels_give_the_host_bits(kind: str) -> None:
    cupy = gpu_or_skip()
    patterns = float32_patterns(np.random.default_rng(3))
    backend = Backend("cuda:0", "float32")
    with backend.activate():
        got = host(backend.ops.round_operand(backend.from_host(patterns), kind))
    with np.errstate(over="ignore", invalid="ignore"):  # the host's bits (test_rounding.py: ml_dtypes', NumPy's)
        if kind == "bfloat16":
            expected = (rounding.round_bfloat16(patterns).view(np.uint32) >> 16).astype(np.uint16)
        else:
            expected = patterns.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(got, expected)
    finite = np.isfinite(patterns)
    values = host(widen(cupy, cupy.asarray(got), kind))
    np.testing.assert_array_equal(values[finite], rounding.round_operand(patterns, kind)[finite])


def test_cublas_tf32_conversion_is_the_emulated_one() -> None:
    """``A @ I`` with TF32 operands reads back each entry of A as the tensor cores converted it
    (large enough for cuBLAS to take its tensor-core kernels): the emulation truncates; a cuBLAS
    that rounds to nearest instead fails here, and the message says so."""
    gpu_or_skip()
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((512, 512)) * 10).astype(np.float32)
    backend = Backend("cuda:0", "float32", "tf32")
    with backend.activate():
        C = host(backend.ops.matmul(backend.from_host(A), backend.from_host(np.eye(512, dtype=np.float32)), "tf32"))
    truncated = rounding.round_tf32(A)
    u = A.view(np.uint32)
    nearest_away = ((u + 0x1000) & 0xFFFFE000).view(np.float32)  # round half away from zero (cvt.rna.tf32)
    which = "truncation" if np.array_equal(C, truncated) else "round-to-nearest" if np.array_equal(
        C, nearest_away) else "neither"  # fmt: skip
    assert which == "truncation", f"cuBLAS's TF32 conversion is {which}: backends/rounding.round_tf32 must follow it"


@pytest.mark.parametrize("kind", ["tf32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", ["matmul", "matmul_tn", "matmul_nt"])
def test_gpu_products_of_the_same_operands_are_the_emulations(kind: str, name: str) -> None:
    """The same float32 inputs rounded on each side, multiplied by cublasGemmEx and by NumPy:
    equal up to the order of the float32 sums (the products themselves are exact on both)."""
    gpu_or_skip()
    rng = np.random.default_rng(4)
    shapes = {"matmul": ((96, 80), (80, 72)), "matmul_tn": ((80, 96), (80, 72)), "matmul_nt": ((96, 80), (72, 80))}
    A, B = (rng.standard_normal(s).astype(np.float32) for s in shapes[name])
    gpu, cpu = Backend("cuda:0", "float32"), Backend("cpu", "float32")
    with gpu.activate():
        got = host(getattr(gpu.ops, name)(*(gpu.ops.round_operand(gpu.from_host(M), kind) for M in (A, B)), kind=kind))
    expected = getattr(cpu.ops, name)(*(cpu.ops.round_operand(M, kind) for M in (A, B)), kind=kind)
    atol = 80 * np.finfo(np.float32).eps * np.abs(A).max() * np.abs(B).max()  # k terms' rounding
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("mode", ["tf32", "bf16-mixed", "fp16-mixed"])
def test_a_gpu_model_computes_the_cpu_emulation(mode: str) -> None:
    """A whole forward and backward pass on each device. Sums in another order and the fused GPU
    kernels (softmax cross-entropy, GELU) may differ from NumPy's in a float32 value's last
    bit, and rounding that value may then land one 16-bit step (2^-8 relative for bfloat16)
    away: hence the tolerances, beyond float32's."""
    gpu_or_skip()
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 20)).astype(np.float32), rng.integers(0, 5, 64)
    models = [bp.Sequential(bp.Dense(20, 64), bp.ReLU(), bp.Dense(64, 64), bp.GELU(), bp.Dense(64, 5), device=d,
                            seed=0, precision=mode) for d in ("cpu", "cuda")]  # fmt: skip
    losses = [m.backprop(X, y, "cross_entropy") for m in models]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    for p, q in zip(*(m.parameters() for m in models)):
        np.testing.assert_allclose(host(q.grad), host(p.grad), rtol=2e-3, atol=1e-5, err_msg=p.name)
    np.testing.assert_allclose(host(models[1].predict(X)), host(models[0].predict(X)), rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("mode", ["tf32", "bf16-mixed"])
def test_a_mixed_step_replays_from_a_cuda_graph_as_it_runs_eagerly(mode: str) -> None:
    """The 16-bit weights' refresh, the activations' conversions and cublasGemmEx are all in the
    captured graph: replays give the eager steps' bits."""
    gpu_or_skip()
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((32, 16)).astype(np.float32), rng.integers(0, 4, 32)) for _ in range(3)]
    results = []
    for graph in (False, True):
        model = bp.Sequential(bp.Dense(16, 32), bp.ReLU(), bp.Dense(32, 4), device="cuda", seed=0, precision=mode)
        optimizer = bp.optim.Adam(model.parameters(), lr=1e-2)
        step = make_step(model, "cross_entropy", optimizer, graph=graph)
        loss = bp.losses.get_loss("cross_entropy")
        data = [model.checked_data(X, y, loss) for X, y in batches]
        for i in range(10):
            step(*data[i % 3])
        if graph:
            assert step.graph is None and step.core.replaying
        results.append(model.state_dict())
    for name, value in results[0].items():
        np.testing.assert_array_equal(results[1][name], value, err_msg=name)


def test_fp16_mixed_backs_off_on_a_gpu_and_is_not_replayed() -> None:
    gpu_or_skip()
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((80, 6)).astype(np.float32), rng.integers(0, 3, 80)
    model = bp.Sequential(bp.Dense(6, 16), bp.ReLU(), bp.Dense(16, 3), device="cuda", seed=0, precision="fp16-mixed")
    model.loss_scaler = bp.LossScaler(init_scale=2.0**30)
    with pytest.warns(UserWarning, match="dynamic loss scaling"):
        history = model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.Adam(model.parameters()), epochs=6,
                            batch_size=8, graph=True, verbose=0)  # fmt: skip
    assert history["skipped_steps"][0] > 0 and history["skipped_steps"][-1] == 0
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_the_16_bit_weights_are_one_buffer_refreshed_whole() -> None:
    cupy = gpu_or_skip()
    model = bp.Sequential(bp.Dense(5, 8), bp.ReLU(), bp.Dense(8, 3), device="cuda", seed=0, precision="bf16-mixed")
    arenas = model.parameters()[0].arenas
    views = arenas.refresh_operands()
    flat = arenas._operands[0]
    assert flat.dtype == cupy.uint16 and flat.size == arenas.data.flat.size
    start, stop = flat.data.ptr, flat.data.ptr + flat.nbytes
    assert all(start <= v.data.ptr < stop and v.dtype == cupy.uint16 for v in views)  # views of the one buffer
    expected = (rounding.round_bfloat16(host(arenas.data.flat)).view(np.uint32) >> 16).astype(np.uint16)
    np.testing.assert_array_equal(host(flat), expected)
