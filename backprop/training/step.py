"""The one step builder: forward, loss, backward, clipping and update for one batch, run
eagerly or replayed from a CUDA graph (`GraphedStep`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..backends import Array
from ..clip import clip_grad_norm as _clip_grad_norm
from ..losses import Loss, get_loss
from .graph import GraphedStep
from .protocol import TrainableModel

if TYPE_CHECKING:
    from ..optim import Optimizer

__all__ = ["Step", "StepCore", "build_step", "make_step"]

#: ``step(X, T) -> L``: the batch loss as a 0-d device array
Step = Callable[[Array, Array], Array]
#: ``core(X, T) -> (L, P)``: the loss and the model's outputs (``None`` where a replay did not keep them)
StepCore = Callable[[Array, Array], "tuple[Array, Array]"]


def build_step(
    model: TrainableModel,
    loss: Loss,
    optimizer: Optimizer,
    clip_grad_norm: float | None = None,
    graph: bool = False,
    *,
    keep: int = 2,
    on_gradients: Callable[[], None] | None = None,
    reduce: Callable[[], None] | None = None,
) -> StepCore:
    """``core(X, T) -> (L, P)`` on checked device data, in the model's current mode: forward,
    loss (with l1/l2 penalties), backward, ``reduce()`` if given (data-parallel training: the
    gradients summed over the processes, `backprop.training.reduction`; recorded in a CUDA
    graph with the rest), ``on_gradients()`` if given (every ``.grad`` is this batch's
    gradient, not yet clipped), optional global-norm clipping to ``clip_grad_norm``,
    ``optimizer.step()``. With dynamic loss scaling (``model.loss_scaler``, fp16-mixed) the
    backward pass computes the gradients of the scaled loss, which are unscaled after the
    reduction and before anything reads them; a step whose gradients overflowed updates
    nothing (no clipping, no optimizer step) and backs the scale off (`LossScaler`). A batch
    of no rows (a process left out of a small last batch) runs forward and backward on
    nothing (`_without_rows`).

    ``graph=True``: a `GraphedStep`, replaying the step from a CUDA graph where it can (its
    ``reason`` says why not) and returning only the first ``keep`` outputs of a replay, the
    rest as ``None``. A step with ``on_gradients`` runs Python mid-step and cannot be
    replayed: ask for it with ``graph=False``."""
    if graph and on_gradients is not None:
        raise ValueError("a step that calls on_gradients mid-step cannot be replayed from a CUDA graph")
    params = model.parameters()
    clip = clip_grad_norm
    scaler = getattr(model, "loss_scaler", None)

    def core(X: Array, T: Array) -> tuple[Array, Array]:
        if not X.shape[0]:
            L, P = _without_rows(model, X)
        elif scaler is None:
            L, P = model.train_batch(X, T, loss)
        else:
            L, P = model.train_batch(X, T, loss, scaler.scale)
        if reduce is not None:
            reduce()
        overflow = scaler is not None and scaler.unscale_(params)
        if on_gradients is not None:
            on_gradients()
        if overflow:
            scaler.update(True)  # type: ignore[union-attr]  # overflow implies a scaler
            return L, P
        if clip is not None:
            _clip_grad_norm(params, clip)
        optimizer.step()
        if scaler is not None:
            scaler.update(False)
        return L, P

    if not graph:
        return core
    return GraphedStep(core, model, optimizer, keep=keep)


def _without_rows(model: TrainableModel, X: Array) -> tuple[Array, Array]:
    """Forward and backward of a batch with no rows: a mean loss over nothing is undefined,
    but in data-parallel training a process may hold no rows of a small last batch and must
    still take part: layers that sum over the processes (synchronised BatchNorm) or draw for
    the global batch (host dropout masks) keep in step, and every gradient comes out as zeros
    (plus penalty terms, which the shard weight of 0 then cancels). Returns a loss of 0."""
    backend = model._require_built()
    P, backward = model.apply(X, model.training)
    backward(backend.xp.zeros_like(P), False)
    return backend.zeros(()), P


def make_step(
    model: TrainableModel, loss: Loss | str, optimizer: Optimizer, clip_grad_norm: float | None = None,
    graph: bool = False,
) -> Step:  # fmt: skip
    """One training step for checked data already on the device: forward, loss, backward,
    optional global-norm clipping, ``optimizer.step()``. ``step(X, T)`` returns the batch loss
    as a 0-d device array (no host sync); it runs on the model's device wherever it is called
    (a ``cuda:1`` model's step binds GPU 1 itself).
    ``graph=True``: replayed from a CUDA graph where possible (`GraphedStep`, as
    ``step.core``; ``step.graph`` is why not, or ``None``)."""
    loss = get_loss(loss)
    model._check_loss(loss)
    core = build_step(model, loss, optimizer, clip_grad_norm, graph, keep=1)

    def step(X: Array, T: Array) -> Array:
        with model._require_built().activate():  # the backend of now: model.to may have moved it
            return core(X, T)[0]

    step.core = core  # type: ignore[attr-defined]
    step.graph = getattr(core, "reason", None)  # type: ignore[attr-defined]  # why not replayed, if not
    return step
