"""`fit`: the mini-batch training loop behind `Sequential.fit`.

The loop itself trains batches and reads each epoch's values; everything else an epoch's end
does (history, schedules, early stopping, checkpoints, progress, gradient norms) is a
callback (`backprop.callbacks`), made from `fit`'s keyword options or given by the user.
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..callbacks import (
    BatchLogs,
    Callback,
    CallbackList,
    EarlyStopping,
    GradientNorms,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    RecordHistory,
)
from ..epoch_results import EpochResults
from ..history import History
from ..losses import Loss, get_loss
from ..metrics import Metric, get_metrics
from ..metrics.base import batch_states
from .data import TrainingData, training_data
from .evaluate import evaluate
from .options import check_fit_options, resolve_optimizer, split_validation, validation_pair
from .parallel import DataParallel
from .protocol import TrainableModel
from .step import StepCore, build_step

if TYPE_CHECKING:
    from ..backends import Array
    from ..distributed import World
    from ..optim import Optimizer

__all__ = ["TrainingDivergedError", "fit"]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def fit(
    model: TrainableModel,
    X: Any,
    y: Any,
    *,
    loss: Loss | str,
    optimizer: Optimizer | str,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    clip_grad_norm: float | None = None,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float | None = None,
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
    callbacks: Iterable[Callback] = (),
    distributed: World | None = None,
) -> History:
    """Train ``model`` on ``(X, y)`` for ``epochs`` more passes of mini-batches.

    The data is checked and moved to the model's device once. Each epoch visits the samples
    in an order drawn from the model's host generator (``shuffle=True``) in batches of
    ``batch_size`` (the last one may be smaller); each batch is forward, loss, backward,
    optional global-norm clipping (``clip_grad_norm=max_norm``) and ``optimizer.step()``.
    Losses and metrics stay on the device and are read once per epoch (a progress bar reads
    the running loss at most twice a second). With ``verbose=0`` and nothing that needs an
    epoch's values as it ends (validation data, a scheduler, early stopping, checkpoints, a
    callback whose ``needs_epoch_values`` is true), they are read in blocks of up to 1024
    batches: many tiny epochs then cost no host sync each, and a diverging loss is reported
    when its block is read (the model then holds the weights of the block's end).

    ``loss``, ``optimizer`` and ``metrics`` may be names: ``loss="mse"``, ``optimizer="adam"``
    (any registered optimizer with its defaults, kept as ``model.optimizer``; a second `fit`
    with the same name continues with it and its state, see
    `backprop.training.options.resolve_optimizer`), ``metrics=["accuracy", "f1"]``
    (`backprop.metrics`). ``validation_split=0.2`` holds out the last 20% of the samples, in
    the order given and before shuffling (as Keras), as ``validation_data``.

    Per epoch the returned `History` gets ``"loss"`` (mean training loss, including `Dense`
    l1/l2 penalties), each metric (``metrics=["accuracy"]``: the running value over the
    epoch's batches), ``"lr"``, and with ``validation_data=(Xv, yv)`` ``"val_loss"`` and
    ``"val_<metric>"`` in inference mode. With dynamic loss scaling (``precision="fp16-mixed"``,
    `backprop.loss_scaling`) each epoch also records ``"loss_scale"`` (the scale at its end) and
    ``"skipped_steps"`` (its steps skipped because the scaled gradients overflowed).
    ``record_grad_norms=True`` adds ``"grad_norm/<param>"``, the mean over the epoch's steps of
    each parameter's gradient L2 norm before clipping: the tutorial's vanishing/exploding-gradient
    diagnosis.

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

    ``callbacks``: `backprop.callbacks.Callback` objects of your own, called after the ones
    the options above make (history, gradient norms, schedule, early stopping) and before the
    checkpoint and the progress bar. Each option is such a callback, so passing
    ``EarlyStopping(...)``, ``ModelCheckpoint(path)``, ``LearningRateScheduler(s)``,
    ``GradientNorms()`` or ``ProgressBar(2)`` here does what the option does.

    ``graph=True`` replays each full-size batch's step from a CUDA graph on CUDA devices (see
    `backprop.training.graph`); the same numbers, far fewer kernel launches. Models it
    cannot replay (and other devices) train eagerly, with a warning saying why.

    ``verbose=0`` is silent, ``1`` shows a progress bar on a terminal (about 20 lines
    otherwise), ``2`` one line per epoch. Raises `TrainingDivergedError` naming the epoch if
    the loss becomes NaN or infinite.

    ``X``/``y`` may also be a `numpy.memmap` or the path of a ``.npy`` file: nothing is read
    up front, each step reads its batch's rows (a background thread reads ahead, and on a GPU
    they are uploaded ahead through pinned memory), and the rows are checked as they are read
    (`backprop.training.data`).

    ``distributed=world`` (`bp.distributed.init()`, under ``mpiexec`` or ``srun``): data-parallel
    training, every rank calling `fit` alike. ``batch_size`` is the *global* batch: each rank
    trains its share of every batch, drawn from the same shuffled order, and the gradients are
    summed over the ranks with weights, so that N ranks follow one process's trajectory on the
    same global batches (`backprop.training.parallel`). Rank 0's weights and generator states
    are broadcast first; BatchNorm is synchronised; host dropout masks are one process's;
    clipping, gradient norms, metrics, validation, early stopping, schedules and the
    divergence check see values summed over all ranks, so every rank decides alike. Only rank 0
    prints and writes checkpoints (then every rank waits for the file). Callbacks of your own
    run on every rank: one that stops training from a batch hook must decide alike on all. A
    world of one rank trains as without it.
    """
    loss = get_loss(loss)
    model._check_loss(loss)
    optimizer = model.optimizer = resolve_optimizer(model, optimizer)
    check_fit_options(shuffle, record_grad_norms, graph, history, distributed)
    validation_data = validation_pair(validation_data)
    if validation_split is not None:
        X, y, validation_data = split_validation(X, y, validation_split, validation_data)
    epochs = _count(epochs, "epochs", minimum=0)
    batch_size = _count(batch_size, "batch_size", minimum=1)
    checkpoint_every = _count(checkpoint_every, "checkpoint_every", minimum=1)
    initial_epoch = _count(initial_epoch, "initial_epoch", minimum=0)
    backend = model._require_built()
    metric_list = get_metrics(metrics, loss, model.out_features)
    history = History() if history is None else history
    own = _option_callbacks(record_grad_norms, scheduler, _early_stopping(early_stopping, validation_data is not None))
    user: list[Callback] = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    last_ones: list[Callback] = []
    if checkpoint is not None:
        last_ones.append(ModelCheckpoint(checkpoint, checkpoint_every, checkpoint_extra))
    if verbose and not any(isinstance(cb, ProgressBar) for cb in user):
        last_ones.append(ProgressBar(verbose))
    callback_list = CallbackList([*own, *user, *last_ones])
    was_training = model.training
    end_logs: dict[str, Any] = {}
    parallel = DataParallel(distributed, model, optimizer) if distributed is not None and distributed.size > 1 else None
    rank, size = (parallel.rank, parallel.size) if parallel is not None else (0, 1)
    with backend.activate():
        data = training_data(model, X, y, loss, batch_size, shuffle, rank, size, sharded=parallel is not None)
        val = model.checked_data(*validation_data, loss, "validation X", "validation y") if validation_data else None
        if model.out_features is None:  # a model of activations only: as many outputs as features
            metric_list = get_metrics(metrics, loss, data.features[0])
        n = data.samples
        callback_list.set_model(model)
        callback_list.set_optimizer(optimizer)
        callback_list.set_params({
            "epochs": initial_epoch + epochs, "initial_epoch": initial_epoch, "steps": math.ceil(n / batch_size),
            "batch_size": batch_size, "samples": n, "verbose": verbose,
            "metrics": _epoch_keys(metric_list, val is not None, getattr(model, "loss_scaler", None) is not None),
            "history": history, "scheduler": scheduler if scheduler is not None else _user_schedule(user),
            "ranks": parallel.comm if parallel is not None else None,
        })  # fmt: skip
        # with nothing that reads an epoch's values when it ends, they are read in blocks
        defer = val is None and not callback_list.needs_epoch_values
        if parallel is not None:
            defer = _start_parallel(parallel, model, optimizer, loss, data, val, defer, batch_size, shuffle, epochs,
                                    initial_epoch, clip_grad_norm)  # fmt: skip
        model.stop_training = False
        try:
            callback_list.on_train_begin({})
            results = EpochResults(backend, len(metric_list))
            run = _Run(model, optimizer, loss, metric_list, callback_list, results,
                       BatchLogs(results.running_loss, results.record), data, val, batch_size, parallel)  # fmt: skip
            try:
                run.step = _step(run, clip_grad_norm, graph)
                model.train()
                run.train(initial_epoch + 1, initial_epoch + epochs, defer)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt) and parallel is None:
                    run.read_completed()  # completed epochs not read yet (alone: ranks may be anywhere now)
                end_logs["error"] = exc
                raise
            finally:
                model.train(was_training)
                callback_list.on_train_end(end_logs)
        finally:
            if parallel is not None:
                parallel.detach(model)
    return history


def _start_parallel(
    parallel: DataParallel, model: TrainableModel, optimizer: Optimizer, loss: Loss, data: TrainingData,
    val: tuple[Array, Array] | None, defer: bool, batch_size: int, shuffle: bool, epochs: int, initial_epoch: int,
    clip: float | None,
) -> bool:  # fmt: skip
    """Check that every rank trains alike, give every rank rank 0's weights and generators,
    and hand the layers the shard context; returns whether epochs' values may be read in
    blocks (only if every rank may: reading them is a collective)."""
    backend = model._require_built()
    parallel.agree({
        "samples": data.samples, "features": data.features, "targets": data.targets, "batch_size": batch_size,
        "shuffle": shuffle, "epochs": epochs, "initial_epoch": initial_epoch, "clip_grad_norm": clip,
        "loss": type(loss).__name__, "dtype": backend.dtype_name, "device kind": backend.device.type,
        "precision": getattr(model, "precision", "fp32"),
        "parameters": [(p.name, p.shape) for p in model.parameters()], "optimizer": type(optimizer).__name__,
        "validation samples": None if val is None else int(val[0].shape[0]),
    })  # fmt: skip
    parallel.synchronise(model)
    parallel.attach(model)
    return all(parallel.comm.allgather_object(defer))


@dataclass
class _Run:
    """One `fit` call's state: what `train` needs besides the epoch numbers."""

    model: TrainableModel
    optimizer: Optimizer
    loss: Loss
    metrics: list[Metric]
    callbacks: CallbackList
    results: EpochResults
    logs: BatchLogs
    data: TrainingData
    val: tuple[Array, Array] | None
    batch_size: int
    parallel: DataParallel | None = None
    step: StepCore | None = None

    def train(self, first: int, last: int, defer: bool) -> None:
        """Epochs ``first`` to ``last``; each one's values are read as it ends unless ``defer``."""
        model, callbacks, results = self.model, self.callbacks, self.results
        logs, metrics, step = self.logs, self.metrics, self.step
        assert step is not None
        backend = model._require_built()
        xp = backend.xp
        parallel = self.parallel
        empty = [backend.zeros(() if m.state_size() == 1 else (m.state_size(),)) for m in metrics]
        begin = callbacks.on_batch_begin if callbacks.wants("on_batch_begin") else None
        end = callbacks.on_batch_end if callbacks.wants("on_batch_end") else None
        scaler = getattr(model, "loss_scaler", None)
        for epoch in range(first, last + 1):
            skipped = 0 if scaler is None else scaler.skipped
            callbacks.on_epoch_begin(epoch, {})
            for batch, (Xb, Tb, shard) in enumerate(self.data.feed.epoch(model.shuffle_rng)):
                rows = Xb.shape[0]
                logs.batch, logs.size = batch, rows
                if parallel is not None and shard is not None:
                    parallel.begin(shard)
                if begin is not None:
                    begin(batch, logs)
                L, P = step(Xb, Tb)
                results.add(L, rows)
                if metrics:  # no rows (a rank left out of a small last batch): zeros
                    for kept, state in zip(results.metrics, batch_states(metrics, xp, P, Tb) if rows else empty):
                        kept.append(state)
                if end is not None:
                    end(batch, logs)
                if model.stop_training:
                    break
            scaled = None if scaler is None else {"loss_scale": scaler.scale, "skipped_steps": scaler.skipped - skipped}
            results.end_epoch(epoch, float(self.optimizer.lr), scaled)
            if defer and epoch < last and not results.full() and not model.stop_training:
                continue
            self.read()
            if model.stop_training:
                break

    def read(self) -> None:
        """Read the ended epochs' values (one host sync; summed over the ranks), check them, add
        validation values and hand each epoch to the callbacks."""
        parallel = self.parallel
        for done, values in self.results.read(self.metrics, parallel.sum if parallel is not None else None):
            if not math.isfinite(values["loss"]):
                saved = next((cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint) and cb.holds_state), None)
                raise TrainingDivergedError(
                    f"training diverged: the loss became {values['loss']} in epoch {done}. Lower the "
                    f"learning rate (now {self.optimizer.lr:g}), clip gradients (clip_grad_norm=1.0) or check "
                    "the data's scale." + ("" if saved is None else " " + saved.where_saved())
                )
            if self.val is not None:  # never deferred: these are the weights at the end of `done`
                if parallel is not None:
                    values.update(parallel.validate(self.model, *self.val, self.loss, self.metrics, self.batch_size))
                else:
                    values.update(
                        evaluate(self.model, *self.val, self.loss, self.metrics, self.batch_size, prefix="val_")
                    )
            self.callbacks.on_epoch_end(done, values)

    def read_completed(self) -> None:
        """On Ctrl-C: hand the callbacks the epochs that ended but were not read yet (up to
        the first with a non-finite loss)."""
        for done, values in self.results.read(self.metrics):
            if not math.isfinite(values["loss"]):
                break
            self.callbacks.on_epoch_end(done, values)


def _step(run: _Run, clip: float | None, graph: bool) -> StepCore:
    """The step `fit` runs: replayed from a CUDA graph if asked and possible, eager (with a
    warning saying why) otherwise; a callback that reads gradients mid-step makes it eager."""
    callbacks, logs, parallel = run.callbacks, run.logs, run.parallel
    readers = [cb for cb in callbacks if cb.reads_gradients]
    on_gradients = (lambda: callbacks.on_backward_end(logs.batch, logs)) if readers else None
    names = ["record_grad_norms=True" if isinstance(cb, GradientNorms) else type(cb).__name__ for cb in readers]
    reason = f"{', '.join(names)} {'reads' if len(names) == 1 else 'read'} gradients mid-step" if readers else None
    if reason is None and parallel is not None and run.model.device.type == "cuda":
        reason = parallel.graph_reason
    step = build_step(run.model, run.loss, run.optimizer, clip, graph and reason is None, keep=2 if run.metrics else 1,
                      on_gradients=on_gradients, reduce=parallel.reduce if parallel is not None else None)  # fmt: skip
    if graph:
        reason = reason or getattr(step, "reason", None)
        if reason is not None:
            warnings.warn(f"graph=True: training eagerly because {reason}", stacklevel=4)
    return step


def _option_callbacks(record_grad_norms: bool, scheduler: Any, stopper: EarlyStopping | None) -> list[Callback]:
    """The callbacks `fit`'s keyword options stand for that run before the user's (the
    checkpoint and the progress bar come after them)."""
    own: list[Callback] = [RecordHistory()]
    if record_grad_norms:
        own.append(GradientNorms())
    if scheduler is not None:
        own.append(LearningRateScheduler(scheduler))
    if stopper is not None:
        own.append(stopper)
    return own


def _user_schedule(callbacks: list[Callback]) -> Any:
    """The schedule of the user's `LearningRateScheduler`, if any: what a checkpoint saves."""
    return next((cb.scheduler for cb in callbacks if isinstance(cb, LearningRateScheduler)), None)


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


def _epoch_keys(metrics: Sequence[Metric], validation: bool, scaled: bool = False) -> list[str]:
    keys = ["loss", *[m.name for m in metrics], *(["loss_scale", "skipped_steps"] if scaled else []), "lr"]
    if validation:
        keys += ["val_loss", *[f"val_{m.name}" for m in metrics]]
    return keys


def _count(value: Any, name: str, minimum: int) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return number
