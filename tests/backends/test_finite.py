"""`host_all_finite` against NumPy's ``isfinite(X).all()``, block boundaries included."""

from __future__ import annotations

import numpy as np
import pytest

from backprop.backends import finite
from backprop.backends.finite import host_all_finite


def arrays(rng: np.random.Generator) -> list[np.ndarray]:
    A = rng.standard_normal((23, 11, 3))
    return [
        A,  # 3-D: blocks of whole rows of 33 entries
        A[:, ::2, 1],  # strided 2-D
        A.reshape(-1),  # 1-D
        np.asfortranarray(A[:, :, 0]),
        A[:0],  # empty
        A[:1],  # one row
        np.float32(np.inf) * np.ones(()),  # 0-d
    ]


@pytest.mark.parametrize("block", [1, 7, 64, finite.FINITE_BLOCK])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_host_all_finite_is_numpys_answer(
    block: int, dtype: str, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    monkeypatch.setattr(finite, "FINITE_BLOCK", block)
    for base in arrays(rng):
        base = base.astype(dtype)
        assert host_all_finite(base) is bool(np.isfinite(base).all())
        if not base.size or not base.ndim:
            continue
        for bad in (np.nan, np.inf, -np.inf):
            for at in (0, base.size // 2, base.size - 1):  # first, middle and last entry
                X = base.copy()
                X.reshape(-1)[at] = bad
                strided = np.repeat(X[..., None], 2, axis=-1)[..., 0]  # X's values, every other entry
                for view in (X, np.asfortranarray(X), strided):
                    assert host_all_finite(view) is False, (base.shape, at, bad)


def test_integers_and_booleans_are_finite() -> None:
    assert host_all_finite(np.arange(10**6)) and host_all_finite(np.zeros((3, 4), bool))


def test_reads_in_blocks_without_an_input_sized_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of it: NumPy's isfinite writes an X-sized boolean array; here only blocks."""
    seen: list[int] = []
    real = np.isfinite

    def spy(x: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        seen.append(np.asarray(x).size)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(finite.np, "isfinite", spy)
    X = np.ones((3 * finite.FINITE_BLOCK // 100 + 5, 100), np.float32)
    assert host_all_finite(X)
    assert max(seen) <= finite.FINITE_BLOCK and sum(seen) == X.size
