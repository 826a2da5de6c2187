"""`xor`: the four samples of the XOR problem, the tutorial's data set."""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["xor"]


def xor() -> Dataset:
    """The 4 XOR samples: ``X`` float32 ``(4, 2)`` with rows ``[0,0], [0,1], [1,0], [1,1]`` and
    ``y`` float32 ``(4, 1)`` = ``[0, 1, 1, 0]``, the binary targets `BCE` takes.

    Four samples cannot be split, so there is no held-out set: ``X_test``/``y_test`` are copies
    of the training arrays and ``test_is_train`` is ``True`` (a "test" score measures fit only).
    ``task="classification"``, ``n_classes=2``, ``classes=(0, 1)``.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    rows = np.arange(4, dtype=np.int64)
    return Dataset(
        X_train=X, y_train=y, X_test=X.copy(), y_test=y.copy(),
        task="classification", name="xor", feature_names=("x0", "x1"),
        n_classes=2, classes=(0, 1), target_name="xor",
        train_rows=rows, test_rows=rows.copy(), test_is_train=True,
    )
