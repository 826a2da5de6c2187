"""`fit`: the mini-batch training loop behind `Sequential.fit`."""

from __future__ import annotations

import math
import operator
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .backends import Array
from .batching import batches, slices
from .clip import clip_grad_norm as _clip_grad_norm
from .early_stopping import EarlyStopping
from .epoch_results import EpochResults
from .history import History
from .losses import Loss, get_loss
from .metrics import Metric, get_metrics
from .progress import Progress

if TYPE_CHECKING:
    from .model import Sequential
    from .optim import Optimizer

__all__ = ["TrainingDivergedError", "evaluate", "fit", "make_step"]

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
    metrics: Sequence[str | Metric] = (),
    early_stopping: EarlyStopping | int | None = None,
    scheduler: Any = None,
    record_grad_norms: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1,
    checkpoint_extra: dict[str, Any] | None = None,
    initial_epoch: int = 0,
    history: History | None = None,
    graph: bool = False,
    verbose: int = 1,
) -> History:
    """Train ``model`` on ``(X, y)`` for ``epochs`` more passes of mini-batches.

    The data is checked and moved to the model's device once. Each epoch visits the samples
    in an order drawn from the model's host generator (``shuffle=True``) in batches of
    ``batch_size`` (the last one may be smaller); each batch is forward, loss, backward,
    optional global-norm clipping (``clip_grad_norm=max_norm``) and ``optimizer.step()``.
    Losses and metrics stay on the device and are read once per epoch (a progress bar reads
    the running loss at most twice a second). With ``verbose=0`` and nothing that needs an
    epoch's values as it ends (validation data, a scheduler, early stopping, checkpoints), they
    are read in blocks of up to 1024 batches: many tiny epochs then cost no host sync each, and
    a diverging loss is reported when its block is read (the model then holds the weights of
    the block's end).

    Per epoch the returned `History` gets ``"loss"`` (mean training loss, including `Dense`
    l1/l2 penalties), each metric (``metrics=["accuracy"]``: the running value over the
    epoch's batches), ``"lr"``, and with ``validation_data=(Xv, yv)`` ``"val_loss"`` and
    ``"val_<metric>"`` in inference mode. ``record_grad_norms=True`` adds
    ``"grad_norm/<param>"``, the mean over the epoch's steps of each parameter's gradient L2
    norm before clipping: the tutorial's vanishing/exploding-gradient diagnosis.

    ``scheduler``: a `bp.optim.lr_scheduler` schedule stepped once per epoch
    (`ReduceLROnPlateau` is given ``val_loss``, else ``loss``). ``early_stopping``: an
    `EarlyStopping` or a patience (monitoring ``val_loss`` when there is validation data,
    else ``loss``, restoring the best weights). ``checkpoint=path`` saves model, optimizer,
    scheduler, random generators, epoch, history and ``checkpoint_extra`` every
    ``checkpoint_every`` epochs and at the end, atomically (after early stopping restored the
    best weights, with those weights); if training is interrupted (Ctrl-C) or diverges, the
    last completed epoch is saved before the error propagates.
    ``initial_epoch`` and ``history`` continue a resumed run: epochs are numbered from
    ``initial_epoch + 1`` and appended to ``history``.

    ``graph=True`` replays each full-size batch's step from a CUDA graph on CUDA devices (see
    `backprop.backends.cuda_graph`); the same numbers, far fewer kernel launches. Models it
    cannot replay (and other devices) train eagerly, with a warning saying why.

    ``verbose=0`` is silent, ``1`` shows a progress bar on a terminal (about 20 lines
    otherwise), ``2`` one line per epoch. Raises `TrainingDivergedError` naming the epoch if
    the loss becomes NaN or infinite.
    """
    loss = get_loss(loss)
    model._check_loss(loss)
    epochs = _count(epochs, "epochs", minimum=0)
    batch_size = _count(batch_size, "batch_size", minimum=1)
    checkpoint_every = _count(checkpoint_every, "checkpoint_every", minimum=1)
    initial_epoch = _count(initial_epoch, "initial_epoch", minimum=0)
    metric_list = get_metrics(metrics, loss)
    backend = model._require_built()
    history = History() if history is None else history
    stopper = _early_stopping(early_stopping, validation_data is not None)
    saver = _Checkpointer(checkpoint, checkpoint_every, checkpoint_extra, model, optimizer, scheduler, history)
    was_training = model.training
    with backend.activate():
        Xd, T = model.checked_data(X, y, loss)
        val = model.checked_data(*validation_data, loss, "validation X", "validation y") if validation_data else None
        keys = _epoch_keys(metric_list, val is not None)
        if stopper is not None:
            stopper.start(keys)
        n = Xd.shape[0]
        params = model.parameters()
        train_batch = _batch_trainer(model, loss, optimizer, clip_grad_norm, metric_list, record_grad_norms, graph)
        progress = Progress(epochs, math.ceil(n / batch_size), verbose=verbose, initial_epoch=initial_epoch)
        results = EpochResults(backend, len(metric_list), len(params) if record_grad_norms else 0)
        try:
            model.train()
            last = initial_epoch + epochs
            # with nothing that reads an epoch's values when it ends, they are read in blocks
            defer = not verbose and val is None and scheduler is None and stopper is None and saver.path is None
            stop = False
            step_done, running_loss = progress.step, results.running_loss
            for epoch in range(initial_epoch + 1, last + 1):
                progress.start_epoch(epoch)
                for Xb, Tb in batches(backend, model.shuffle_rng, Xd, T, batch_size, shuffle):
                    train_batch(Xb, Tb, results)
                    step_done(running_loss)
                results.end_epoch(epoch, float(optimizer.lr))
                if defer and epoch < last and not results.full():
                    continue
                for done, values in results.read(metric_list, params):
                    if not math.isfinite(values["loss"]):
                        saver.save_last()
                        raise TrainingDivergedError(
                            f"training diverged: the loss became {values['loss']} in epoch {done}. Lower the "
                            f"learning rate (now {optimizer.lr:g}), clip gradients (clip_grad_norm=1.0) or check "
                            "the data's scale." + (f" The last good state is in {saver.path!r}." if saver.path else "")
                        )
                    if val is not None:  # never deferred: these are the weights at the end of `done`
                        values.update(evaluate(model, val[0], val[1], loss, metric_list, batch_size, prefix="val_"))
                    history.append(done, values)
                    if scheduler is not None:
                        _step_scheduler(scheduler, values)
                    saver.epoch_done(done)
                    stop = stopper is not None and stopper.update(done, values, model)
                    progress.end_epoch(done, values)
                if stop:
                    break
            saver.save_last()
        except KeyboardInterrupt:
            for done, values in results.read(metric_list, params):  # completed epochs not read yet
                if not math.isfinite(values["loss"]):
                    break
                history.append(done, values)
            saver.save_last()
            raise
        finally:
            progress.close()
            model.train(was_training)
        if stopper is not None and stopper.finish(model):
            saver.save_final(len(history) and history.epochs[-1])
    return history


def make_step(
    model: Sequential, loss: Loss | str, optimizer: Optimizer, clip_grad_norm: float | None = None, graph: bool = False
) -> Step:
    """One training step for checked data already on the device: forward, loss, backward,
    optional global-norm clipping, ``optimizer.step()``. ``step(X, T)`` returns the batch loss
    as a 0-d device array (no host sync); call it inside ``model.backend.activate()``.
    ``graph=True``: replayed from a CUDA graph where possible (`GraphedStep`)."""
    loss = get_loss(loss)
    model._check_loss(loss)
    core = _device_step(model, loss, optimizer, clip_grad_norm, graph, keep=1)

    def step(X: Array, T: Array) -> Array:
        return core(X, T)[0]

    step.core = core  # type: ignore[attr-defined]
    step.graph = getattr(core, "reason", None)  # type: ignore[attr-defined]  # why not replayed, if not
    return step


def _device_step(
    model: Sequential, loss: Loss, optimizer: Optimizer, clip: float | None, graph: bool, keep: int = 2
) -> Callable[[Array, Array], tuple[Array, Array]]:
    """``(X, T) -> (L, P)``: the part of a step that runs on the device, graph-replayed if asked
    (a replay returns only the first ``keep`` of them, the rest as ``None``)."""
    params = model.parameters()

    def core(X: Array, T: Array) -> tuple[Array, Array]:
        L, P = model.train_batch(X, T, loss)
        if clip is not None:
            _clip_grad_norm(params, clip)
        optimizer.step()
        return L, P

    if not graph:
        return core
    from .backends.cuda_graph import GraphedStep  # noqa: PLC0415

    return GraphedStep(core, model, optimizer, keep=keep)


def evaluate(
    model: Sequential,
    X: Array,
    T: Array,
    loss: Loss,
    metrics: Sequence[Metric] = (),
    batch_size: int = 1024,
    prefix: str = "",
) -> dict[str, float]:
    """Mean loss and metrics over checked device data, in inference mode (one host sync)."""
    backend = model._require_built()
    xp = backend.xp
    n = X.shape[0]
    totals: list[Any] = [0.0] * (1 + len(metrics))
    for Xb, Tb in slices(X, T, max(batch_size, 1024)):
        P, _ = model.apply(Xb, False)
        totals[0] = totals[0] + loss.value(backend.ops, P, Tb) * P.shape[0]
        for i, metric in enumerate(metrics):
            totals[i + 1] = totals[i + 1] + metric.batch_sum(xp, P, Tb)
    host = backend.to_floats([xp.asarray(t, dtype=backend.dtype) for t in totals])
    names = ["loss"] + [m.name for m in metrics]
    return {prefix + name: v / n for name, v in zip(names, host)}


def _batch_trainer(
    model: Sequential,
    loss: Loss,
    optimizer: Optimizer,
    clip: float | None,
    metrics: Sequence[Metric],
    record_grad_norms: bool,
    graph: bool,
) -> Callable[[Array, Array, EpochResults], None]:
    xp = model.backend.xp
    params = model.parameters()
    # gradient norms are read between backward and clipping, so that step runs eagerly
    core = None if record_grad_norms else _device_step(model, loss, optimizer, clip, graph, keep=2 if metrics else 1)
    if graph:
        reason = "record_grad_norms=True reads gradients mid-step" if core is None else getattr(core, "reason", None)
        if reason is not None:
            warnings.warn(f"graph=True: training eagerly because {reason}", stacklevel=3)

    def train_batch(X: Array, T: Array, sums: EpochResults) -> None:
        if core is not None:
            L, P = core(X, T)
        else:
            L, P = model.train_batch(X, T, loss)
            for i, p in enumerate(params):
                sums.norms[i].append(xp.sqrt(xp.sum(p.grad * p.grad)))
            if clip is not None:
                _clip_grad_norm(params, clip)
            optimizer.step()
        sums.add(L, X.shape[0])
        for i, metric in enumerate(metrics):
            sums.metrics[i].append(metric.batch_sum(xp, P, T))

    return train_batch


class _Checkpointer:
    """`fit`'s checkpoints: a host snapshot of each completed epoch, written every
    ``every`` epochs, and once more (if newer than the file) at the end, on Ctrl-C or when
    training diverges."""

    def __init__(self, path: Any, every: int, extra: Any, model: Any, optimizer: Any, scheduler: Any, history: History):
        self.path = None if path is None else os.fspath(path)
        self.every, self.extra = every, extra
        self.model, self.optimizer, self.scheduler, self.history = model, optimizer, scheduler, history
        self.snapshot: Any = None
        self.unsaved = False

    def epoch_done(self, epoch: int) -> None:
        if self.path is None:
            return
        from .checkpoint.save import checkpoint_contents  # noqa: PLC0415 - imports the model module

        self.snapshot = checkpoint_contents(
            self.model, self.optimizer, scheduler=self.scheduler, epoch=epoch, history=self.history, extra=self.extra
        )
        self.unsaved = True
        if epoch % self.every == 0:
            self.save_last()

    def save_final(self, epoch: int) -> None:
        """After early stopping restored the best weights: the checkpoint holds them too."""
        if self.path is not None:
            self.epoch_done(epoch)
            self.save_last()

    def save_last(self) -> None:
        if self.path is not None and self.unsaved:
            from .checkpoint.archive import write_archive  # noqa: PLC0415

            write_archive(self.path, *self.snapshot)
            self.unsaved = False


def _early_stopping(setting: EarlyStopping | int | bool | None, has_validation: bool) -> EarlyStopping | None:
    if setting is None or setting is False:
        return None
    if isinstance(setting, EarlyStopping):
        return setting
    monitor = "val_loss" if has_validation else "loss"
    if setting is True:
        return EarlyStopping(monitor=monitor)
    if isinstance(setting, int):
        return EarlyStopping(monitor=monitor, patience=setting)
    raise TypeError(f"early_stopping must be a bp.EarlyStopping or a patience (int); got {setting!r}")


def _epoch_keys(metrics: Sequence[Metric], validation: bool) -> list[str]:
    keys = ["loss", *[m.name for m in metrics], "lr"]
    if validation:
        keys += ["val_loss", *[f"val_{m.name}" for m in metrics]]
    return keys


def _step_scheduler(scheduler: Any, values: dict[str, float]) -> None:
    from .optim.lr_scheduler import ReduceLROnPlateau  # noqa: PLC0415

    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(values.get("val_loss", values["loss"]))
    else:
        scheduler.step()


def _count(value: Any, name: str, minimum: int) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return number
