"""The NCCL path without a GPU: the dtype and reduction maps, the unique id sent over MPI,
the calls `NcclCollectives` makes (pointers, counts, the current stream), and how ranks agree
on NCCL or fall back together; with fake ``nccl`` and ``cupy`` modules and fake MPI ranks."""

from __future__ import annotations

import contextlib
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from backprop import distributed
from backprop.backends import nccl as nccl_backend
from backprop.distributed import comm as comm_module


class FakeNccl:
    """``cupy.cuda.nccl`` as far as we use it: constants, ids, a communicator that records."""

    NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
    available = True

    def __init__(self) -> None:
        self.ids_made = 0
        self.communicators: list[Any] = []

    def get_unique_id(self) -> bytes:
        self.ids_made += 1
        return b"\x07" * 128

    def get_version(self) -> int:
        return 22805

    def NcclCommunicator(self, ndev: int, uid: bytes, rank: int) -> Any:
        calls: list[tuple[Any, ...]] = []
        comm = SimpleNamespace(
            args=(ndev, uid, rank),
            calls=calls,
            allReduce=lambda *a: calls.append(("allReduce", *a)),
            bcast=lambda *a: calls.append(("bcast", *a)),
            destroy=lambda: calls.append(("destroy",)),
            abort=lambda: calls.append(("abort",)),
        )
        self.communicators.append(comm)
        return comm


class FakeCupy:
    """Enough of ``cupy`` for `NcclCollectives`: devices (recorded) and the current stream."""

    def __init__(self) -> None:
        self.devices_entered: list[int] = []
        self.log: list[tuple[Any, ...]] = []  # stream operations, in order
        self.current = self._stream("compute", 0xABC)
        self.cuda = SimpleNamespace(
            Device=self._device,
            get_current_stream=lambda: self.current,
            Stream=lambda non_blocking: self._stream("side", 0xDEF),
            Event=self._event,
        )

    def _stream(self, name: str, ptr: int) -> Any:
        return SimpleNamespace(
            name=name,
            ptr=ptr,
            synchronize=lambda: None,
            wait_event=lambda event: self.log.append(("wait", name, event.n)),
        )

    def _event(self, disable_timing: bool) -> Any:
        event = SimpleNamespace(n=sum(1 for entry in self.log if entry[0] == "record"))
        event.record = lambda stream: self.log.append(("record", stream.name, event.n))
        return event

    @contextlib.contextmanager
    def _device(self, index: int) -> Any:
        self.devices_entered.append(index)
        yield


class FakeGpuArray:
    """A CuPy-like array: ``data.ptr``, ``size``, ``dtype``, ``flags``, ``device.id``."""

    def __init__(self, ptr: int, size: int, dtype: str = "float32", contiguous: bool = True, device: int = 1):
        self.data = SimpleNamespace(ptr=ptr)
        self.size, self.dtype = size, np.dtype(dtype)
        self.flags = SimpleNamespace(c_contiguous=contiguous)
        self.device = SimpleNamespace(id=device)


class Channel:
    """Fake MPI ranks of one job: ``bcast`` hands the root's object to everyone (a real
    ``bcast`` is collective; here the root's call comes first)."""

    def __init__(self, size: int):
        self.size, self.value = size, None
        self.bcasts = 0

    def rank(self, r: int) -> Any:
        channel = self

        class Rank:
            def Get_rank(self) -> int:
                return r

            def Get_size(self) -> int:
                return channel.size

            def bcast(self, obj: Any, root: int = 0) -> Any:
                channel.bcasts += 1
                if r == root:
                    channel.value = obj
                return channel.value

        return Rank()


def test_dtypes_and_reductions_map_to_nccl_constants() -> None:
    nccl = FakeNccl()
    assert nccl_backend.nccl_dtype(nccl, np.float32) == nccl.NCCL_FLOAT32
    assert nccl_backend.nccl_dtype(nccl, "float64") == nccl.NCCL_FLOAT64
    assert nccl_backend.nccl_dtype(nccl, np.dtype("float16")) == nccl.NCCL_FLOAT16
    assert nccl_backend.nccl_dtype(nccl, np.int64) == nccl.NCCL_INT64
    for bad in (np.complex64, np.bool_, np.int16):
        with pytest.raises(TypeError, match="NCCL cannot reduce arrays of dtype"):
            nccl_backend.nccl_dtype(nccl, bad)
    assert [nccl_backend.nccl_op(nccl, op) for op in ("sum", "prod", "max", "min", "avg")] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown reduction"):
        nccl_backend.nccl_op(nccl, "mean")
    old = SimpleNamespace(NCCL_SUM=0)  # an NCCL before 2.10 has no average
    with pytest.raises(nccl_backend.NcclUnavailableError, match="no 'avg'"):
        nccl_backend.nccl_op(old, "avg")


def test_bfloat16_maps_to_nccl_bfloat16() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert nccl_backend.nccl_dtype(FakeNccl(), ml_dtypes.bfloat16) == FakeNccl.NCCL_BFLOAT16


def test_every_rank_gets_the_id_made_once_on_the_root() -> None:
    channel = Channel(3)
    made: list[int] = []

    def make() -> bytes:
        made.append(1)
        return b"id"

    ids = [nccl_backend.exchange_unique_id(channel.rank(r), make) for r in range(3)]
    assert ids == [b"id"] * 3 and made == [1] and channel.bcasts == 3
    with pytest.raises(RuntimeError, match="did not arrive"):
        nccl_backend.exchange_unique_id(Channel(2).rank(1), make)


def test_collectives_run_in_place_on_the_current_stream_of_the_rank_gpu() -> None:
    nccl, cupy, channel = FakeNccl(), FakeCupy(), Channel(2)
    ranks = [nccl_backend.NcclCollectives(channel.rank(r), 1, nccl=nccl, cupy=cupy) for r in range(2)]
    assert nccl.ids_made == 1
    assert [c.args for c in nccl.communicators] == [(2, b"\x07" * 128, 0), (2, b"\x07" * 128, 1)]
    coll = ranks[1]
    assert (coll.rank, coll.size, coll.version) == (1, 2, 22805)
    calls = nccl.communicators[1].calls
    coll.allreduce_(FakeGpuArray(0x1000, 300, "float64"))
    coll.allreduce_(FakeGpuArray(0x2000, 10, "float32"), op="avg")
    coll.broadcast_(FakeGpuArray(0x3000, 7, "float32"), root=0)
    coll.allreduce_(FakeGpuArray(0x4000, 0))  # nothing to reduce: no call
    assert calls == [
        ("allReduce", 0x1000, 0x1000, 300, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0xABC),
        ("allReduce", 0x2000, 0x2000, 10, nccl.NCCL_FLOAT32, nccl.NCCL_AVG, 0xABC),
        ("bcast", 0x3000, 7, nccl.NCCL_FLOAT32, 0, 0xABC),
    ]
    assert set(cupy.devices_entered) == {1}
    with pytest.raises(ValueError, match="C-contiguous"):
        coll.allreduce_(FakeGpuArray(0x1000, 4, contiguous=False))
    with pytest.raises(ValueError, match="on cuda:0 but this rank's NCCL communicator is on cuda:1"):
        coll.allreduce_(FakeGpuArray(0x1000, 4, device=0))
    coll.close()
    assert calls[-1] == ("destroy",)


def test_started_reductions_fork_to_a_side_stream_and_join_back() -> None:
    """Each bucket waits for the backward queued before it, runs on the communication stream,
    and the compute stream waits for all of them before the optimizer step."""
    nccl, cupy = FakeNccl(), FakeCupy()
    coll = nccl_backend.NcclCollectives(Channel(1).rank(0), 1, nccl=nccl, cupy=cupy)
    calls = nccl.communicators[0].calls
    transport = comm_module.Nccl(coll)
    first = transport.start_allreduce_sum_(FakeGpuArray(0x1000, 8))
    cupy.log.append(("backward goes on",))
    second = transport.start_allreduce_sum_(FakeGpuArray(0x2000, 4))
    transport.finish([first, second])
    assert cupy.log == [
        ("record", "compute", 0),  # backward so far wrote bucket 0
        ("wait", "side", 0),
        ("record", "side", 1),  # bucket 0 reduced
        ("backward goes on",),
        ("record", "compute", 2),
        ("wait", "side", 2),
        ("record", "side", 3),
        ("wait", "compute", 1),  # the step waits for both
        ("wait", "compute", 3),
    ]
    assert [c[:3] + c[6:] for c in calls] == [
        ("allReduce", 0x1000, 0x1000, 0xDEF),
        ("allReduce", 0x2000, 0x2000, 0xDEF),
    ]


class AgreeingComm:
    """An MPI communicator whose ``allgather`` returns what the ranks would have said."""

    def __init__(self, answers: list[Any]):
        self.answers = answers

    def allgather(self, obj: Any) -> list[Any]:
        return self.answers

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return len(self.answers)


def _cuda_backend() -> Any:
    return SimpleNamespace(device=SimpleNamespace(type="cuda", index=0, name="cuda:0"), dtype_name="float32")


def test_ranks_use_nccl_only_when_every_rank_can(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    monkeypatch.setattr(nccl_backend, "nccl_unavailable_reason", lambda index: None)
    monkeypatch.setattr(nccl_backend, "NcclCollectives", lambda comm, index: made.append((comm, index)) or "nccl")
    world = distributed.World(rank=0, size=2, comm=AgreeingComm([None, None]))
    transport = comm_module._transport(world, _cuda_backend())
    assert isinstance(transport, comm_module.Nccl) and transport.collectives == "nccl" and made == [(world.comm, 0)]
    # one rank without NCCL: all of them go through the host, and say so
    world = distributed.World(rank=0, size=2, comm=AgreeingComm([None, "no libnccl on rank 1"]))
    with pytest.warns(RuntimeWarning, match="no libnccl on rank 1"):
        transport = comm_module._transport(world, _cuda_backend())
    assert isinstance(transport, comm_module.Staged)


def test_without_nccl_the_reason_names_the_package_to_install() -> None:
    reason = nccl_backend.nccl_unavailable_reason(0)
    if reason is None:
        pytest.skip("NCCL and a GPU are usable here")
    assert "cupy" in reason.lower() or "nccl" in reason.lower() or "cuda" in reason.lower()


def test_the_real_nccl_module_has_every_constant_we_map() -> None:
    cupy = pytest.importorskip("cupy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CuPy warns once when libnccl is missing
        from cupy.cuda import nccl  # noqa: PLC0415
    if not nccl.available:
        pytest.skip("cupy.cuda.nccl cannot load libnccl here (pip install nvidia-nccl-cu12)")
    missing = [c for c in [*nccl_backend.NCCL_DTYPES.values(), *nccl_backend.NCCL_OPS.values()] if not hasattr(nccl, c)]
    assert not missing, f"CuPy {cupy.__version__}'s nccl lacks {missing}"
    for name in ("get_unique_id", "NcclCommunicator", "get_version"):
        assert hasattr(nccl, name)
