"""`fit`'s mini-batches: every row once per epoch, in the generator's order, rows of X and T
kept together, the same batches whatever size the gathers of shuffled rows have."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.backends import Backend
from backprop.batching import batches
from helpers import host


def _data(backend: Backend, n: int) -> tuple[object, object, np.ndarray]:
    rows = np.arange(n, dtype=np.float64)
    X = np.stack([rows, -rows, rows + 0.5], axis=1)  # row i holds i: which row is where is readable
    return backend.from_host(X), backend.from_host(rows[:, None]), X


def _host_batches(backend: Backend, seed: int, X: object, T: object, batch_size: int, shuffle: bool) -> list:
    """Copies: a batch is valid until the next is drawn (NumPy refills the same gather buffers)."""
    rng = np.random.default_rng(seed)
    with backend.activate():
        return [(host(Xb).copy(), host(Tb).copy()) for Xb, Tb in batches(backend, rng, X, T, batch_size, shuffle)]


@pytest.mark.parametrize("gather_rows", [7, 21, 35, 10_000])  # one batch per gather .. all rows in one
def test_shuffled_batches_follow_the_generator_whatever_the_gather_size(
    device: bp.Device, gather_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Backend(device, "float64")
    n, batch = 50, 7
    X, T, X_host = _data(backend, n)
    monkeypatch.setattr(Backend, "gather_bytes", property(lambda self: gather_rows * 3 * 8))
    got = _host_batches(backend, 5, X, T, batch, True)
    order = np.random.default_rng(5).permutation(n)
    assert [len(Xb) for Xb, _ in got] == [7] * 7 + [1]
    np.testing.assert_array_equal(np.concatenate([Xb for Xb, _ in got]), X_host[order])
    np.testing.assert_array_equal(np.concatenate([Tb for _, Tb in got])[:, 0], order.astype(np.float64))


def test_unshuffled_batches_are_consecutive_rows_and_one_batch_is_the_data(device: bp.Device) -> None:
    backend = Backend(device, "float64")
    X, T, X_host = _data(backend, 10)
    got = _host_batches(backend, 0, X, T, 4, False)
    assert [Xb[:, 0].tolist() for Xb, _ in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    (whole,) = _host_batches(backend, 0, X, T, 10, True)  # one batch: its order changes nothing
    np.testing.assert_array_equal(whole[0], X_host)
