"""``fit(..., distributed=world)`` on 2 and 3 real ranks (``mpiexec``) against one process.

Each launch runs `distributed_fit.py` on every rank: the cases of `distributed_fit.CASES`
(SGD, Adam, AdamW; l2; host dropout masks; synchronised BatchNorm; uneven shards and last
batches smaller than the world, some ranks holding no rows; validation, early stopping, a
schedule, clipping and gradient-norm records; MSE on data streamed from ``.npy`` files) must
end with the weights (to 1e-12, float64) and the whole history (every key, rtol 1e-12) of
one process's ``fit`` on the same global batches, bitwise the same on every rank. A run saved
on 2 ranks and resumed on 3, or in one process, must continue exactly as an uninterrupted
single-process run. A rank that raises inside ``fit`` ends the job within seconds.
The 2-rank launch runs before the 3-rank one, which resumes the 2-rank checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
import distributed_fit
from mpi_launch import launch_python, requires_mpi

SCRIPT = Path(__file__).resolve().parents[1] / "distributed_fit.py"
pytestmark = requires_mpi


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cases run on 2 ranks, then on 3; the folder with what rank 0 wrote."""
    folder = tmp_path_factory.mktemp("fit")
    for name, case in distributed_fit.CASES.items():
        if case.get("npy"):
            X, y = distributed_fit.data(case)
            np.save(folder / f"{name}-X.npy", X)
            np.save(folder / f"{name}-y.npy", y)
    for ranks in (2, 3):
        status, output, seconds = launch_python(ranks, SCRIPT, [str(folder), "cases"])
        assert status == 0, output
        print(f"mpiexec -n {ranks}: {seconds:.1f} s")
    return folder


def _single(case: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    model, optimizer = distributed_fit.build(case)
    history = model.fit(*distributed_fit.data(case), **distributed_fit.options(case, optimizer))
    return model.state_dict(), history.to_dict()


def _assert_same(got_state: Any, got_history: dict[str, Any], state: dict[str, np.ndarray],
                 history: dict[str, Any], what: str) -> None:  # fmt: skip
    assert sorted(got_state.files) == sorted(state), what
    for key, value in state.items():
        np.testing.assert_allclose(got_state[key], value, rtol=0, atol=1e-12, err_msg=f"{what}: {key}")
    assert got_history["epochs"] == history["epochs"], what
    assert sorted(got_history["history"]) == sorted(history["history"]), what
    for key, values in history["history"].items():
        got = got_history["history"][key]
        np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-15, err_msg=f"{what}: {key}")


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("name", sorted(distributed_fit.CASES))
def test_ranks_fit_exactly_as_one_process(launched: Path, ranks: int, name: str) -> None:
    report = json.loads((launched / f"report-{ranks}.json").read_text())
    assert report["world"] == [0, ranks, 0, ranks]
    state, history = _single(distributed_fit.CASES[name])
    _assert_same(np.load(launched / f"{name}-{ranks}.npz"), report[name]["history"], state, history, f"{name} x{ranks}")
    assert report[name]["identical_on_all_ranks"]
    case = distributed_fit.CASES[name]
    if case.get("overlap"):  # every parameter, every step, marked ready by backward's own reports
        steps = case["epochs"] * -(-case["rows"] // case["batch"])
        params = len(distributed_fit.build(case)[0].parameters())
        assert report[name]["gradients marked ready in backward"] == steps * params


def test_the_early_stopping_case_stops_early() -> None:
    """The case that checks that ranks stop alike does stop before its last epoch."""
    _, history = _single(distributed_fit.CASES["sgd"])
    assert len(history["epochs"]) < distributed_fit.CASES["sgd"]["epochs"]
    assert history["history"]["lr"][-1] < history["history"]["lr"][0]  # and its schedule changed the rate


def _uninterrupted() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return _single(distributed_fit.RESUME)


def test_saved_on_two_ranks_resumed_on_three_continues_exactly(launched: Path) -> None:
    report = json.loads((launched / "report-3.json").read_text())
    state, history = _uninterrupted()
    _assert_same(np.load(launched / "resume-3.npz"), report["resume"]["history"], state, history, "resumed on 3")
    assert report["resume"]["identical_on_all_ranks"]
    assert (launched / "resumed-3ranks.npz").exists()
    assert not [p.name for p in launched.iterdir() if ".tmp" in p.name], "a checkpoint left a temporary file"


def test_saved_on_two_ranks_resumed_in_one_process_continues_exactly(launched: Path) -> None:
    checkpoint = bp.load_checkpoint(launched / "resume-2ranks.npz")
    assert checkpoint.epoch == distributed_fit.SAVED_AFTER and checkpoint.optimizer is not None
    kwargs = distributed_fit.options(distributed_fit.RESUME, checkpoint.optimizer)
    kwargs["epochs"] = distributed_fit.RESUME["epochs"] - checkpoint.epoch
    history = checkpoint.model.fit(*distributed_fit.data(distributed_fit.RESUME), initial_epoch=checkpoint.epoch,
                                   history=checkpoint.history, **kwargs)  # fmt: skip
    state, expected = _uninterrupted()
    np.savez(launched / "resume-1.npz", **checkpoint.model.state_dict())
    _assert_same(np.load(launched / "resume-1.npz"), history.to_dict(), state, expected, "resumed in one process")


def test_a_rank_failing_inside_fit_ends_the_job(tmp_path: Path) -> None:
    status, output, seconds = launch_python(2, SCRIPT, [str(tmp_path), "fail"])
    assert status != 0, output
    assert "ValueError: rank 1 fails on purpose inside fit" in output
    assert "uncaught exception on rank 1 of 2" in output
    assert seconds < 20, f"the job took {seconds:.1f} s to end"


if __name__ == "__main__":  # pragma: no cover - run by hand: pytest is the way
    sys.exit(pytest.main([__file__, "-q"]))
