"""Real multi-process runs: ``mpiexec -n 2`` and ``-n 3`` on this machine's CPU.

Each run executes `distributed_ranks.py` on every rank: the collectives are checked on every
rank, then hand-written data-parallel training (SGD with momentum, Adam with bucketed
reduction, AdamW with l2 and data read shard by shard from ``.npy`` files; uneven shares, last
batches smaller than the world) must end with the weights and epoch losses of one process's
``fit`` on the same global batches, to 1e-12 in float64, and bitwise the same on every rank.
A rank that raises must end the whole job, on every rank, within seconds.

Skipped, saying why, where mpi4py or ``mpiexec`` is missing (``pip install 'backprop-nn[mpi]'``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import distributed_ranks
from mpi_launch import ROOT, launch_python, requires_mpi

HERE = Path(__file__).resolve().parents[1]  # the tests folder, where the rank scripts are
SCRIPT = HERE / "distributed_ranks.py"
pytestmark = requires_mpi


def _launch(ranks: int, args: list[str], python: list[str], script: Path = SCRIPT) -> tuple[int, str, float]:
    return launch_python(ranks, script, args, python)


@pytest.fixture(scope="module")
def npy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ranks")
    X, y = distributed_ranks.data(distributed_ranks.CASES["adamw_l2"])
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    return folder


def _single_process(case: dict) -> tuple[dict[str, np.ndarray], list[float]]:
    model, optimizer = distributed_ranks.build(case)
    X, y = distributed_ranks.data(case)
    history = model.fit(
        X, y, loss=case["loss"], optimizer=optimizer, epochs=case["epochs"], batch_size=case["batch"], verbose=0
    )
    return model.state_dict(), history["loss"]


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_exactly_as_one_process(ranks: int, npy_data: Path) -> None:
    status, output, seconds = _launch(ranks, [str(npy_data), "check"], ["-m", "mpi4py"])
    assert status == 0, output
    report = json.loads((npy_data / f"report-{ranks}.json").read_text())
    assert report["world"] == [0, ranks, 0, ranks, 1]
    for name, case in distributed_ranks.CASES.items():
        expected, losses = _single_process(case)
        got = np.load(npy_data / f"{name}-{ranks}.npz")
        assert sorted(got.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12, err_msg=f"{name}: {key}")
        np.testing.assert_allclose(report["cases"][name]["losses"], losses, rtol=1e-12, err_msg=name)
        assert report["cases"][name]["identical_on_all_ranks"], name
    print(f"mpiexec -n {ranks}: {seconds:.1f} s; all-reduce seconds {report['timings']}")


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_failing_rank_ends_the_job_on_every_rank(ranks: int, tmp_path: Path) -> None:
    """Plain ``python`` (not ``-m mpi4py``), as the ``backprop`` command runs: `init`'s hook
    must abort the job while the other ranks wait in an all-reduce that will never complete."""
    status, output, seconds = _launch(ranks, [str(tmp_path), "fail"], [])
    assert status != 0, output
    assert f"ValueError: rank {ranks - 1} fails on purpose" in output
    assert f"uncaught exception on rank {ranks - 1} of {ranks}" in output
    assert seconds < 20, f"the job took {seconds:.1f} s to end"


def test_the_allreduce_benchmark_runs_on_two_ranks() -> None:
    """benchmarks/allreduce.py --quick: buckets started during a real backward, under MPI."""
    status, output, _ = _launch(2, ["--quick"], ["-m", "mpi4py"], ROOT / "benchmarks" / "allreduce.py")
    assert status == 0, output
    assert "2 rank(s)" in output and "| 784-1024-1024-10 | 7.45 MB, 2 buckets |" in output
