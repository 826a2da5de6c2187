"""Device parsing, CUDA probing and the error a user gets when CUDA is not usable."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop.backends import cuda


def test_canonical_names() -> None:
    assert bp.Device("cpu").name == "cpu" and bp.Device(" CPU ") == bp.Device("cpu")
    assert bp.Device("cuda").name == "cuda:0" and bp.Device("cuda:0") == bp.Device("cuda")
    assert bp.Device("cuda:3").index == 3 and bp.Device("cuda:3").type == "cuda"
    assert bp.get_device("cuda:1") == bp.Device("cuda:1") and bp.get_device(bp.Device("cpu")).name == "cpu"
    assert len({bp.Device("cpu"), bp.Device("CPU"), bp.Device("cuda"), bp.Device("cuda:0")}) == 2
    assert repr(bp.Device("cuda:2")) == "Device('cuda:2')" and str(bp.Device("cuda:2")) == "cuda:2"
    assert bp.Device(namespace="numpy") == bp.Device("cpu")


def test_generic_namespace_devices() -> None:
    pytest.importorskip("array_api_strict")
    default = bp.Device(namespace="array_api_strict")
    assert default.name == "array_api_strict:CPU_DEVICE" and default.type == "array_api"
    other = bp.Device("device1", namespace="array_api_strict")
    assert other != default and other.name == "array_api_strict:device1"
    assert pickle.loads(pickle.dumps(other)) == other
    with pytest.raises(ValueError, match="has no device 'gpu'; its devices are 'CPU_DEVICE'"):
        bp.Device("gpu", namespace="array_api_strict")
    with pytest.raises(ValueError, match="does not support float64"):
        bp.Sequential(bp.Dense(2, 2), device=bp.Device("no_float64", namespace="array_api_strict"), dtype="float64")


def test_devices_are_immutable() -> None:
    with pytest.raises(AttributeError):
        bp.Device("cpu").index = 2


def test_available_devices_starts_with_the_cpu() -> None:
    devices = bp.available_devices()
    assert devices[0] == bp.Device("cpu")
    gpus, why = bp.backends.cuda_gpus()
    assert len(devices) == 1 + len(gpus)
    assert (why is None) == bool(gpus)


def test_cuda_without_cupy_says_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(cuda.importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real(name, *a))
    with pytest.raises(bp.CudaUnavailableError, match=r"CuPy is not installed.*backprop-nn\[cuda12\]"):
        bp.Sequential(bp.Dense(2, 2), device="cuda")
    assert "not installed" in bp.backends.cuda_gpus()[1]


def test_cuda_without_a_usable_gpu_says_why() -> None:
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy not installed here; covered by the monkeypatched test")
    gpus, _ = bp.backends.cuda_gpus()
    if gpus:
        assert bp.Sequential(bp.Dense(2, 2), device="cuda").device == bp.Device("cuda:0")
        with pytest.raises(bp.CudaUnavailableError, match="does not exist: this machine has"):
            bp.Sequential(bp.Dense(2, 2), device=f"cuda:{len(gpus)}")
        return
    with pytest.raises(bp.CudaUnavailableError) as err:
        bp.Sequential(bp.Dense(2, 2), device="cuda:0")
    assert "CuPy is installed but" in str(err.value) and "device='cpu'" in str(err.value)


def test_torch_devices_parse_and_round_trip() -> None:
    pytest.importorskip("torch")
    d = bp.Device("torch")
    assert d == bp.Device("torch:cpu") == bp.Device(namespace="torch") and d.name == "torch:cpu"
    assert pickle.loads(pickle.dumps(d)) == d
    with pytest.raises(ValueError, match="unknown torch device 'gpu'"):
        bp.Device("torch:gpu")
    with pytest.raises(ValueError, match="torch device type 'meta' is not supported"):
        bp.Device("torch:meta")


def test_a_namespace_of_immutable_arrays_is_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """JAX's arrays cannot be written in place; array-api-compat says so of an array, and the
    device is refused before any model is built on it (array-api-strict made to look so)."""
    import array_api_compat  # noqa: PLC0415

    bp.Device(namespace="array_api_strict")  # writeable: accepted
    monkeypatch.setattr(array_api_compat, "is_writeable_array", lambda x: False)
    with pytest.raises(ValueError, match="array_api_strict's arrays are immutable.*in place"):
        bp.Device(namespace="array_api_strict")


def test_jax_is_refused_with_the_reason() -> None:
    pytest.importorskip("jax", reason="JAX is not installed: its refusal is tested through a stand-in above")
    with pytest.raises(ValueError, match="immutable"):
        bp.Device(namespace="jax.numpy")


def test_a_namespace_that_is_not_one_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="math is not an Array API namespace"):
        bp.Device(namespace="math")


def test_a_torch_model_takes_tensors_on_its_device_and_numpy_models_refuse_them() -> None:
    torch = pytest.importorskip("torch")
    model = bp.Sequential(bp.Dense(2, 1), device="torch", seed=0)
    X = np.ones((3, 2), dtype=np.float32)
    assert torch.equal(model.predict(torch.ones(3, 2)), model.predict(X))
    with pytest.raises(TypeError, match=r"device='torch'"):
        bp.Sequential(bp.Dense(2, 1), seed=0).predict(torch.ones(3, 2))
