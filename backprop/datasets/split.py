"""`split_indices`: a seeded train/test split of sample indices, stratified by class on request."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["n_test_samples", "split_indices"]


def split_indices(
    n_samples: int, test_size: float = 0.2, seed: int | None = 0, stratify: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n_samples)`` into training and test indices.

    Parameters
    ----------
    n_samples:
        How many samples there are (at least 2).
    test_size:
        The fraction of samples that go to the test set, in (0, 1). The test set gets
        ``ceil(test_size * n_samples)`` samples, as in scikit-learn; the training set the rest.
    seed:
        Seeds the NumPy ``Generator`` that shuffles; the same seed gives the same split.
        ``None`` draws a fresh one.
    stratify:
        ``None`` for a plain shuffled split, or one class label per sample (shape
        ``(n_samples,)``): each class is then split in the same proportion, so a class with
        ``c`` samples contributes ``c * n_test / n_samples`` test samples rounded up or down
        (largest remainders, ties broken at random), and the totals stay exact.

    Returns
    -------
    ``(train, test)``: sorted, disjoint int64 index arrays that together cover every sample.
    """
    n_test = n_test_samples(n_samples, test_size)
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n_samples)
        test = order[:n_test]
    else:
        test = _stratified_test(_labels(stratify, n_samples), n_test, rng)
    is_test = np.zeros(n_samples, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def n_test_samples(n_samples: int, test_size: float) -> int:
    """How many of ``n_samples`` samples a split with ``test_size`` puts in the test set;
    raises `DataError` when either side would be empty."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
        raise DataError(f"n_samples must be a non-negative integer; got {n_samples!r}")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise DataError(
            "test_size is the fraction of samples held out for testing, between 0 and 1 (such as 0.2); "
            f"got {test_size!r}"
        )
    if n_samples < 2:
        raise DataError(
            f"too few samples to split: {n_samples} sample(s); a train/test split needs at least 2 "
            "(one to train on, one to test on): add rows to the data"
        )
    n_test = math.ceil(round(test_size * n_samples, 9))
    if n_test >= n_samples:
        raise DataError(
            f"test_size={test_size} of {n_samples} samples leaves no training samples: "
            "use a smaller test_size or more data"
        )
    return n_test


def _labels(stratify: Any, n_samples: int) -> np.ndarray:
    labels = np.asarray(stratify)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.shape != (n_samples,):
        raise DataError(f"stratify needs one class label per sample, shape ({n_samples},); got shape {labels.shape}")
    return labels


def _stratified_test(labels: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Test indices: each class's share of ``n_test`` by largest remainders, then that many of
    the class's samples in a shuffled order."""
    n = labels.shape[0]
    order = rng.permutation(n)
    classes, inverse, counts = np.unique(labels[order], return_inverse=True, return_counts=True)
    exact = counts * (n_test / n)
    share = np.floor(exact).astype(np.int64)
    left = n_test - int(share.sum())
    remainder_rank = np.lexsort((rng.random(len(classes)), -(exact - share)))
    share[remainder_rank[:left]] += 1
    chosen = [order[inverse == k][: share[k]] for k in range(len(classes))]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
