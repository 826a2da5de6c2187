"""`World`: who this process is among the processes of a job, and `init`, which finds out.

Under ``mpiexec`` (or ``srun``) each process is one *rank* of the MPI world; without a
launcher a process is a world of one, and nothing here imports mpi4py. Ranks on the same
machine are numbered again from 0 (the *local rank*, from a shared-memory split of the world
communicator), and each takes the GPU of its local rank.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends import Backend
    from .comm import Communicator

__all__ = ["LAUNCHER_RANK_VARIABLES", "LAUNCHER_SIZE_VARIABLES", "MpiUnavailableError", "World", "init", "launched"]

#: environment variables a launcher sets in each process it starts (MPICH/Intel MPI's Hydra,
#: Open MPI, PMIx, Slurm's srun, MVAPICH)
LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "MV2_COMM_WORLD_RANK")
#: those that give the number of processes started (Slurm's are left out: an ``sbatch``
#: script sees ``SLURM_NTASKS`` while it runs as one process, before any ``srun``)
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

MPI_HINT = "install mpi4py and an MPI: pip install 'backprop-nn[mpi]' (mpi4py and MPICH from the package index)"


_world: World | None = None  # the world of MPI.COMM_WORLD, once `init` made it


class MpiUnavailableError(RuntimeError):
    """Launched as several processes, but mpi4py (or its MPI library) cannot be loaded."""


@dataclass(frozen=True)
class World:
    """This process's place in the job.

    ``rank`` of ``size`` ranks; ``local_rank`` of the ``local_size`` ranks on this machine;
    ``nodes`` machines. A world of one (the default) needs no MPI and makes every collective a
    no-op. Compare and print it like a value; its MPI communicator rides along unseen.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    nodes: int = 1
    comm: Any = field(default=None, compare=False, repr=False)
    _communicators: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.size >= 1 and 0 <= self.rank < self.size):
            raise ValueError(f"rank must lie in [0, size); got rank={self.rank}, size={self.size}")
        if not (self.local_size >= 1 and 0 <= self.local_rank < self.local_size):
            raise ValueError(f"local_rank must lie in [0, local_size); got {self.local_rank} of {self.local_size}")
        if self.size > 1 and self.comm is None:
            raise ValueError("a world of more than one rank needs its MPI communicator (comm=)")

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0: the rank that prints, plots and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank."""
        return self.size > 1

    def device(self, kind: str = "cpu") -> str:
        """This rank's device of ``kind``: ``"cpu"``, or for ``"cuda"`` the GPU of its local
        rank, ``f"cuda:{local_rank}"``. When the launcher gave each rank a single GPU of its
        own (``CUDA_VISIBLE_DEVICES`` set per rank, as ``srun --gpus-per-task=1`` does) that
        GPU is ``cuda:0``. Raises `CudaUnavailableError` when the machine has fewer GPUs than
        ranks on it."""
        if kind == "cpu":
            return "cpu"
        if kind != "cuda":
            raise ValueError(
                f"world.device takes 'cpu' or 'cuda' and picks the GPU of the local rank itself; got {kind!r}"
            )
        from ..backends import CudaUnavailableError, cuda_gpus  # noqa: PLC0415 - probes CuPy only when asked

        gpus, reason = cuda_gpus()
        if not gpus:
            raise CudaUnavailableError(f"rank {self.rank} was asked for a GPU but has none: {reason}")
        if len(gpus) >= self.local_size:
            return f"cuda:{self.local_rank}"
        if len(gpus) == 1 and os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
            return "cuda:0"  # the launcher gave this rank one GPU of its own
        raise CudaUnavailableError(
            f"{self.local_size} ranks run on this machine but it has {len(gpus)} usable GPU(s): start at most "
            f"{len(gpus)} rank(s) per machine (mpiexec -n {len(gpus) * self.nodes} ... with {len(gpus)} per node), "
            "or give each rank its own GPU through CUDA_VISIBLE_DEVICES"
        )

    def communicator(self, backend: Backend | None = None) -> Communicator:
        """The collectives among the ranks for arrays of ``backend`` (default: host NumPy).
        On a CUDA backend the first call sets up NCCL, a collective every rank must make;
        later calls for the same device return the same communicator."""
        from .comm import Communicator  # noqa: PLC0415 - comm imports this module

        key = "host" if backend is None else backend.device.name
        made = self._communicators.get(key)
        if made is None:
            made = self._communicators[key] = Communicator(self, backend)
        return made

    def abort(self, status: int = 1) -> None:
        """End the whole job now, every rank, with exit ``status`` (``MPI_Abort``): for an error
        this rank reports itself (a command-line error) while the others may be waiting for it
        in a collective. In a world of one, `SystemExit`."""
        if self.size == 1:
            raise SystemExit(status)
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(status)

    def describe(self) -> str:
        """One line for logs and ``backprop devices``."""
        if self.size == 1:
            return "a world of one process (no MPI launcher)"
        return (
            f"rank {self.rank} of {self.size} (local rank {self.local_rank} of {self.local_size}, "
            f"{self.nodes} machine{'s' if self.nodes != 1 else ''})"
        )


def launched(env: Mapping[str, str] | None = None) -> bool:
    """Whether a launcher (``mpiexec``, ``srun``) seems to have started this process."""
    env = os.environ if env is None else env
    return any(name in env for name in LAUNCHER_RANK_VARIABLES)


def launcher_size(env: Mapping[str, str] | None = None) -> int | None:
    """The number of processes the launcher says it started, where it says so."""
    env = os.environ if env is None else env
    for name in LAUNCHER_SIZE_VARIABLES:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def init(comm: Any = None, *, except_hook: bool = True) -> World:
    """The `World` this process belongs to.

    ``comm``: an mpi4py communicator to use instead of ``MPI.COMM_WORLD`` (a sub-group).
    Without one, a process started by a launcher (``PMI_RANK``, ``OMPI_COMM_WORLD_RANK``,
    ``PMIX_RANK``, ``SLURM_PROCID`` ... in its environment) imports mpi4py and takes
    ``MPI.COMM_WORLD``; any other process is a world of one and imports nothing. A launcher
    that started several processes without mpi4py installed is an error (each process would
    otherwise train alone, silently).

    With more than one rank, ``except_hook=True`` installs `install_except_hook`: an uncaught
    exception on any rank aborts the whole job within seconds instead of leaving the other
    ranks waiting (`backprop.distributed.remove_except_hook` undoes it).

    Later calls without ``comm`` return the same world (and so the same communicators).
    """
    global _world
    if comm is None:
        if _world is not None:  # the CLI, the user and `fit` may all ask: one world, one NCCL set-up
            return _world
        if not launched():
            return World()
        MPI = _import_mpi(required=(launcher_size() or 1) > 1, warn=_slurm_step_size() > 1)
        if MPI is None:
            return World()
        _world = _make_world(MPI.COMM_WORLD, except_hook)
        return _world
    return _make_world(comm, except_hook)


def _make_world(comm: Any, except_hook: bool) -> World:
    size = int(comm.Get_size())
    if size == 1:
        return World()
    rank = int(comm.Get_rank())
    local_rank, local_size = _local(comm, rank)
    nodes = int(comm.allreduce(1 if local_rank == 0 else 0))
    world = World(rank=rank, size=size, local_rank=local_rank, local_size=local_size, nodes=nodes, comm=comm)
    if except_hook:
        from .except_hook import install_except_hook  # noqa: PLC0415

        install_except_hook(comm.Abort, rank, size)
    return world


def _local(comm: Any, rank: int) -> tuple[int, int]:
    """``(local_rank, local_size)`` from a split of ``comm`` by shared memory (by machine)."""
    from mpi4py import MPI  # noqa: PLC0415 - only ever reached with mpi4py loaded

    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    try:
        return int(local.Get_rank()), int(local.Get_size())
    finally:
        local.Free()


def _slurm_step_size() -> int:
    """How many processes ``srun`` started in this job step (0 when not under ``srun``)."""
    value = os.environ.get("SLURM_STEP_NUM_TASKS", "").strip()
    return int(value) if value.isdigit() else 0


def _import_mpi(required: bool, warn: bool) -> Any:
    """``mpi4py.MPI`` (which initialises MPI), or ``None`` when it is missing and not
    ``required`` (with a warning when ``warn``: Slurm said several processes, but a batch
    script may see that as it runs alone)."""
    try:
        from mpi4py import MPI  # noqa: PLC0415 - never imported by `import backprop`
    except ImportError as exc:
        if required:
            raise MpiUnavailableError(
                f"this process was started by an MPI launcher as one of {launcher_size()} but mpi4py cannot be "
                f"loaded ({exc}); {MPI_HINT}"
            ) from exc
        if not warn:
            return None
        warnings.warn(
            f"started by a launcher but mpi4py cannot be loaded ({exc}): training as a world of one; {MPI_HINT}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return MPI
