"""Data sets for training and testing models: built-in ones, CSV files, splits and scaling.

Every loader returns a `Dataset` (train/test arrays on the host plus a description):

- `xor()`: the 4 XOR samples (no held-out set: test = train).
- `digits(test_size, seed)`: 1,797 real 8x8 handwritten digits, bundled (no download).
- `sine(n, noise, test_size, seed)`: a small synthetic regression set.
- `load_csv(path, label, ...)`: a numeric CSV file, classification or regression.
- `load(spec, test_size, seed)`: any of them from ``"xor"``, ``"digits"``, ``"sine"``,
  ``"csv:PATH[:label=COLUMN]"`` (what ``--data`` takes on the command line).

`Standardizer` scales features by statistics of the training data only; `split_indices`
gives the seeded (stratified) train/test split the loaders use. Bad data raises `DataError`
(a `ValueError`) with a message that says what to fix.
"""

from __future__ import annotations

from .csv_file import load_csv
from .dataset import Dataset
from .digits import digits, digits_arrays
from .errors import DataError
from .spec import SPEC_FORMS, load
from .split import split_indices
from .standardize import Standardizer
from .synthetic import sine
from .xor import xor

__all__ = [
    "SPEC_FORMS",
    "DataError",
    "Dataset",
    "Standardizer",
    "digits",
    "digits_arrays",
    "load",
    "load_csv",
    "sine",
    "split_indices",
    "xor",
]
