"""`World`, `init`, the communicator's logic, buckets and the aborting exception hook, in one
process: launcher detection, GPU choice, a world of one that needs no MPI, bucket plans and
their launch order, with fakes where MPI would be (the real thing: test_distributed_mpi.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop import distributed
from backprop.backends import CudaUnavailableError, GpuInfo
from backprop.distributed import world as world_module

ROOT = Path(__file__).resolve().parents[2]


class FakeComm:
    """The parts of an mpi4py communicator `init` uses, for rank ``rank`` of ``size``."""

    def __init__(self, rank: int, size: int, nodes: int = 1):
        self.rank, self.size, self.nodes = rank, size, nodes
        self.aborted: list[int] = []

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def allreduce(self, value: int) -> int:
        return self.nodes  # init sums "am I my machine's local rank 0": the number of machines

    def Abort(self, code: int) -> None:
        self.aborted.append(code)


def test_import_and_a_world_of_one_need_neither_mpi4py_nor_cupy() -> None:
    code = (
        "import sys, backprop as bp\n"
        "w = bp.distributed.init()\n"
        "c = w.communicator()\n"
        "import numpy as np; x = np.ones(3); c.allreduce_sum_(x); c.allreduce_mean_(x); c.broadcast_(x); c.barrier()\n"
        "assert (w.rank, w.size, w.is_root, c.allreduce_sum([1, 2])) == (0, 1, True, [1.0, 2.0]), (w, c)\n"
        "assert not bp.distributed.except_hook_installed()\n"
        "assert 'mpi4py' not in sys.modules and 'cupy' not in sys.modules, sorted(sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "PMIX", "SLURM", "MV2"))}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_launcher_detection_reads_the_environment() -> None:
    assert not distributed.launched({})
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "MV2_COMM_WORLD_RANK"):
        assert distributed.launched({name: "0"})
    assert world_module.launcher_size({"PMI_SIZE": "4"}) == 4
    assert world_module.launcher_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert world_module.launcher_size({"SLURM_NTASKS": "8"}) is None  # an sbatch script is one process


def test_launched_as_several_processes_without_mpi4py_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    with pytest.raises(distributed.MpiUnavailableError, match=r"backprop-nn\[mpi\]"):
        distributed.init()


def test_launched_alone_without_mpi4py_is_a_world_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert distributed.init() == distributed.World()
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")  # srun said four: say that we train alone
    with pytest.warns(RuntimeWarning, match="world of one"):
        assert distributed.init().size == 1


def test_init_with_a_communicator_knows_its_place_and_installs_the_abort_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world_module, "_local", lambda comm, rank: (1, 2))
    comm = FakeComm(3, 4, nodes=2)
    world = distributed.init(comm)
    try:
        assert (world.rank, world.size, world.local_rank, world.local_size, world.nodes) == (3, 4, 1, 2, 2)
        assert world.comm is comm and not world.is_root and world.distributed
        assert "rank 3 of 4" in world.describe()
        assert world == distributed.World(3, 4, 1, 2, 2, comm=object())  # a value: the communicator aside
        assert distributed.except_hook_installed()
    finally:
        distributed.remove_except_hook()
    assert not distributed.except_hook_installed()
    assert distributed.init(FakeComm(0, 1)) == distributed.World()  # one rank: nothing to set up


def test_world_checks_its_numbers() -> None:
    with pytest.raises(ValueError, match="rank must lie"):
        distributed.World(rank=2, size=2, comm=object())
    with pytest.raises(ValueError, match="local_rank"):
        distributed.World(local_rank=1, local_size=1)
    with pytest.raises(ValueError, match="MPI communicator"):
        distributed.World(rank=0, size=2)


def _gpus(count: int) -> Any:
    return lambda: ([GpuInfo(i, "H200", 2**37, "9.0") for i in range(count)], None if count else "no GPU")


def test_each_local_rank_takes_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    world = distributed.World(rank=3, size=4, local_rank=1, local_size=2, nodes=2, comm=object())
    assert world.device("cpu") == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(bp.backends, "cuda_gpus", _gpus(2))
    assert world.device("cuda") == "cuda:1"
    monkeypatch.setattr(bp.backends, "cuda_gpus", _gpus(1))
    with pytest.raises(CudaUnavailableError, match="2 ranks run on this machine but it has 1 usable GPU"):
        world.device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # the launcher gave this rank its own GPU
    assert world.device("cuda") == "cuda:0"
    monkeypatch.setattr(bp.backends, "cuda_gpus", _gpus(0))
    with pytest.raises(CudaUnavailableError, match="rank 3 was asked for a GPU"):
        world.device("cuda")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        world.device("cuda:1")


def test_a_world_of_one_makes_every_collective_a_no_op() -> None:
    comm = distributed.World().communicator()
    x = np.arange(5.0)
    comm.allreduce_sum_(x)
    comm.allreduce_mean_([x, x[:2]])
    comm.broadcast_(x, root=0)
    reducer = comm.bucketed(x, [2, 3], bucket_bytes=8, mean=True)
    reducer.ready(1)
    reducer.ready(0)
    reducer.wait()
    reducer.run()
    comm.barrier()
    np.testing.assert_array_equal(x, np.arange(5.0))
    assert comm.allreduce_sum([np.float32(1.5), 2]) == [1.5, 2.0]
    assert comm.broadcast_object({"a": 1}) == {"a": 1} and comm.allgather_object(7) == [7]
    assert distributed.World().communicator() is not comm  # one per world
    world = distributed.World()
    assert world.communicator() is world.communicator()  # and one per backend within it


# ---------------------------------------------------------------------------- buckets


def test_bucket_plan_cuts_the_buffer_from_the_last_parameter_back() -> None:
    sizes = [10, 2, 30, 3]  # offsets 0, 10, 12, 42, 45
    one_each = distributed.BucketPlan.reverse_layer_order(sizes, 4, 0)
    assert [(b.start, b.stop, b.params) for b in one_each.buckets] == [
        (42, 45, (3,)),
        (12, 42, (2,)),
        (10, 12, (1,)),
        (0, 10, (0,)),
    ]
    assert one_each.bucket_of == (3, 2, 1, 0)
    whole = distributed.BucketPlan.reverse_layer_order(sizes, 4, 2**30)
    assert [(b.start, b.stop, b.params) for b in whole.buckets] == [(0, 45, (3, 2, 1, 0))]
    # 40 bytes: 3 (12 B) + 30 (120 B) closes the first; 2 (8 B) + 10 (40 B) the second
    mid = distributed.BucketPlan.reverse_layer_order(sizes, 4, 40)
    assert [(b.start, b.stop, b.params) for b in mid.buckets] == [(12, 45, (3, 2)), (0, 12, (1, 0))]
    assert mid.bucket_of == (1, 1, 0, 0) and mid.total == 45 and mid.buckets[0].size == 33
    assert distributed.BucketPlan.reverse_layer_order([], 4, 40).buckets == ()
    with pytest.raises(ValueError, match="itemsize"):
        distributed.BucketPlan.reverse_layer_order(sizes, 0, 40)


class RecordingComm:
    """A communicator that records which slices it was asked to reduce, and 'reduces' by
    multiplying by ``size`` (as if every rank held the same values)."""

    def __init__(self, size: int = 2):
        self.size = size
        self.started: list[tuple[int, int]] = []
        self.finished = 0
        self.base: Any = None

    def start_allreduce_sum_(self, x: np.ndarray) -> int:
        offset = (x.__array_interface__["data"][0] - self.base.__array_interface__["data"][0]) // x.itemsize
        self.started.append((offset, offset + x.size))
        x *= self.size
        return len(self.started)

    def poll(self, handles: list[Any]) -> None:
        pass

    def finish(self, handles: list[Any]) -> None:
        self.finished += len(handles)


def test_buckets_start_in_plan_order_whatever_order_gradients_arrive() -> None:
    sizes = [10, 2, 30, 3]
    flat = np.ones(45)
    comm = RecordingComm(size=4)
    comm.base = flat
    reducer = distributed.BucketedAllreduce(
        comm, flat, distributed.BucketPlan.reverse_layer_order(sizes, 8, 0), mean=True
    )
    reducer.ready(1)  # bucket 2 is ready before buckets 0 and 1: nothing may start yet
    assert comm.started == []
    reducer.ready(3)
    assert comm.started == [(42, 45)]
    reducer.ready(2)
    assert comm.started == [(42, 45), (12, 42), (10, 12)]  # bucket 1, then the waiting bucket 2
    with pytest.raises(RuntimeError, match="twice"):
        reducer.ready(2)
    reducer._missing[1] = 0  # undo the double mark for the rest of the test
    reducer.wait()  # starts bucket 3 (never marked), finishes all, divides by the ranks
    assert comm.started[-1] == (0, 10) and comm.finished == 4
    np.testing.assert_array_equal(flat, np.ones(45))
    comm.started.clear()
    reducer.run()  # the next step: all at once, same order
    assert comm.started == [(42, 45), (12, 42), (10, 12), (0, 10)]
    with pytest.raises(ValueError, match="covers 45 elements"):
        distributed.BucketedAllreduce(comm, np.ones(44), reducer.plan)


# ---------------------------------------------------------------------------- failure


def test_the_hook_prints_the_traceback_names_the_rank_and_aborts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    codes: list[int] = []
    seen_by_previous: list[Any] = []
    monkeypatch.setattr(distributed.except_hook, "FORWARD_SECONDS", 0.0)
    monkeypatch.setattr(threading, "excepthook", seen_by_previous.append)  # instead of pytest's
    previous = sys.excepthook, threading.excepthook
    distributed.install_except_hook(codes.append, rank=1, size=3)
    try:
        distributed.install_except_hook(lambda code: None, rank=9, size=9)  # a second install keeps the first
        try:
            raise ValueError("rank 1 broke")
        except ValueError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        err = capsys.readouterr().err
        assert "ValueError: rank 1 broke" in err and "uncaught exception on rank 1 of 3" in err
        assert codes == [1]
        args = threading.ExceptHookArgs([RuntimeError, RuntimeError("in a thread"), None, None])
        threading.excepthook(args)
        assert codes == [1, 1] and seen_by_previous == [args]
        assert "uncaught exception on rank 1 of 3" in capsys.readouterr().err
    finally:
        distributed.remove_except_hook()
    assert (sys.excepthook, threading.excepthook) == previous
    distributed.remove_except_hook()  # harmless when none is installed
