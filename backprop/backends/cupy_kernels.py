"""Fused CuPy kernels: one launch where the generic path makes several (see `Backend.kernel`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["KERNELS"]

KERNELS: dict[str, Callable[..., Any]] = {}
