"""Mixed precision on the CPU (`backprop.precision`): every matrix product of every mode takes
operands rounded as the GPU rounds them and sums them in float32 (against a PyTorch twin that
rounds the same way), fp32 is untouched, the float32 master weights keep what bfloat16 would
lose, the digits reach fp32's accuracy in every mode, and the mode is refused where it cannot
run, kept by checkpoints and `to`, and offered by the command line."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop import precision as precision_module
from backprop.backends import Backend, rounding
from backprop.checkpoint.archive import write_archive
from backprop.checkpoint.save import checkpoint_contents
from backprop.cli import main
from backprop.training.graph import graph_unsupported_reason
from helpers import host

REDUCED = ("tf32", "bf16-mixed", "fp16-mixed")
KIND = {"fp32": "float32", "tf32": "tf32", "bf16-mixed": "bfloat16", "fp16-mixed": "float16"}


def mlp(precision: str = "fp32", device: Any = "cpu", seed: int = 0, **kwargs: Any) -> bp.Sequential:
    """Dense layers fused with an activation (ReLU), alone (the last) and with penalties."""
    layers = [bp.Dense(6, 8, l1=1e-3, l2=1e-2), bp.ReLU(), bp.Dense(8, 5), bp.Dropout(0.0), bp.Dense(5, 3)]
    return bp.Sequential(*layers, device=device, seed=seed, precision=precision, **kwargs)


def data(rng: np.random.Generator, rows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((rows, 6)).astype(np.float32) * 3, rng.integers(0, 3, rows)


def bits(x: Any) -> np.ndarray:
    return np.ascontiguousarray(host(x), dtype=np.float32).view(np.uint32)


# ------------------------------------------------------------------------------ refusals
def test_an_unknown_precision_is_refused_with_the_list() -> None:
    with pytest.raises(bp.InvalidParameterError, match="precision must be 'fp32', 'tf32', 'bf16-mixed' or "
                       "'fp16-mixed'; got 'bf16'"):  # fmt: skip
        bp.Sequential(bp.Dense(2, 2), precision="bf16")
    with pytest.raises(bp.InvalidParameterError, match="got 16"):
        mlp().to(precision=16)  # type: ignore[arg-type]


def test_a_float64_model_refuses_a_reduced_precision() -> None:
    for mode in REDUCED:
        with pytest.raises(bp.InvalidParameterError, match=f"precision='{mode}' rounds float32 .* dtype is float64"):
            bp.Sequential(bp.Dense(2, 2), dtype="float64", precision=mode)
    model = bp.Sequential(bp.Dense(2, 2), dtype="float64")
    with pytest.raises(bp.InvalidParameterError, match="dtype='float32', or keep precision='fp32'"):
        model.to(precision="bf16-mixed")
    assert model.precision == "fp32" and model.backend.operands == "float32"  # unchanged
    mixed = mlp("bf16-mixed")
    with pytest.raises(bp.InvalidParameterError, match="dtype is float64"):
        mixed.to(dtype="float64")
    bp.Sequential(bp.Dense(2, 2), dtype="float64", precision="fp32")  # fp32 is every dtype's own arithmetic


@pytest.mark.parametrize(
    ("mode", "capability", "advice"),
    [("bf16-mixed", (7, 5), "Use precision='fp16-mixed' or precision='fp32'"), ("tf32", (7, 0), "fp16-mixed"),
     ("fp16-mixed", (6, 1), "Use precision='fp32' on this GPU")],
)  # fmt: skip
def test_a_gpu_without_the_tensor_cores_is_refused_with_the_reason(
    mode: str, capability: tuple[int, int], advice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked on a stand-in GPU: `precision_backend` asks the device's compute capability."""
    monkeypatch.setattr(precision_module, "Backend", lambda device, dtype, operands: SimpleNamespace(
        device=bp.Device("cuda:1"), operands=operands))  # fmt: skip
    monkeypatch.setattr(precision_module, "compute_capability", lambda index: capability)
    need = precision_module.PRECISIONS[mode].capability
    with pytest.raises(bp.InvalidParameterError) as error:
        precision_module.precision_backend(precision_module.PRECISIONS[mode], "cuda:1", "float32")
    message = str(error.value)
    assert f"compute capability {need[0]}.{need[1]} or newer; cuda:1 has compute capability" in message
    assert advice in message
    monkeypatch.setattr(precision_module, "compute_capability", lambda index: need)
    precision_module.precision_backend(precision_module.PRECISIONS[mode], "cuda:1", "float32")  # new enough


def test_fp16_mixed_is_not_replayed_from_a_cuda_graph() -> None:
    """Its loss scaling decides on the host whether a step updates anything."""
    model = SimpleNamespace(device=bp.Device("cuda:0"), loss_scaler=bp.LossScaler())
    reason = graph_unsupported_reason(model, SimpleNamespace(fusable=True))  # type: ignore[arg-type]
    assert reason is not None and "dynamic loss scaling (fp16-mixed)" in reason and "bf16-mixed" in reason


# ------------------------------------------------------------------------------ the model
def test_precision_is_shown_kept_and_changed_with_to(rng: np.random.Generator) -> None:
    model = mlp()
    assert model.precision == "fp32" and model.loss_scaler is None and "precision" not in repr(model)
    X, _ = data(rng)
    before = host(model.predict(X))
    model.to(precision="bf16-mixed")
    assert model.precision == "bf16-mixed" and model.backend.operands == "bfloat16"
    assert all(layer.backend is model.backend for layer in model.walk())
    assert "precision='bf16-mixed'" in repr(model) and "operands='bfloat16'" in repr(model.backend)
    twin = mlp("bf16-mixed")  # built in bf16 from the same seed: the same weights, the same outputs
    np.testing.assert_array_equal(bits(model.predict(X)), bits(twin.predict(X)))
    assert not np.array_equal(bits(model.predict(X)), bits(before))
    model.to(precision="fp16-mixed")
    assert isinstance(model.loss_scaler, bp.LossScaler) and model.loss_scaler.scale == 2.0**16
    model.to(precision="fp32")
    assert model.loss_scaler is None
    np.testing.assert_array_equal(bits(model.predict(X)), bits(before))


@pytest.mark.parametrize("mode", ["fp32", *REDUCED])
def test_every_product_takes_rounded_operands_and_sums_in_float32(
    mode: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward ``X @ W`` and backward ``dY @ W^T``, ``X^T @ dY`` of every Dense (fused with its
    activation or not), in training and in predict: each operand exactly representable in the
    mode's format, the product float32; in fp32 the very arrays of today, nothing rounded."""
    model = mlp(mode)
    ops, kind = model.backend.ops, KIND[mode]
    seen: list[tuple[str, Any, Any, Any]] = []
    for name in ("matmul", "matmul_tn", "matmul_nt"):
        original = getattr(ops, name)

        def spy(A: Any, B: Any, *args: Any, name: str = name, original: Any = original, **kwargs: Any) -> Any:
            C = original(A, B, *args, **kwargs)
            seen.append((name, A, B, kwargs.get("kind", args[-1] if args else "float32")))
            assert C.dtype == np.float32
            return C

        monkeypatch.setattr(ops, name, spy)
    rounded = []
    monkeypatch.setattr(ops, "round_operand", lambda X, k, out=None: rounded.append(k) or type(ops).round_operand(
        ops, X, k, out))  # fmt: skip
    X, y = data(rng)
    model.backprop(X, y, "cross_entropy")
    model.predict(X)
    assert sorted(name for name, *_ in seen) == ["matmul"] * 6 + ["matmul_nt"] * 2 + ["matmul_tn"] * 3
    for name, A, B, k in seen:
        assert k == kind, name
        for operand in (A, B):
            np.testing.assert_array_equal(bits(rounding.round_operand(np.asarray(operand), kind)), bits(operand))
    if mode == "fp32":
        assert not rounded
        weights = [p.data for p in model.parameters()][::2]
        assert [B for name, _, B, _ in seen if name == "matmul"][:3] == weights  # the arrays themselves (is)
    else:
        assert set(rounded) == {kind}
        assert any(not np.array_equal(bits(rounding.round_operand(host(p.data), kind)), bits(p.data))
                   for p in model.parameters())  # the float32 masters are not rounded themselves  # fmt: skip
    assert all(p.operand is None for p in model.parameters())  # only during a pass


def _torch_round(torch: Any, mode: str) -> Any:
    if mode == "bf16-mixed":
        return lambda t: t.to(torch.bfloat16).float()
    if mode == "fp16-mixed":
        return lambda t: t.half().float()
    return lambda t: (t.contiguous().view(torch.int32) & -8192).view(torch.float32)  # the low 13 bits dropped


@pytest.mark.parametrize("mode", REDUCED)
def test_gradients_match_a_pytorch_twin_that_rounds_alike(mode: str, rng: np.random.Generator) -> None:
    """PyTorch's own conversions (bfloat16, half; TF32 as its bits) in a linear layer whose
    forward and backward products take rounded operands: the same loss and gradients, up to
    float32 summation order."""
    torch = pytest.importorskip("torch")
    r = _torch_round(torch, mode)

    class RoundedLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, X: Any, W: Any, b: Any) -> Any:
            Xq, Wq = r(X), r(W)
            ctx.save_for_backward(Xq, Wq)
            return Xq @ Wq + b

        @staticmethod
        def backward(ctx: Any, dY: Any) -> Any:
            Xq, Wq = ctx.saved_tensors
            dYq = r(dY)
            return dYq @ Wq.T, Xq.T @ dYq, dY.sum(0)

    model = bp.Sequential(bp.Dense(6, 16), bp.Tanh(), bp.Dense(16, 3), seed=1, precision=mode)
    X, y = data(rng, 12)
    loss = model.backprop(X, y, "cross_entropy")
    W1, b1, W2, b2 = (torch.tensor(host(p.data), requires_grad=True) for p in model.parameters())
    logits = RoundedLinear.apply(torch.tanh(RoundedLinear.apply(torch.from_numpy(X), W1, b1)), W2, b2)
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
    for p, t in zip(model.parameters(), (W1, b1, W2, b2)):
        np.testing.assert_allclose(host(p.grad), t.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=p.name)


def test_master_weights_keep_updates_smaller_than_a_bfloat16_ulp() -> None:
    """w = 1 and steps of about 2^-11 (an eighth of bfloat16's spacing below 1): bfloat16 weights
    would round each step away and never move; the float32 master accumulates them exactly, and
    the products see the new weight once the master has passed bfloat16's midpoint 1 - 2^-9."""
    model = bp.Sequential(bp.Dense(1, 1, bias=False, init="zeros"), seed=0, precision="bf16-mixed")
    model.load_state_dict({"0.W": np.ones((1, 1))})
    optimizer = bp.optim.SGD(model.parameters(), lr=2.0**-12)
    X, T = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    master = np.float32(1.0)
    for step in range(1, 9):
        read = rounding.round_bfloat16(np.array([master]))[0]  # what the product takes
        assert read == (1.0 if step <= 5 else np.float32(1.0 - 2.0**-8))
        model.backprop(X, T, "mse")  # dW = 2 (bf16(w) - 0)
        optimizer.step()
        master = np.float32(master - np.float32(2.0**-12) * np.float32(2.0 * read))
        assert float(host(model.parameters()[0].data)[0, 0]) == float(master)
        if step <= 5:
            assert float(master) == 1.0 - step * 2.0**-11  # every step kept, none lost to rounding
    assert rounding.round_bfloat16(np.float32([1.0 - 2.0**-11]))[0] == 1.0  # a bfloat16 weight stays put


def test_digits_train_to_fp32_accuracy_within_0_3_points_in_every_mode() -> None:
    dataset, _ = bp.datasets.digits().standardize()
    accuracy = {}
    for mode in ("fp32", *REDUCED):
        model = bp.Sequential(bp.Dense(64, 64), bp.ReLU(), bp.Dense(64, 10), seed=0, precision=mode)
        optimizer = bp.optim.Adam(model.parameters(), lr=2e-3)
        history = model.fit(dataset.X_train, dataset.y_train, loss="cross_entropy", optimizer=optimizer, epochs=8,
                            batch_size=64, verbose=0)  # fmt: skip
        accuracy[mode] = model.evaluate(dataset.X_test, dataset.y_test, "cross_entropy", ["accuracy"])["accuracy"]
        assert ("skipped_steps" in history) is (mode == "fp16-mixed")
    assert accuracy["fp32"] > 0.95
    for mode in REDUCED:
        assert abs(accuracy[mode] - accuracy["fp32"]) <= 0.003, accuracy


# ------------------------------------------------------------------------------ fp16 overflow
def test_fp16_overflow_skips_steps_backs_off_and_never_makes_nan_weights(rng: np.random.Generator) -> None:
    """A scale of 2^30 makes the scaled gradients overflow float16: those steps are skipped
    (weights and Adam's state untouched), the scale halves each time until it fits, and the
    history records it; the weights stay finite throughout."""
    model = mlp("fp16-mixed")
    model.loss_scaler = bp.LossScaler(init_scale=2.0**30)
    optimizer = bp.optim.Adam(model.parameters(), lr=1e-2)
    X, y = data(rng, 40)
    start = model.state_dict()
    step = bp.training.make_step(model, "cross_entropy", optimizer)
    Xd, Td = model.checked_data(X, y, bp.losses.get_loss("cross_entropy"))
    step(Xd, Td)
    assert model.loss_scaler.scale == 2.0**29 and model.loss_scaler.skipped == 1
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, start[name])
    assert all(s.get("step", 0) == 0 for s in optimizer.state)  # Adam did not count the step
    history = model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=6, batch_size=10, verbose=0)
    skipped = history["skipped_steps"]
    assert skipped[0] == 4 and skipped[-1] == 0 and sum(skipped) + 1 == model.loss_scaler.skipped
    assert history["loss_scale"][0] == 2.0 ** (29 - 4) and history["loss_scale"][-1] == model.loss_scaler.scale
    assert all(s["step"] == 24 - sum(skipped) for s in optimizer.state)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    assert any(not np.array_equal(v, start[k]) for k, v in model.state_dict().items())  # it did train


# ------------------------------------------------------------------------------ elsewhere
@pytest.mark.parametrize("mode", REDUCED)
def test_every_backend_computes_the_numpy_emulation(mode: str, device: bp.Device, rng: np.random.Generator) -> None:
    """Namespaces without a flat buffer (array-api-strict, torch) round each weight in its layer;
    the numbers are NumPy's, up to float32 summation order."""
    X, y = data(rng)
    reference = mlp(mode)
    reference.backprop(X, y, "cross_entropy")
    model = mlp(mode, device=device)
    model.backprop(X, y, "cross_entropy")
    # a GPU's sums in another order may move a float32 value by its last bit, and its rounding by
    # one 16-bit step (see tests/backends/test_gpu_precision.py); the CPU namespaces sum alike
    tol = {"rtol": 2e-3, "atol": 1e-5} if device.type == "cuda" else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(host(model.predict(X)), host(reference.predict(X)), **tol)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(host(p.grad), host(q.grad), err_msg=p.name, **tol)


def test_numba_kernels_train_the_same_numbers(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """numba's kernels (Adam, bias + ReLU, softmax cross-entropy) around the rounded products."""
    from backprop.backends import numba_ops  # noqa: PLC0415

    if not numba_ops.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(numba_ops, "MIN_SIZE", dict.fromkeys(numba_ops.MIN_SIZE, 0))
    X, y = data(rng, 30)
    states = []
    for kernels in ("numpy", "numba"):
        model = mlp("bf16-mixed", device=bp.Device("cpu", kernels=kernels))
        optimizer = bp.optim.Adam(model.parameters(), lr=1e-2)
        model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=3, batch_size=10, verbose=0)
        states.append(model.state_dict())
    for name, value in states[0].items():
        np.testing.assert_allclose(states[1][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_backend_pickles_with_its_operands() -> None:
    import pickle  # noqa: PLC0415

    backend = pickle.loads(pickle.dumps(Backend("cpu", "float32", "float16")))
    assert backend.operands == "float16"
    with pytest.raises(ValueError, match="rounded from float32, not float64"):
        Backend("cpu", "float64", "tf32")


# ------------------------------------------------------------------------------ files and CLI
@pytest.mark.parametrize("mode", REDUCED)
def test_checkpoints_keep_the_precision_and_the_loss_scaler(
    mode: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    model = mlp(mode)
    optimizer = bp.optim.Adam(model.parameters())
    X, y = data(rng)
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=2, verbose=0)
    if model.loss_scaler is not None:
        model.loss_scaler.update(True)  # a state worth keeping: 2^15, one skip, tracker 0
        model.loss_scaler.update(False)
    model.save(tmp_path / "run.npz", optimizer)
    loaded = bp.load_checkpoint(tmp_path / "run.npz").model
    assert loaded.precision == mode
    np.testing.assert_array_equal(bits(loaded.predict(X)), bits(model.predict(X)))
    if mode == "fp16-mixed":
        assert loaded.loss_scaler.state_dict() == model.loss_scaler.state_dict()
        assert (loaded.loss_scaler.scale, loaded.loss_scaler.skipped, loaded.loss_scaler.growth_tracker) == (
            2.0**15, 1, 1)  # fmt: skip
    else:
        assert loaded.loss_scaler is None
    as_fp32 = bp.load_checkpoint(tmp_path / "run.npz", precision="fp32").model
    assert as_fp32.precision == "fp32" and as_fp32.loss_scaler is None


def test_a_checkpoint_from_before_mixed_precision_loads_as_fp32(tmp_path: Path) -> None:
    metadata, arrays = checkpoint_contents(mlp("bf16-mixed"))
    del metadata["precision"], metadata["loss_scaler"]  # what older versions wrote
    write_archive(tmp_path / "old.npz", metadata, arrays)
    model = bp.load(tmp_path / "old.npz")
    assert model.precision == "fp32" and model.backend.operands == "float32"
    with pytest.raises(bp.CheckpointError, match="its precision cannot be used"):
        metadata["precision"] = "fp8"
        write_archive(tmp_path / "bad.npz", metadata, arrays)
        bp.load(tmp_path / "bad.npz")


def test_the_command_line_trains_in_a_precision_and_resumes_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.npz"
    code = main(["train", "--precision", "bf16-mixed", "--epochs", "2", "--layers", "32,10", "--checkpoint", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "parameters, cpu float32 bf16-mixed, seed 0" in out
    checkpoint = bp.load_checkpoint(path)
    assert checkpoint.model.precision == "bf16-mixed" and checkpoint.extra["args"]["precision"] == "bf16-mixed"
    assert main(["train", "--resume", str(path), "--epochs", "3", "--precision", "fp32"]) == 0
    out, err = capsys.readouterr()
    assert "--precision fp32 is ignored: the resumed run keeps its own (bf16-mixed)" in err
    assert bp.load(path).precision == "bf16-mixed"
    assert main(["train", "--precision", "fp16-mixed", "--epochs", "1", "--layers", "16,10"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ .*loss_scale +skipped_steps ", out, flags=re.MULTILINE), out  # the table's header
    assert re.search(r"^epoch 1/1 +[\d.]+ +[\d.]+ +65536 +0\.0+ ", out, flags=re.MULTILINE), out
    assert main(["train", "--precision", "bf16"]) == 2
    assert "--precision: invalid choice: 'bf16' (choose from 'fp32', 'tf32', 'bf16-mixed', 'fp16-mixed')" in (
        capsys.readouterr().err)  # fmt: skip
