"""Data-parallel training across processes, GPUs and machines, on MPI and NCCL.

``world = bp.distributed.init()`` says who this process is: under ``mpiexec`` (or ``srun``)
one rank of the MPI world, else a world of one (no MPI needed). ``world.device("cuda")`` is
this rank's GPU; ``world.communicator(backend)`` gives the collectives for that backend's
arrays (MPI for host buffers, NCCL for GPU ones). `epoch_shards` splits each global batch
among the ranks and gives each rank's gradient its weight, so that N ranks follow the
trajectory of one process; `open_array`/`read_rows` read only a rank's rows of data that
lives on disk. mpi4py and CuPy are imported only when a world of several ranks needs them.
"""

from __future__ import annotations

from .buckets import DEFAULT_BUCKET_BYTES, Bucket, BucketedAllreduce, BucketPlan
from .comm import Communicator
from .data import open_array, read_rows
from .except_hook import except_hook_installed, install_except_hook, remove_except_hook
from .gradients import gradient_buffer
from .sharding import Shard, epoch_order, epoch_shards, shard_bounds
from .world import MpiUnavailableError, World, init, launched

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "Bucket",
    "BucketPlan",
    "BucketedAllreduce",
    "Communicator",
    "MpiUnavailableError",
    "Shard",
    "World",
    "epoch_order",
    "epoch_shards",
    "except_hook_installed",
    "gradient_buffer",
    "init",
    "install_except_hook",
    "launched",
    "open_array",
    "read_rows",
    "remove_except_hook",
    "shard_bounds",
]
