"""`digits`: the 1,797 8x8 handwritten digits bundled with the package (no download)."""

from __future__ import annotations

import gzip
import io
from importlib import resources

import numpy as np

from .dataset import Dataset
from .errors import DataError

__all__ = ["digits", "digits_arrays"]

_FILE = "digits.csv.gz"
_SHAPE = (1797, 65)


def digits(test_size: float = 0.2, seed: int | None = 0) -> Dataset:
    """The UCI "Optical Recognition of Handwritten Digits" test set, as in scikit-learn's
    ``load_digits``: 1,797 samples of 64 features (an 8x8 image, row by row, pixel values
    0..16 as float32, *not* rescaled: standardise them, e.g. with `Dataset.standardize`) and
    10 classes (the digits 0..9, int64).

    The split is stratified by digit and seeded (see `split_indices`); with the defaults the
    test set holds 360 samples. The data ships inside the package (``datasets/data``, with its
    licence), so nothing is downloaded and scikit-learn is not needed.
    """
    X, y = digits_arrays()
    return Dataset.from_arrays(
        X, y, task="classification", name="digits",
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        classes=range(10), target_name="digit", test_size=test_size, seed=seed,
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits unsplit, in file order: ``X`` float32 ``(1797, 64)``, ``y`` int64 ``(1797,)``."""
    try:
        packed = resources.files(__package__).joinpath("data").joinpath(_FILE).read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"the bundled digits data (backprop/datasets/data/{_FILE}) is missing from this "
            "installation: reinstall backprop (its package data includes the file)"
        ) from None
    table = np.loadtxt(io.StringIO(gzip.decompress(packed).decode("ascii")), delimiter=",", dtype=np.int64)
    if table.shape != _SHAPE:
        raise DataError(f"the bundled digits data has shape {table.shape}, expected {_SHAPE}: reinstall backprop")
    return table[:, :-1].astype(np.float32), table[:, -1].copy()
