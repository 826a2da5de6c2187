"""Launching a script on several ranks with ``mpiexec``, for the multi-process tests.

`launch` runs ``mpiexec -n N python ... SCRIPT ARGS`` with one thread per rank (the ranks
share the machine's cores), without the variables of any launcher this process itself runs
under, and kills the whole process group if it outlives `TIMEOUT`, so no job is ever left
behind. `requires_mpi` skips a module, saying why, where mpi4py or ``mpiexec`` is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 60  # seconds per job; they take a few


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it into the venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
requires_mpi = [
    pytest.mark.skipif(
        importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed: pip install 'backprop-nn[mpi]'"
    ),
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec: pip install 'backprop-nn[mpi]' (mpich)"),
]


def launch(ranks: int, command: list[str], timeout: float = TIMEOUT) -> tuple[int, str, float]:
    """Run ``command`` (what follows ``mpiexec -n ranks``) on ``ranks`` processes; returns
    (exit status, output, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "PMIX", "SLURM", "MV2_", "HYDRA"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"  # ranks share the cores
    full = [str(MPIEXEC), "-n", str(ranks), *command]
    start = time.perf_counter()
    process = subprocess.Popen(
        full, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"mpiexec -n {ranks} did not finish within {timeout} s (a hang):\n{output}")
    return process.returncode, output, time.perf_counter() - start


def launch_python(ranks: int, script: Path, args: list[str], python: Sequence[str] = ()) -> tuple[int, str, float]:
    """`launch` of ``python [python...] script args``."""
    return launch(ranks, [sys.executable, *python, str(script), *args])
