"""The command line under a launcher: ``mpiexec -n 2 backprop train`` trains data-parallel with
no option of its own, prints and saves once, and ends where one process ends;
``mpiexec -n 2 backprop devices`` lists the world."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from backprop.cli import main
from mpi_launch import launch, requires_mpi

pytestmark = requires_mpi

TRAIN = ["train", "--epochs", "2", "--layers", "16,10", "--batch-size", "50"]


def _results(output: str) -> list[str]:
    """The epoch and test lines, without their speeds (an epoch line's last columns: steps/s, time)."""
    lines = [line for line in output.splitlines() if line.startswith(("test:", "epoch "))]
    return [re.sub(r"\s+[\d.]+[kMG]?\s+[\dhms.]+$", "", line) if line.startswith("epoch ") else line for line in lines]


def test_train_under_mpiexec_trains_as_one_process_printing_and_saving_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.npz"
    status, output, _ = launch(2, [sys.executable, "-m", "backprop", *TRAIN, "--checkpoint", str(saved)])
    assert status == 0, output
    assert output.count("test: loss") == 1 and output.count("data-parallel: 2 ranks") == 1, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # one file, no temporary left
    assert main(TRAIN) == 0
    alone = capsys.readouterr().out
    assert len(_results(output)) == 3 and _results(output) == _results(alone), (output, alone)


def test_devices_under_mpiexec_lists_the_world() -> None:
    status, output, _ = launch(2, [sys.executable, "-m", "backprop", "devices"])
    assert status == 0, output
    assert output.count("world   2 ranks on 1 machine") == 1, output
    assert "rank 0 " in output and "rank 1 " in output and "local rank 1 of 2" in output
