"""The benchmark configurations, the synthetic data they train on, and the FLOP count."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONFIGS", "MNIST_EPOCH", "QUICK", "Config", "Counts", "flops_per_step", "make_batches", "make_dataset"]


@dataclass(frozen=True)
class Counts:
    """How long to measure one variant: warm-up steps, timed steps, samples for the `fit` epoch."""

    warmup: int
    steps: int
    fit_samples: int


@dataclass(frozen=True)
class Config:
    """One model: layer widths ``sizes``, batch, head/loss/optimizer and per-device counts."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    head: str  # "sigmoid-bce": sigmoid output + BCE on probabilities; "softmax-ce": CE on logits
    optimizer: str  # "sgd" or "adam"
    lr: float
    counts: dict[str, Counts] = field(default_factory=dict)  # device type -> counts; absent = not run there

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.counts)

    @property
    def out_features(self) -> int:
        return self.sizes[-1]

    def describe(self) -> str:
        head = "sigmoid+BCE" if self.head == "sigmoid-bce" else "softmax-CE"
        widths = "-".join(map(str, self.sizes))
        return f"{widths} ReLU, {head}, {self.optimizer.upper()} lr {self.lr:g}, batch {self.batch}"


QUICK = Counts(warmup=2, steps=5, fit_samples=0)  # fit_samples 0: four batches
# A GPU times `fit` over an epoch of MNIST's size (60000 training samples): a short epoch would
# weigh what `fit` does once per call (checking all the data, uploading the labels) as if every
# epoch paid it. The CPU takes short epochs, to keep its run near a minute.
MNIST_EPOCH = 60_000

# Counts are chosen so that xor + mnist-small + mnist-wide on a 2-core CPU take about a minute.
CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("xor", (2, 4, 1), 4, "sigmoid-bce", "sgd", 0.1, {"cpu": Counts(500, 5000, 2000)}),
        Config(
            "mnist-small",
            (784, 256, 256, 10),
            128,
            "softmax-ce",
            "adam",
            1e-3,
            {"cpu": Counts(30, 1000, 6400), "cuda": Counts(50, 1000, MNIST_EPOCH)},
        ),
        Config(
            "mnist-wide",
            (784, 1024, 1024, 10),
            512,
            "softmax-ce",
            "adam",
            1e-3,
            {"cpu": Counts(5, 300, 5120), "cuda": Counts(50, 1000, MNIST_EPOCH)},
        ),
        Config(
            "deep-4096",
            (4096, 4096, 4096, 4096, 1000),
            2048,
            "softmax-ce",
            "adam",
            1e-3,
            {"cuda": Counts(10, 100, 16_384)},
        ),
    )
}


def flops_per_step(config: Config) -> int:
    """Matmul FLOPs of one training step: per Dense layer ``2*B*in*out`` for the forward
    product, the same for the weight gradient, and the same for the input gradient except in
    the first layer (nobody needs the gradient of the data). Elementwise work is not counted."""
    total = 0
    for i, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
        matmuls = 2 if i == 0 else 3
        total += matmuls * 2 * config.batch * n_in * n_out
    return total


def make_dataset(config: Config, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded synthetic samples on the host: float32 inputs and the targets the loss takes
    (``(n, 1)`` float32 in {0, 1} for BCE, ``(n,)`` int64 class labels for cross-entropy).
    XOR gets its four points, repeated."""
    rng = np.random.default_rng(seed)
    if config.name == "xor":
        points = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        labels = np.array([[0], [1], [1], [0]], dtype=np.float32)
        reps = -(-n // 4)
        return np.tile(points, (reps, 1))[:n], np.tile(labels, (reps, 1))[:n]
    X = rng.standard_normal((n, config.sizes[0]), dtype=np.float32)
    if config.head == "sigmoid-bce":
        y = (rng.random((n, config.out_features)) < 0.5).astype(np.float32)
    else:
        y = rng.integers(0, config.out_features, size=n, dtype=np.int64)
    return X, y


def make_batches(config: Config, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` batches of ``config.batch`` samples each; the timed loops cycle through them."""
    X, y = make_dataset(config, count * config.batch, seed)
    b = config.batch
    return [(X[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(count)]
