"""The capture-safe GEMM's cuBLAS bookkeeping, checked without a GPU through a fake libcublas:
one handle per (device, host thread), one workspace per stream, a failed handle falling back
to CuPy's matmul, and sizes beyond cuBLAS's 32-bit ints refused instead of wrapped."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from backprop.backends import cublas


class FakeLib:
    """Records the cuBLAS calls the handle makes; ``create_status`` is what cublasCreate returns."""

    def __init__(self, create_status: int = 0):
        self.create_status = create_status
        self.created = 0
        self.calls: list[tuple[str, Any, Any]] = []

    def cublasCreate_v2(self, handle: Any) -> int:
        self.created += 1
        handle._obj.value = self.created  # a distinct non-null handle each time
        return self.create_status

    def cublasSetStream_v2(self, handle: Any, stream: Any) -> int:
        self.calls.append(("stream", handle.value, stream.value))
        return 0

    def cublasSetWorkspace_v2(self, handle: Any, ptr: Any, size: int) -> int:
        self.calls.append(("workspace", handle.value, ptr.value))
        return 0


class FakeArray:
    _next = 4096

    def __init__(self) -> None:
        FakeArray._next += 4096
        self.data = SimpleNamespace(ptr=FakeArray._next)


def fake_cupy() -> Any:
    return SimpleNamespace(
        uint8="uint8",
        empty=lambda n, dtype: FakeArray(),
        cuda=SimpleNamespace(Device=lambda i: contextlib.nullcontext()),
    )


@pytest.fixture
def lib(monkeypatch: pytest.MonkeyPatch) -> FakeLib:
    fake = FakeLib()
    monkeypatch.setattr(cublas, "_HANDLES", {})
    monkeypatch.setattr(cublas, "_load_library", lambda cupy: fake)
    return fake


def test_each_host_thread_gets_its_own_handle(lib: FakeLib) -> None:
    cupy = fake_cupy()
    mine = cublas._handle(0, cupy)
    assert cublas._handle(0, cupy) is mine  # made once per thread
    theirs: list[Any] = []
    worker = threading.Thread(target=lambda: theirs.append(cublas._handle(0, cupy)))
    worker.start()
    worker.join()
    assert theirs[0] is not None and theirs[0] is not mine
    assert cublas._handle(1, cupy) is not mine  # and per device
    assert lib.created == 3


def test_each_stream_gets_its_own_workspace(lib: FakeLib) -> None:
    handle = cublas._handle(0, fake_cupy())
    assert handle is not None
    for stream in (11, 22, 11, 11, 22):
        handle.bind(stream)
    binds = [(kind, value) for kind, _, value in lib.calls]
    streams = [value for kind, value in binds if kind == "stream"]
    assert streams == [11, 22, 11, 22]  # re-bound only when the stream changes
    spaces = [value for kind, value in binds if kind == "workspace"]
    # every bind sets the stream's workspace (binding a stream resets cuBLAS's), each stream its own
    assert spaces[0] == spaces[2] and spaces[1] == spaces[3] and spaces[0] != spaces[1]


def test_a_failed_handle_falls_back_to_cupy_matmul_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLib(create_status=1)  # CUBLAS_STATUS_NOT_INITIALIZED
    monkeypatch.setattr(cublas, "_HANDLES", {})
    monkeypatch.setattr(cublas, "_load_library", lambda cupy: fake)
    with pytest.warns(RuntimeWarning, match="cupy.matmul instead"):
        assert cublas._handle(0, fake_cupy()) is None
    assert cublas._handle(0, fake_cupy()) is None  # remembered: no second attempt, no second warning
    assert fake.created == 1


@pytest.mark.parametrize(
    ("a", "b", "ta", "tb", "expected"),
    [
        ((5, 3), (3, 4), False, False, (5, 4, 3)),
        ((3, 5), (3, 4), True, False, (5, 4, 3)),
        ((5, 3), (4, 3), False, True, (5, 4, 3)),
    ],
)
def test_gemm_shape(a: tuple, b: tuple, ta: bool, tb: bool, expected: tuple) -> None:
    assert cublas.gemm_shape(a, b, ta, tb) == expected


def test_gemm_shape_refuses_mismatches_and_sizes_beyond_32_bits() -> None:
    with pytest.raises(ValueError, match="incompatible shapes"):
        cublas.gemm_shape((5, 3), (4, 4), False, False)
    rows = 2**32 + 5  # a predict over more rows than an int holds: cuBLAS would see 5
    with pytest.raises(ValueError, match=r"beyond cuBLAS's 32-bit limit .* batch_size"):
        cublas.gemm_shape((rows, 3), (3, 4), False, False)
    with pytest.raises(ValueError, match="32-bit"):
        cublas.gemm_shape((2**31, 3), (2**31, 4), True, False)  # k too large (the weight gradient)
    assert cublas.gemm_shape((2**31 - 1, 3), (3, 4), False, False)[0] == 2**31 - 1
    assert ctypes.c_int(2**31 - 1).value == 2**31 - 1  # the largest size that survives the int argument
