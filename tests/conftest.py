"""The test matrix: every test that takes ``device`` runs on numpy, array-api-strict, PyTorch's
CPU tensors (through array-api-compat) and cupy.

CuPy cases are *skipped*, visibly, where no GPU is usable; torch cases where PyTorch is not
installed. ``BACKPROP_TEST_BACKENDS=cupy``
(comma-separated names) restricts the matrix, and turns a missing GPU into a failure, so a
GPU run cannot pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import backprop as bp

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "cupy")


def _selected() -> tuple[list[str], bool]:
    raw = os.environ.get("BACKPROP_TEST_BACKENDS")
    if not raw:
        return list(ALL_BACKENDS), False
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"BACKPROP_TEST_BACKENDS: unknown {sorted(unknown)}; choose from {ALL_BACKENDS}")
    return names, True


def make_device(name: str) -> bp.Device:
    if name == "numpy":
        return bp.Device("cpu")
    if name == "array_api_strict":
        return bp.Device(namespace="array_api_strict")
    if name == "torch":
        return bp.Device("torch")
    return bp.Device("cuda:0")


def _backend_params() -> list:
    names, explicit = _selected()
    params = []
    for name in names:
        marks = []
        if name == "cupy" and not explicit:
            gpus, why = bp.backends.cuda_gpus()
            if not gpus:
                marks.append(pytest.mark.skip(reason=f"no usable GPU: {str(why).split(':')[0]}"))
        if name == "torch" and not explicit and importlib.util.find_spec("torch") is None:
            marks.append(pytest.mark.skip(reason="PyTorch is not installed"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


BACKEND_PARAMS = _backend_params()


@pytest.fixture(params=BACKEND_PARAMS)
def device(request: pytest.FixtureRequest) -> bp.Device:
    """Each backend in turn, as a `bp.Device`."""
    return make_device(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
