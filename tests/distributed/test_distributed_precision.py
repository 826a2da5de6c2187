"""Mixed precision in data-parallel training (ranks as threads, `fake_ranks`): every rank rounds
alike and ends with the same bits; an overflow on one rank's shard reaches every rank through
the reduction, so all skip that step together; ranks of different precisions are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.training.parallel import DisagreementError
from fake_ranks import FakeWorld, run_ranks


def _model(precision: str) -> tuple[bp.Sequential, bp.optim.Optimizer]:
    model = bp.Sequential(bp.Dense(5, 8, l2=0.01), bp.ReLU(), bp.Dense(8, 3), seed=3, precision=precision)
    return model, bp.optim.Adam(model.parameters(), lr=0.01)


def _data(rows: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(rows, 5)).astype(np.float32), rng.integers(0, 3, size=rows)


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_ranks_round_alike_and_skip_an_overflow_together(precision: str) -> None:
    """Row 3 (rank 0's share of the first batch of each epoch) has a target of 30: its scaled
    loss gradient overflows float16 on rank 0 only until the scale has backed off far enough;
    the gradients are infinite after the sum, and every rank skips those steps."""
    X, y = _data()
    T = np.zeros((len(y), 3), np.float32)
    T[3] = 30.0

    def body(world: FakeWorld) -> Any:
        model, optimizer = _model(precision)
        history = model.fit(X, T, loss="mse", optimizer=optimizer, epochs=8, batch_size=8, shuffle=False, verbose=0,
                            distributed=world)  # fmt: skip
        return model.state_dict(), history.to_dict()

    (state0, history0), (state1, history1) = run_ranks(2, body)
    for name, value in state0.items():
        np.testing.assert_array_equal(state1[name], value, err_msg=name)  # the same bits on every rank
        assert np.isfinite(value).all()
    assert history0 == history1
    if precision == "fp16-mixed":
        skipped = history0["history"]["skipped_steps"]
        assert skipped[0] == 1.0 and skipped[-1] == 0.0  # backed off until it fit
        assert history0["history"]["loss_scale"][-1] == 2.0 ** (16 - sum(skipped))
    else:
        assert "skipped_steps" not in history0["history"]


def test_ranks_of_different_precisions_are_refused_alike() -> None:
    X, y = _data()

    def body(world: FakeWorld) -> str:
        model, optimizer = _model("bf16-mixed" if world.rank else "fp32")
        with pytest.raises(DisagreementError) as error:
            model.fit(X, y, loss="cross_entropy", optimizer=optimizer, batch_size=8, verbose=0, distributed=world)
        return str(error.value)

    messages = run_ranks(2, body)
    assert messages[0] == messages[1] and "precision: rank 0 'fp32', rank 1 'bf16-mixed'" in messages[0]
