"""`fit`: the mini-batch training loop behind `Sequential.fit`."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .backends import Array, Backend
from .clip import clip_grad_norm as _clip_grad_norm
from .history import History
from .losses import Loss, get_loss

if TYPE_CHECKING:
    from .model import Sequential
    from .optim import Optimizer

__all__ = ["TrainingDivergedError", "evaluate_loss", "fit", "make_step"]

Step = Callable[[Array, Array], Array]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def fit(
    model: Sequential,
    X: Any,
    y: Any,
    *,
    loss: Loss | str,
    optimizer: Optimizer,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    clip_grad_norm: float | None = None,
    validation_data: tuple[Any, Any] | None = None,
    verbose: int = 1,
) -> History:
    """Train ``model`` on ``(X, y)`` for ``epochs`` passes of mini-batches.

    The data is checked and moved to the model's device once. Each epoch visits the samples
    in an order drawn from the model's host generator (``shuffle=True``) in batches of
    ``batch_size`` (the last one may be smaller); each batch is forward, loss, backward,
    optional global-norm clipping (``clip_grad_norm=max_norm``) and ``optimizer.step()``.
    Losses stay on the device and are read once per epoch.

    Returns a `History` with ``"loss"`` (mean training loss per epoch) and, with
    ``validation_data=(Xv, yv)``, ``"val_loss"`` (computed in inference mode).
    ``verbose=0`` is silent, ``1`` prints about 20 progress lines, ``2`` one line per epoch.
    Raises `TrainingDivergedError` naming the epoch if the loss becomes NaN or infinite.
    """
    loss = get_loss(loss)
    model._check_loss(loss)
    epochs = _count(epochs, "epochs", minimum=0)
    batch_size = _count(batch_size, "batch_size", minimum=1)
    backend = model._require_built()
    step = make_step(model, loss, optimizer, clip_grad_norm)
    history = History()
    was_training = model.training
    with backend.activate():
        Xd, T = _prepare(model, loss, X, y, "X", "y")
        val = _prepare(model, loss, *validation_data, "validation X", "validation y") if validation_data else None
        n = Xd.shape[0]
        log_every = max(1, epochs // 20) if verbose == 1 else 1
        try:
            model.train()
            for epoch in range(1, epochs + 1):
                total: Any = 0.0
                for Xb, Tb in _batches(backend, model, Xd, T, batch_size, shuffle):
                    total = total + step(Xb, Tb) * Xb.shape[0]
                values = {"loss": backend.scalar(total) / n}
                if not math.isfinite(values["loss"]):
                    raise TrainingDivergedError(
                        f"training diverged: the loss became {values['loss']} in epoch {epoch}. Lower the "
                        f"learning rate (now {optimizer.lr:g}), clip gradients (clip_grad_norm=1.0) or check "
                        "the data's scale."
                    )
                if val is not None:
                    values["val_loss"] = evaluate_loss(model, val[0], val[1], loss, batch_size)
                history.append(epoch, values)
                if verbose and (epoch % log_every == 0 or epoch in (1, epochs)):
                    print(f"epoch {epoch}/{epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
        finally:
            model.train(was_training)
    return history


def make_step(model: Sequential, loss: Loss | str, optimizer: Optimizer, clip_grad_norm: float | None = None) -> Step:
    """One training step for checked data already on the device: forward, loss, backward,
    optional global-norm clipping, ``optimizer.step()``. ``step(X, T)`` returns the batch loss
    as a 0-d device array (no host sync); call it inside ``model.backend.activate()``."""
    loss = get_loss(loss)
    model._check_loss(loss)
    params = model.parameters()

    def step(X: Array, T: Array) -> Array:
        L = model.loss_and_grads(X, T, loss)
        if clip_grad_norm is not None:
            _clip_grad_norm(params, clip_grad_norm)
        optimizer.step()
        return L

    return step


def evaluate_loss(model: Sequential, X: Array, T: Array, loss: Loss, batch_size: int = 1024) -> float:
    """Mean loss over device data in inference mode (batched; one host sync)."""
    backend = model._require_built()
    n = X.shape[0]
    step = max(batch_size, 1024)
    total: Any = 0.0
    for start in range(0, n, step):
        stop = min(start + step, n)  # the Array API leaves out-of-range slice ends unspecified
        P, _ = model.apply(X[start:stop, ...], False)
        total = total + loss.value(backend.xp, P, T[start:stop, ...]) * P.shape[0]
    return backend.scalar(total) / n


def _prepare(model: Sequential, loss: Loss, X: Any, y: Any, x_name: str, y_name: str) -> tuple[Array, Array]:
    Xd = model._input(X)
    if Xd.shape[0] == 0:
        raise ValueError(f"{x_name} has no samples")
    return Xd, loss.prepare_target(model.backend, y, Xd.shape[0], model.out_features, y_name)


def _batches(
    backend: Backend, model: Sequential, X: Array, T: Array, batch_size: int, shuffle: bool
) -> Iterator[tuple[Array, Array]]:
    n = X.shape[0]
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if not shuffle:
        for start, stop in bounds:
            yield X[start:stop, ...], T[start:stop, ...]
        return
    xp = backend.xp
    order = backend.from_host(model.shuffle_rng.permutation(n), dtype=xp.int64)
    for start, stop in bounds:
        idx = order[start:stop]
        yield xp.take(X, idx, axis=0), xp.take(T, idx, axis=0)


def _count(value: Any, name: str, minimum: int) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return number
