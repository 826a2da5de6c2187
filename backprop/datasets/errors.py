"""`DataError`: the one exception the data layer raises for bad data or a bad request."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Data that cannot be loaded or split as asked; the message says what to fix.

    A `ValueError`, so ``except ValueError`` catches it too; a command line can catch
    exactly this class to print the message without a traceback.
    """
