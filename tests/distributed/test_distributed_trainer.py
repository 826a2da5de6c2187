"""Data-parallel `fit` without MPI: ranks as threads (`fake_ranks`), fake CUDA for the upload
path, and the pieces one at a time (the step's order, empty shards, dropout masks, streamed
data). The real multi-process runs are in `test_distributed_fit.py`."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import backprop as bp
import distributed_fit
from backprop.backends.transfer import Uploader
from backprop.distributed import BucketPlan
from backprop.layers import ShardContext
from backprop.losses import get_loss
from backprop.training import build_step, reduction
from backprop.training.parallel import DisagreementError
from fake_ranks import FakeWorld, run_ranks


def _fit_on_ranks(case: dict[str, Any], size: int, kind: str = "MpiHost", **extra: Any) -> list[Any]:
    def body(world: FakeWorld) -> Any:
        model, optimizer = distributed_fit.build(case)
        kwargs = {**distributed_fit.options(case, optimizer), **extra}
        history = model.fit(*distributed_fit.data(case), distributed=world, **kwargs)
        return model.state_dict(), history.to_dict(), world.comm

    return run_ranks(size, body, kind)


def _single(case: dict[str, Any], **extra: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    model, optimizer = distributed_fit.build(case)
    history = model.fit(*distributed_fit.data(case), **{**distributed_fit.options(case, optimizer), **extra})
    return model.state_dict(), history.to_dict()


def _check(results: list[Any], expected: tuple[dict[str, np.ndarray], dict[str, Any]]) -> None:
    state, history = expected
    for got_state, got_history, _ in results:
        for key, value in state.items():
            np.testing.assert_allclose(got_state[key], value, rtol=0, atol=1e-12, err_msg=key)
            np.testing.assert_array_equal(got_state[key], results[0][0][key])  # every rank the same bits
        assert got_history["epochs"] == history["epochs"]
        for key, values in history["history"].items():
            np.testing.assert_allclose(got_history["history"][key], values, rtol=1e-12, atol=1e-15, err_msg=key)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("name", ["sgd", "adam_bn_dropout"])
def test_ranks_as_threads_fit_as_one_process(name: str, size: int) -> None:
    case = distributed_fit.CASES[name]
    _check(_fit_on_ranks(case, size), _single(case))


def test_overlapped_buckets_start_during_the_step_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on NCCL: the reduction is overlapped with backward, bucket by bucket."""
    monkeypatch.setattr(reduction, "BUCKET_BYTES", 64)
    case = distributed_fit.CASES["overlap"]
    results = _fit_on_ranks(case, 2, kind="Nccl")
    _check(results, _single(case))
    log = results[0][2].log
    steps = case["epochs"] * -(-case["rows"] // case["batch"])
    assert [entry for entry in log if entry[0] == "finish"] == [("finish", len(log) // steps - 1)] * steps
    per_step = log[: len(log) // steps]
    sizes = [p.data.size for p in distributed_fit.build(case)[0].parameters()]
    plan = BucketPlan.reverse_layer_order(sizes, 8, 64)  # from the last parameters back
    assert len(plan.buckets) > 2
    assert [n for kind, n in per_step if kind == "start"] == [b.size for b in plan.buckets]


def test_only_rank_zero_prints_and_writes_the_checkpoint(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    case = distributed_fit.CASES["sgd"]
    path = tmp_path / "ckpt.npz"
    results = _fit_on_ranks(case, 2, checkpoint=path, verbose=2)
    printed = capsys.readouterr().out
    assert printed.count("epoch 1/") == 1 and printed.count("epoch 2/") == 1, printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    comms = [r[2] for r in results]
    assert comms[0].barriers == comms[1].barriers >= 2  # each write, then everyone waits
    np.testing.assert_array_equal(bp.load_checkpoint(path).model.state_dict()["0.W"], results[1][0]["0.W"])


def test_ranks_that_disagree_all_raise_the_same_error() -> None:
    case = distributed_fit.CASES["sgd"]

    def body(world: FakeWorld) -> str:
        model, optimizer = distributed_fit.build(case)
        X, y = distributed_fit.data(case)
        with pytest.raises(DisagreementError) as error:
            model.fit(X, y, loss="cross_entropy", optimizer=optimizer, batch_size=6 + world.rank, verbose=0,
                      distributed=world)  # fmt: skip
        return str(error.value)

    messages = run_ranks(2, body)
    assert messages[0] == messages[1] and "batch_size: rank 0 6, rank 1 7" in messages[0]


def test_unseeded_models_start_from_rank_zeros_weights_and_generators() -> None:
    def body(world: FakeWorld) -> Any:
        model = bp.Sequential(bp.Dense(3, 4), bp.Dropout(0.5), bp.Dense(4, 2), seed=None)
        optimizer = bp.optim.SGD(model.parameters(), lr=0.1)
        X, y = np.ones((8, 3)), np.zeros(8, dtype=int)
        model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=0, verbose=0, distributed=world)
        return model.state_dict(), model.shuffle_rng.bit_generator.state, model.noise_rng.bit_generator.state

    (s0, sh0, no0), (s1, sh1, no1) = run_ranks(2, body)
    assert all(np.array_equal(s0[k], s1[k]) for k in s0) and sh0 == sh1 and no0 == no1


def test_the_step_reduces_between_backward_and_the_callbacks_and_clipping() -> None:
    model = bp.Sequential(bp.Dense(3, 2), dtype="float64", seed=0)
    optimizer = bp.optim.SGD(model.parameters(), lr=0.0)
    calls: list[str] = []

    def reduce() -> None:
        calls.append("reduce")
        for p in model.parameters():
            p.grad *= 0.0  # what the callback must then see

    def on_gradients() -> None:
        calls.append("callbacks")
        assert all(not np.any(p.grad) for p in model.parameters())

    step = build_step(model, get_loss("mse"), optimizer, clip_grad_norm=1.0, on_gradients=on_gradients, reduce=reduce)
    step(model.backend.from_host(np.ones((4, 3))), model.backend.from_host(np.ones((4, 2))))
    assert calls == ["reduce", "callbacks"]
    graphed = build_step(model, get_loss("mse"), optimizer, graph=True, reduce=reduce)  # a reduction may be captured
    assert "CUDA device" in str(getattr(graphed, "reason", ""))


def test_a_batch_of_no_rows_gives_a_zero_loss_and_zero_gradients() -> None:
    model = bp.Sequential(bp.Dense(3, 4, l2=0.5), bp.ReLU(), bp.Dropout(0.3), bp.Dense(4, 2), dtype="float64", seed=0)
    step = build_step(model, get_loss("cross_entropy"), bp.optim.SGD(model.parameters(), lr=0.0))
    L, P = step(model.backend.from_host(np.zeros((0, 3))), model.backend.from_host(np.zeros(0), dtype=np.int64))
    assert float(L) == 0.0 and P.shape == (0, 2)
    assert not np.any(model.parameters()[-1].grad)  # the penalty term alone is in 0.W's: the weight 0 cancels it


def _dropout(masks: str, seed: int = 5) -> tuple[bp.Sequential, bp.Dropout]:
    layer = bp.Dropout(0.5, masks=masks)
    return bp.Sequential(bp.Dense(2, 6), layer, dtype="float64", seed=seed), layer


def test_host_masks_are_the_global_batchs_rows() -> None:
    alone, _ = _dropout("host")
    whole = alone.noise_rng.random((6, 6)) < 0.5  # what one process draws for a batch of 6
    model, layer = _dropout("host")
    layer.set_shard_context(ShardContext(1, 3, lambda A: None, batch_rows=6, start=2, stop=4))
    X = model.backend.from_host(np.ones((2, 6)))
    Y, _ = layer.apply(X, True)
    np.testing.assert_array_equal(Y != 0, whole[2:4])


def test_device_masks_are_independent_per_rank() -> None:
    drawn = []
    for rank in (0, 1, 1):
        model, layer = _dropout("device")
        layer.set_shard_context(ShardContext(rank, 2, lambda A: None, batch_rows=8, start=0, stop=4))
        Y, _ = layer.apply(model.backend.from_host(np.ones((4, 6))), True)
        drawn.append(np.asarray(Y) != 0)
    assert not np.array_equal(drawn[0], drawn[1]) and np.array_equal(drawn[1], drawn[2])


def test_streamed_fit_equals_fit_in_memory_bit_for_bit(tmp_path: Any) -> None:
    case = distributed_fit.CASES["adamw_npy"]
    X, y = distributed_fit.data(case)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    state, history = _single(case)
    model, optimizer = distributed_fit.build(case)
    kwargs = distributed_fit.options(case, optimizer)
    streamed = model.fit(str(tmp_path / "X.npy"), np.load(tmp_path / "y.npy", mmap_mode="r"), **kwargs)
    assert streamed.to_dict() == history
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in state.items())


def test_streamed_rows_are_checked_as_they_are_read(tmp_path: Any) -> None:
    X = np.ones((10, 2))
    X[7, 1] = np.nan
    np.save(tmp_path / "X.npy", X)
    model = bp.Sequential(bp.Dense(2, 2), seed=0)
    before = threading.active_count()
    with pytest.raises(ValueError, match="NaN or Inf values in rows 7"):
        optimizer = bp.optim.SGD(model.parameters(), lr=0.1)
        y = np.zeros(10, dtype=int)
        model.fit(tmp_path / "X.npy", y, loss="cross_entropy", optimizer=optimizer, batch_size=4,
                  shuffle=False, verbose=0)
    assert threading.active_count() == before  # the reading thread is gone


class FakeCuda:
    """Enough of ``cupy`` for `Uploader`: streams and events that log, pinned memory, arrays."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.current = self._stream("compute")
        self.cuda = SimpleNamespace(
            Device=lambda index: contextlib.nullcontext(),
            Stream=lambda non_blocking: self._stream("copy"),
            Event=self._event,
            get_current_stream=lambda: self.current,
            alloc_pinned_memory=lambda n: bytearray(n),
        )

    def _stream(self, name: str) -> Any:
        return SimpleNamespace(name=name, wait_event=lambda e: self.log.append(("wait", name, e.n)))

    def _event(self, disable_timing: bool) -> Any:
        event = SimpleNamespace(n=sum(1 for entry in self.log if entry[0] == "record"))
        event.record = lambda stream: self.log.append(("record", stream.name, event.n))
        event.synchronize = lambda: self.log.append(("host waits", event.n))
        return event

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        log = self.log
        array = SimpleNamespace(shape=shape, dtype=dtype, value=None)

        def set_(host: np.ndarray, stream: Any) -> None:
            assert host.base is not None  # a view of a pinned buffer, not the caller's array
            array.value = host.copy()
            log.append(("copy", stream.name))

        array.set = set_
        return array


def test_uploads_copy_on_their_own_stream_and_are_waited_for_only_when_used() -> None:
    fake = FakeCuda()
    uploader = Uploader(bp.Sequential(bp.Dense(2, 2), dtype="float32").backend, slots=2, cupy=fake)
    first = uploader(np.arange(6.0).reshape(3, 2))  # float64 in, the model's float32 out
    second = uploader(np.ones((3, 2)))
    assert first.array.value.dtype == np.float32 and first.array.value[2, 1] == 5.0
    # per upload: the compute stream's work so far recorded, the copy stream waits for it, copies,
    # records; nothing makes the compute stream wait yet
    one = [("record", "compute", 0), ("wait", "copy", 0), ("copy", "copy"), ("record", "copy", 1)]
    two = [("record", "compute", 2), ("wait", "copy", 2), ("copy", "copy"), ("record", "copy", 3)]
    assert fake.log == one + two
    uploader.ready(first)
    assert fake.log[-1] == ("wait", "compute", 1)  # the step that uses it waits for its copy, on the GPU
    uploader(np.ones((3, 2)))  # a third upload reuses the first pinned buffer: its copy must be over
    assert ("host waits", 1) in fake.log
    uploader.ready(second)
    assert fake.log[-1] == ("wait", "compute", 3)


def test_the_scaling_model_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/scaling_model.py: the ring formula, and the README's table comes out of it."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "scaling_model.py"
    spec = importlib.util.spec_from_file_location("scaling_model", path)
    assert spec is not None and spec.loader is not None
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    assert model.allreduce_seconds(2, 450e9, 1.0) == pytest.approx(1.0 + 10e-6)  # 2(N-1)/N = 1 at N = 2
    assert model.allreduce_seconds(16, 50e9, 0.5) == pytest.approx(2 * 15 / 16 * 2 + 20e-6)
    model.main()
    out = capsys.readouterr().out
    assert "| 4096x3-1000 | 8 | 0.857 | 94% | 98% | 64% |" in out  # as the README quotes it
