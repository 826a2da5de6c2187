"""GPU-only checks of where things live and of concurrency: a model on a second GPU keeps every
array there (steps called from anywhere bind their own device), graph fits give their memory
back, and two threads training on two streams get what they would one after the other. Each
skips, visibly, without the GPUs it needs."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.training import make_step
from helpers import host


def gpus_or_skip(count: int) -> Any:
    gpus, why = bp.backends.cuda_gpus()
    if len(gpus) < count:
        pytest.skip(f"needs {count} usable GPU{'s' if count > 1 else ''}; found {len(gpus)} ({str(why).split(':')[0]})")
    import cupy  # noqa: PLC0415 - only with GPUs

    return cupy


def mlp(device: str, seed: int = 0) -> bp.Sequential:
    return bp.Sequential(bp.Dense(6, 32), bp.ReLU(), bp.Dense(32, 3), device=device, seed=seed)


def data(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def test_a_model_on_the_second_gpu_keeps_every_array_there() -> None:
    cupy = gpus_or_skip(2)
    X, y = data()
    for graph in (False, True):
        model = mlp("cuda:1")
        opt = bp.optim.Adam(model.parameters(), lr=0.01)
        model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=32, verbose=0, graph=graph)
        arrays = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
        arrays += [v for s in opt.state for k, v in s.items() if isinstance(v, cupy.ndarray)]
        arrays.append(model.predict(X))
        assert arrays and all(a.device.id == 1 for a in arrays)


def test_a_step_of_the_second_gpu_binds_its_device_when_called_from_outside() -> None:
    gpus_or_skip(2)
    X, y = data(64)
    model = mlp("cuda:1")
    loss = bp.losses.SoftmaxCrossEntropy()
    backend = model.backend
    with backend.activate():
        Xd, T = backend.from_host(X), loss.prepare_target(backend, y, 64, 3)
    step = make_step(model, loss, bp.optim.Adam(model.parameters()), graph=True)
    losses = [step(Xd, T) for _ in range(6)]  # called with GPU 0 current: the step binds GPU 1 itself
    assert all(L.device.id == 1 for L in losses) and np.isfinite(float(host(losses[-1])))


def test_graph_fits_give_their_memory_back() -> None:
    cupy = gpus_or_skip(1)
    X, y = data(512)

    def one_fit() -> None:
        model = mlp("cuda")
        model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.Adam(model.parameters()), epochs=2,
                  batch_size=64, verbose=0, graph=True)  # fmt: skip

    one_fit()  # compiles kernels, makes handles and workspaces: the memory every later fit shares
    cupy.get_default_memory_pool().free_all_blocks()
    before = cupy.cuda.runtime.memGetInfo()[0]
    for _ in range(30):
        one_fit()
    cupy.get_default_memory_pool().free_all_blocks()
    after = cupy.cuda.runtime.memGetInfo()[0]
    assert before - after < 64 * 2**20, f"30 graph fits kept {(before - after) / 2**20:.0f} MiB"


def test_two_threads_on_two_streams_train_as_one_after_the_other() -> None:
    cupy = gpus_or_skip(1)
    _, y = data(1024)
    wide = [np.random.default_rng(s).standard_normal((1024, 6)).astype(np.float32) for s in (1, 2)]

    def train(seed: int, Xs: np.ndarray, stream: Any = None) -> list[np.ndarray]:
        model = mlp("cuda", seed=seed)
        opt = bp.optim.Adam(model.parameters(), lr=0.01)
        if stream is None:
            model.fit(Xs, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=128, verbose=0)
        else:
            with stream:
                model.fit(Xs, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=128, verbose=0)
            stream.synchronize()
        return [host(p.data) for p in model.parameters()]

    alone = [train(seed, Xs) for seed, Xs in zip((1, 2), wide)]
    together: list[Any] = [None, None]

    def worker(i: int) -> None:
        together[i] = train(i + 1, wide[i], cupy.cuda.Stream(non_blocking=True))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa, pb)
