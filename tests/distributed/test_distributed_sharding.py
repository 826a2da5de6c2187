"""Sharding and weighting, in one process: each rank's rows of each global batch, and the rule
that makes N ranks' averaged gradient the single process's (uneven shares, a last batch with
fewer rows than ranks, l1/l2 penalties included); reading a rank's rows from ``.npy`` files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import backprop as bp
from backprop import distributed
from backprop.backends import Backend
from backprop.batching import batches
from helpers import host


@given(st.integers(0, 200), st.integers(1, 9))
def test_shards_tile_each_batch_in_rank_order_first_ranks_one_row_more(rows: int, size: int) -> None:
    bounds = [distributed.shard_bounds(rows, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    counts = [stop - start for start, stop in bounds]
    base, extra = divmod(rows, size)
    assert counts == [base + 1] * extra + [base] * (size - extra)


def test_shard_bounds_refuses_ranks_outside_the_world() -> None:
    with pytest.raises(ValueError, match="rank must lie"):
        distributed.shard_bounds(4, 2, 2)
    with pytest.raises(ValueError, match="batch_rows"):
        distributed.shard_bounds(-1, 0, 2)


@pytest.mark.parametrize(("n", "batch", "shuffle"), [(23, 6, True), (21, 4, True), (5, 8, True), (23, 6, False)])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_ranks_together_see_the_single_process_batches_and_draw_alike(
    n: int, batch: int, shuffle: bool, size: int
) -> None:
    """The ranks' shards of each batch, joined in rank order, are `fit`'s batch; the epoch
    order consumes the generator exactly as `fit` does (also when there is one batch)."""
    backend = Backend("cpu", "float64")
    X = np.arange(n, dtype=np.float64)[:, None]
    rng_single, rng_ranks = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(2):  # two epochs: the generators must stay in step
        single = [host(Xb)[:, 0] for Xb, _ in batches(backend, rng_single, X, X, batch, shuffle)]
        order = distributed.epoch_order(rng_ranks, n, batch, shuffle)
        per_rank = [list(distributed.epoch_shards(order, n, batch, r, size)) for r in range(size)]
        assert all(len(shards) == len(single) for shards in per_rank)  # empty shards included
        for b, expected in enumerate(single):
            joined = np.concatenate([per_rank[r][b].rows for r in range(size)])
            np.testing.assert_array_equal(joined, expected)
            assert sum(per_rank[r][b].weight for r in range(size)) == pytest.approx(1.0, abs=1e-15)
    assert rng_single.random() == rng_ranks.random()


def test_a_last_batch_smaller_than_the_world_leaves_ranks_empty() -> None:
    shards = [list(distributed.epoch_shards(None, 9, 4, r, 3))[-1] for r in range(3)]
    assert [s.count for s in shards] == [1, 0, 0]
    assert [s.empty for s in shards] == [False, True, True]
    assert [s.weight for s in shards] == [1.0, 0.0, 0.0]
    assert shards[0].batch_rows == 1 and shards[0].batch_start == 8


def _model(device: bp.Device, l2: float) -> bp.Sequential:
    return bp.Sequential(
        bp.Dense(4, 6, l1=l2 / 2, l2=l2), bp.Tanh(), bp.Dense(6, 3, l2=l2), device=device, dtype="float64", seed=2
    )


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize(("batch", "size"), [(7, 2), (7, 3), (2, 3), (8, 4)])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_weighted_sum_of_rank_gradients_is_the_global_batch_gradient(
    device: bp.Device, loss: str, batch: int, size: int, l2: float
) -> None:
    """sum_r (n_r / B) g_r == g (what one process computes on the whole batch): the rule the
    all-reduce relies on, here with the ranks simulated in turn. A mean of the ranks' means
    would be wrong whenever the shares differ (7 rows on 2 ranks: 4 and 3)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, 4))
    y = rng.integers(0, 3, size=batch) if loss == "cross_entropy" else rng.normal(size=(batch, 3))
    model = _model(device, l2)
    L = model.backprop(X, y, loss)
    expected = [host(p.grad).copy() for p in model.parameters()]
    summed = [np.zeros_like(g) for g in expected]
    loss_sum = 0.0
    for r in range(size):
        (shard,) = distributed.epoch_shards(None, batch, batch, r, size)
        if shard.empty:  # contributes zeros
            continue
        loss_sum += model.backprop(X[shard.rows], y[shard.rows], loss) * shard.count
        for total, p in zip(summed, model.parameters()):
            total += shard.weight * host(p.grad)
    for got, want, p in zip(summed, expected, model.parameters()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=p.name)
    assert loss_sum / batch == pytest.approx(L, rel=1e-13)


def test_gradient_buffer_binds_every_gradient_to_its_slot() -> None:
    model = _model(bp.Device("cpu"), 0.05)
    params = model.parameters()
    model.backprop(np.ones((3, 4)), np.array([0, 1, 2]), "cross_entropy")
    stray = params[1].grad.copy() + 1.0
    params[1].grad = stray  # a gradient outside the buffer (a user's assignment)
    flat = distributed.gradient_buffer(params)
    assert all(p.grad is v for p, v in zip(params, params[0].arenas.grad.views))
    np.testing.assert_array_equal(params[1].grad, stray)
    flat *= 2.0
    np.testing.assert_array_equal(params[1].grad, 2.0 * stray)
    distributed.gradient_buffer(params, zero=True)
    assert not flat.any() and all(p.grad is v for p, v in zip(params, params[0].arenas.grad.views))
    model.zero_grad()
    with pytest.raises(ValueError, match="no gradient"):
        distributed.gradient_buffer(params)


def test_gradient_buffer_is_none_where_parameters_have_no_flat_buffer() -> None:
    pytest.importorskip("array_api_strict")
    model = _model(bp.Device(namespace="array_api_strict"), 0.0)
    assert distributed.gradient_buffer(model.parameters()) is None
    assert distributed.gradient_buffer([]) is None


def test_read_rows_of_a_memory_mapped_file_keeps_the_order_asked(tmp_path: object) -> None:
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    path = tmp_path / "X.npy"  # type: ignore[operator]
    np.save(path, X)
    mapped = distributed.open_array(path)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    for rows in ([7, 2, 9, 2], [3, 4, 5], [6], []):
        got = distributed.read_rows(mapped, np.array(rows, dtype=np.int64))
        assert type(got) is np.ndarray and got.dtype == np.float32 and got.shape == (len(rows), 4)
        np.testing.assert_array_equal(got, X[rows])
    assert distributed.open_array(str(path)).shape == (10, 4)
    assert distributed.open_array(X) is X
    np.testing.assert_array_equal(distributed.read_rows(np.arange(5), np.array([4, 0])), [4, 0])
    with pytest.raises(ValueError, match=r"\.npy"):
        distributed.open_array(tmp_path / "X.csv")  # type: ignore[operator]
    with pytest.raises(ValueError, match="1-D"):
        distributed.read_rows(X, np.zeros((2, 2), dtype=np.int64))
