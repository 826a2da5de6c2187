"""How the capture-safe GEMM finds libcublas: through CuPy's own library loader.

Runs without a GPU: only the import path is exercised, with CuPy's loader replaced by a spy.
"""

from __future__ import annotations

import sys

import pytest

from backprop.backends import cublas


def test_libcublas_is_looked_up_through_cupys_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """CuPy 14 loads libcublas (from pip's nvidia wheels, say) in its ``cupy_backends.cuda.libs``
    package ``__getattr__``, which only a ``from ... import cublas`` reaches: a plain
    ``import cupy_backends.cuda.libs.cublas`` bypasses it and fails where the library is not
    on the system path, which silently left every product on ``cupy.matmul`` (not capturable)."""
    cupy = pytest.importorskip("cupy")
    libs = pytest.importorskip("cupy_backends.cuda.libs")
    pathfinder = pytest.importorskip("cuda.pathfinder")
    if not hasattr(libs, "__getattr__"):
        pytest.skip("this CuPy has no lazy library loader (before CuPy 14)")
    monkeypatch.delitem(sys.modules, "cupy_backends.cuda.libs.cublas", raising=False)
    if "cublas" in vars(libs):  # (hasattr would itself run the loader) so that __getattr__ runs
        monkeypatch.delattr(libs, "cublas")
    asked: list[str] = []

    def spy(name: str) -> None:
        asked.append(name)
        raise pathfinder.DynamicLibNotFoundError(f"{name}: hidden by the test")

    monkeypatch.setattr(pathfinder, "load_nvidia_dynamic_lib", spy)
    assert cublas._libcublas_path(cupy) is None  # not found: CuPy's matmul is the fallback
    assert asked == ["cublas"]
