"""``backprop devices`` and the check every ``--device`` goes through."""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np

from ..backends import CudaUnavailableError, Device, cuda_gpus
from ..distributed import World, init
from .errors import CliError

__all__ = ["register", "resolve_device", "run"]

EPILOG = """examples:
  backprop devices                 # the CPU and every usable CUDA GPU, or why there is none
  backprop train --device cuda:1   # then train on the second GPU
  mpiexec -n 2 backprop devices    # under a launcher: the ranks, where they run, which GPU each takes
"""


def register(subparsers: Any) -> None:
    """Add the ``devices`` command."""
    parser = subparsers.add_parser(
        "devices",
        help="list the CPU and the usable CUDA GPUs",
        description="List the devices --device accepts: the CPU and every usable CUDA GPU (name, memory,\n"
        "compute capability); when there is none, say exactly why.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the devices; exit status 0 whether or not a GPU is usable. Under a launcher, rank
    0 also prints the world and, for each rank, its machine, local rank and GPU."""
    world = init()
    if world.size > 1:
        ranks = world.communicator().allgather_object(_rank_line(world))
        if not world.is_root:
            return 0
        print(f"world   {world.size} ranks on {world.nodes} machine{'s' if world.nodes != 1 else ''} (MPI)")
        for line in ranks:
            print(line)
    cores = os.cpu_count() or 1
    print(f"cpu     {platform.processor() or platform.machine()}, {cores} cores, NumPy {np.__version__}")
    gpus, reason = cuda_gpus()
    for gpu in gpus:
        print(gpu.describe())
    if not gpus:
        print(f"no usable CUDA GPU: {reason}")
    return 0


def _rank_line(world: World) -> str:
    """One rank as ``backprop devices`` lists it: rank, machine, local rank, its GPU."""
    try:
        gpu = f"--device cuda is {world.device('cuda')}"
    except CudaUnavailableError as exc:
        gpu = "no usable GPU" if not cuda_gpus()[0] else " ".join(str(exc).split())
    return f"rank {world.rank}  {platform.node()}, local rank {world.local_rank} of {world.local_size}, {gpu}"


def resolve_device(name: str, world: World | None = None) -> str:
    """``name`` (already a canonical ``cpu``/``cuda:N``) if it can be used now; for a GPU that
    cannot, raise `CliError` (exit status 1) with the reason and the way out. In a ``world``
    of several ranks a CUDA device means this rank's GPU (`World.device`: its local rank's)."""
    device = Device(name)
    if device.type != "cuda":
        return device.name
    if world is not None and world.size > 1:
        try:
            return world.device("cuda")
        except CudaUnavailableError as exc:
            raise CliError(f"--device {name}: {exc}") from None
    gpus, reason = cuda_gpus()
    if not gpus:
        why = str(reason).replace("device='cpu'", "--device cpu").rstrip(".")
        advice = "" if "--device cpu" in why else "; use --device cpu"
        raise CliError(f"--device {name}: CUDA is not usable on this machine: {why}{advice}.")
    if device.index is not None and device.index >= len(gpus):
        raise CliError(
            f"--device {name}: there is no such GPU; this machine has {len(gpus)} usable GPU(s), "
            f"cuda:0 to cuda:{len(gpus) - 1} (see backprop devices), or use --device cpu"
        )
    return device.name
