"""`fit`'s options before it trains: the habits from other libraries (an optimizer named by a
string, Keras' ``optimizer="adam"``; ``validation_split``, Keras' held-out tail of the data) and
the checks that refuse options of the wrong kind up front."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

from ..distributed import open_array
from ..history import History
from ..registry import OPTIMIZERS
from ..validation import InvalidParameterError, flag, real
from .data import is_streamed
from .protocol import TrainableModel

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["check_fit_options", "resolve_optimizer", "split_validation", "validation_pair"]


def resolve_optimizer(model: TrainableModel, optimizer: Optimizer | str) -> Optimizer:
    """The optimizer `fit` steps: ``optimizer`` itself, or for a registered name (``"adam"``,
    ``"sgd"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``, a class registered with
    ``@bp.register_optimizer``) that class with its default settings over the model's
    parameters.

    A name continues rather than restarts: if ``model.optimizer`` (the optimizer of the
    model's last `fit`) is already of the named class and updates exactly this model's
    parameters, it is reused with its state (Adam's moments and step count) and its learning
    rate, so ``fit(..., optimizer="adam")`` twice trains on as one longer `fit` would (Keras
    keeps its compiled optimizer the same way). Any other name builds a fresh one. Pass an
    instance (``bp.optim.Adam(model.parameters(), lr=...)``) to choose settings or to start over.
    """
    if not isinstance(optimizer, str):
        if not hasattr(optimizer, "step"):
            raise TypeError(
                f"optimizer must be a bp.optim optimizer or a name ({', '.join(OPTIMIZERS.aliases())}); "
                f"got {type(optimizer).__name__}"
            )
        return optimizer
    try:
        cls = OPTIMIZERS[optimizer]
    except ValueError:
        raise InvalidParameterError(
            f"unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS.aliases())} (or a registered class "
            f"name: {', '.join(OPTIMIZERS)}), or pass an instance such as bp.optim.Adam(model.parameters(), lr=1e-3)"
        ) from None
    params = model.parameters()
    held = getattr(model, "optimizer", None)
    if type(held) is cls and [id(p) for p in getattr(held, "params", ())] == [id(p) for p in params]:
        return cast("Optimizer", held)
    try:
        return cls(params)
    except TypeError as exc:
        raise TypeError(
            f"optimizer {optimizer!r} cannot be built from its name alone ({exc}): pass an instance instead"
        ) from None


def check_fit_options(shuffle: Any, record_grad_norms: Any, graph: Any, history: Any, distributed: Any) -> None:
    """Refuse `fit` options of the wrong kind before anything runs, saying what was given:
    flags that are not True or False (a string is true), a history that is not a `History`,
    a ``distributed`` that is not a world (`bp.distributed.init()`)."""
    for name, value in (("shuffle", shuffle), ("record_grad_norms", record_grad_norms), ("graph", graph)):
        flag(value, name, owner="fit")
    if history is not None and not isinstance(history, History):
        raise InvalidParameterError(
            f"fit history must be a bp.History to continue (a checkpoint's .history); got {type(history).__name__}"
        )
    if distributed is not None and not all(hasattr(distributed, a) for a in ("rank", "size", "communicator")):
        raise InvalidParameterError(
            f"fit distributed must be the world of bp.distributed.init(); got {type(distributed).__name__} "
            f"{distributed!r}"
        )


def validation_pair(data: Any) -> tuple[Any, Any] | None:
    """``validation_data`` as ``(X_val, y_val)`` (or ``None``); anything else is refused with
    what it was, before a training step (Keras' third member, sample weights, has no use here)."""
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    what = f"a {type(data).__name__} of {len(data)}" if isinstance(data, (tuple, list)) else type(data).__name__
    hint = " (sample weights are not supported)" if isinstance(data, (tuple, list)) and len(data) == 3 else ""
    raise InvalidParameterError(f"fit validation_data must be a pair (X_val, y_val); got {what}{hint}")


def split_validation(X: Any, y: Any, fraction: Any, validation_data: Any) -> tuple[Any, Any, tuple[Any, Any]]:
    """``(X_train, y_train, (X_val, y_val))``: the last ``fraction`` of the samples held out,
    as Keras' ``validation_split``: taken in the order given, before any shuffling, so the
    same data always gives the same split (shuffle the data first if it is sorted by class).

    The training part keeps ``floor(n * (1 - fraction))`` samples. Arrays of any namespace
    are sliced, not copied; a memory map or ``.npy`` path stays streamed for training, and
    its validation part is read into memory and moved to the device like ``validation_data``.
    """
    if validation_data is not None:
        raise InvalidParameterError(
            "fit takes validation_split or validation_data, not both: drop one of them"
        )
    fraction = real(fraction, "validation_split", low=0.0, high=1.0, low_open=True, high_open=True, owner="fit")
    X, y = _rows_source(X), _rows_source(y)
    n, n_y = _length(X, "X"), _length(y, "y")
    if n != n_y:
        raise ValueError(f"X has {n} samples but y has {n_y}")
    cut = math.floor(n * (1.0 - fraction))
    if cut < 1 or cut >= n:
        raise ValueError(
            f"validation_split={fraction:g} of {n} sample(s) leaves {cut} to train on and {n - cut} to validate on; "
            "both need at least one: choose a fraction nearer 0.5 or pass more data"
        )
    return _take(X, 0, cut), _take(y, 0, cut), (_take(X, cut, n), _take(y, cut, n))


def _rows_source(a: Any) -> Any:
    """A ``.npy`` path as its memory map (still read a batch at a time); anything else as is."""
    return open_array(a) if is_streamed(a) else a


def _length(a: Any, name: str) -> int:
    shape = getattr(a, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise ValueError(f"{name} must hold one row per sample; got a 0-d array")
        return int(shape[0])
    try:
        return len(a)
    except TypeError:
        raise TypeError(f"{name} must be an array or a sequence of rows; got {type(a).__name__}") from None


def _take(a: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of an array (a view where the namespace gives one) or a sequence."""
    if hasattr(a, "shape"):
        return a[start:stop, ...]
    return a[start:stop]
