"""``backprop devices`` and the check every ``--device`` goes through."""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np

from ..backends import Device, cuda_gpus
from .errors import CliError

__all__ = ["register", "resolve_device", "run"]

EPILOG = """examples:
  backprop devices                 # the CPU and every usable CUDA GPU, or why there is none
  backprop train --device cuda:1   # then train on the second GPU
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
    """Print the devices; exit status 0 whether or not a GPU is usable."""
    cores = os.cpu_count() or 1
    print(f"cpu     {platform.processor() or platform.machine()}, {cores} cores, NumPy {np.__version__}")
    gpus, reason = cuda_gpus()
    for gpu in gpus:
        print(gpu.describe())
    if not gpus:
        print(f"no usable CUDA GPU: {reason}")
    return 0


def resolve_device(name: str) -> str:
    """``name`` (already a canonical ``cpu``/``cuda:N``) if it can be used now; for a GPU that
    cannot, raise `CliError` (exit status 1) with the reason and the way out."""
    device = Device(name)
    if device.type != "cuda":
        return device.name
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
