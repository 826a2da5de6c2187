"""The callback protocol: what `fit` tells the objects that watch or steer training.

Shaped like Keras's: a `Callback` gets the model, the optimizer and the loop's params before
training, then hooks at the beginning and end of training, of each epoch and of each batch.
`fit` turns its keyword options (``early_stopping=``, ``checkpoint=``, ``scheduler=``,
``record_grad_norms=``, ``verbose=``) into callbacks of this package and runs them, with
the user's own (``callbacks=[...]``), through one `CallbackList`.

Two rules keep a GPU busy (a host read of a device value waits for the device):

- batch hooks get `BatchLogs`, whose ``"loss"`` is read from the device only when looked up;
- ``on_epoch_end`` runs as each epoch ends only if some callback's `needs_epoch_values` says
  so (or there is validation data); otherwise the loop reads epochs' values in blocks and
  calls ``on_epoch_end`` for each of them then, in order, after later epochs trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from ..backends import Array
from ..parameter import Parameter

__all__ = ["BatchLogs", "Callback", "CallbackList", "Ranks", "TrainedModel"]

Logs = dict[str, Any]


class TrainedModel(Protocol):
    """What callbacks may use of the model being trained (`bp.Sequential` is one)."""

    stop_training: bool

    def parameters(self) -> list[Parameter]: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any: ...


class Ranks(Protocol):
    """The processes of a data-parallel `fit` as callbacks see them (``params["ranks"]``, a
    `backprop.distributed.Communicator`)."""

    rank: int
    size: int

    def barrier(self) -> None: ...


class Callback:
    """Base class of everything `fit` calls back; every hook does nothing by default.

    Before training, `fit` sets ``model``, ``optimizer`` and ``params``: ``epochs``
    (the last epoch's number), ``initial_epoch``, ``steps`` (batches per epoch),
    ``batch_size``, ``samples``, ``verbose``, ``metrics`` (the keys every epoch reports, e.g.
    ``["loss", "accuracy", "lr", "val_loss", "val_accuracy"]``), ``history`` (the `History`
    fit appends to and returns), ``scheduler`` (the learning-rate schedule, or ``None``) and
    ``ranks`` (`Ranks`: in data-parallel training, this process's rank among ``size`` and a
    ``barrier()``; ``None`` otherwise).

    Hooks, in the order they come:

    - ``on_train_begin(logs)``;
    - per epoch (numbered from ``initial_epoch + 1``): ``on_epoch_begin(epoch, logs)``, then
      per batch (numbered from 0 in each epoch) ``on_batch_begin(batch, logs)``,
      ``on_backward_end(batch, logs)`` (gradients computed, not yet clipped or applied; see
      `reads_gradients`) and ``on_batch_end(batch, logs)``, with ``logs`` a `BatchLogs`;
    - ``on_epoch_end(epoch, logs)``, ``logs`` the epoch's values: ``"loss"``, metrics,
      recorded values (``"grad_norm/<param>"``), ``"lr"``, ``"val_*"`` (see `needs_epoch_values`
      for when it comes);
    - ``on_train_end(logs)``, however training ends: like a ``finally``, it also runs when an
      exception propagates, which is then ``logs["error"]``.

    Logs are shared: what one callback adds, the callbacks after it see. As in Keras, a
    callback stops training with ``self.model.stop_training = True``: from a batch hook, the
    epoch ends after that batch; from ``on_epoch_end``, no further epoch starts.

    In data-parallel training every rank runs the callbacks, with the same epoch values;
    those that print or write files do so where `is_root` (rank 0).
    """

    model: Any = None
    optimizer: Any = None
    params: Mapping[str, Any] = MappingProxyType({})

    @property
    def needs_epoch_values(self) -> bool:
        """Whether ``on_epoch_end`` must run as each epoch ends, with its values (reading them
        costs a host sync per epoch). When no callback needs it, `fit` reads epochs' values in
        blocks and calls ``on_epoch_end`` late. Default: whether the class overrides
        ``on_epoch_end``; set the class attribute ``needs_epoch_values = False`` when yours
        only records what it is given."""
        return type(self).on_epoch_end is not Callback.on_epoch_end

    @property
    def reads_gradients(self) -> bool:
        """Whether ``on_backward_end`` must run inside each step (which then runs eagerly: a
        replayed CUDA graph cannot stop mid-step). Default: whether the class overrides it."""
        return type(self).on_backward_end is not Callback.on_backward_end

    @property
    def is_root(self) -> bool:
        """Whether this process prints and writes files: rank 0 of a data-parallel `fit`, or
        the only process."""
        ranks = self.params.get("ranks")
        return ranks is None or ranks.rank == 0

    def set_model(self, model: TrainedModel) -> None:
        self.model = model

    def set_optimizer(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs) -> None:
        """Training is about to start."""

    def on_train_end(self, logs: Logs) -> None:
        """Training ended (``logs["error"]``: the exception that ended it, if one did)."""

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        """Epoch ``epoch`` is about to train."""

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """Epoch ``epoch``'s values are read (``logs``)."""

    def on_batch_begin(self, batch: int, logs: BatchLogs) -> None:
        """Batch ``batch`` of the epoch is about to train."""

    def on_backward_end(self, batch: int, logs: BatchLogs) -> None:
        """Inside the step: every parameter's ``.grad`` holds this batch's gradient."""

    def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
        """Batch ``batch``'s step was queued (maybe not yet run on the device)."""


class BatchLogs(Mapping[str, Any]):
    """A batch's logs, with no host copy of a device value until one is asked for.

    Keys: ``"batch"`` (its number in the epoch) and ``"size"`` (its samples), host ints, and
    ``"loss"``: the mean training loss of the epoch's batches finished so far, read from the
    device when looked up (a host sync; the batch in progress counts once its step is done).
    `record` keeps a per-step device value that the epoch's logs report as its mean, read with
    the epoch's losses (no sync of its own).
    """

    def __init__(self, running_loss: Callable[[], float], record: Callable[[str, Array], None]):
        self.batch = 0
        self.size = 0
        self._running_loss = running_loss
        self._record = record

    def record(self, name: str, value: Array) -> None:
        """Report ``name`` in this epoch's logs: the mean of the 0-d device values recorded."""
        self._record(name, value)

    def __getitem__(self, key: str) -> Any:
        if key == "batch":
            return self.batch
        if key == "size":
            return self.size
        if key == "loss":
            return self._running_loss()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("batch", "size", "loss"))

    def __len__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return f"BatchLogs(batch={self.batch}, size={self.size}, loss=<read on access>)"


class CallbackList(Callback):
    """Callbacks called in order, as one. The batch hooks call only the callbacks that
    override them, so an unused hook costs one check per batch."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks: list[Callback] = []
        self._batch_hooks: dict[str, list[Callable[[int, BatchLogs], None]]] = {}
        for cb in callbacks:
            self.append(cb)
        self._index()

    def append(self, callback: Callback) -> None:
        """Add ``callback`` after the others."""
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be bp.callbacks.Callback objects; got {callback!r}")
        self.callbacks.append(callback)
        self._index()

    def _index(self) -> None:
        self._batch_hooks = {
            hook: [getattr(cb, hook) for cb in self.callbacks if getattr(type(cb), hook) is not getattr(Callback, hook)]
            for hook in ("on_batch_begin", "on_backward_end", "on_batch_end")
        }

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    @property
    def needs_epoch_values(self) -> bool:
        return any(cb.needs_epoch_values for cb in self.callbacks)

    @property
    def reads_gradients(self) -> bool:
        return any(cb.reads_gradients for cb in self.callbacks)

    def wants(self, hook: str) -> bool:
        """Whether some callback overrides batch hook ``hook``."""
        return bool(self._batch_hooks.get(hook))

    def set_model(self, model: TrainedModel) -> None:
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_optimizer(self, optimizer: Any) -> None:
        self.optimizer = optimizer
        for cb in self.callbacks:
            cb.set_optimizer(optimizer)

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def on_train_begin(self, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: Logs) -> None:
        """Every callback's ``on_train_end`` runs (a progress bar closes even when saving a
        checkpoint failed); the first error among them is raised after the last."""
        error: BaseException | None = None
        for cb in self.callbacks:
            try:
                cb.on_train_end(logs)
            except BaseException as exc:  # noqa: BLE001 - raised below, once the others ran
                error = error or exc
        if error is not None:
            raise error

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: BatchLogs) -> None:
        for hook in self._batch_hooks["on_batch_begin"]:
            hook(batch, logs)

    def on_backward_end(self, batch: int, logs: BatchLogs) -> None:
        for hook in self._batch_hooks["on_backward_end"]:
            hook(batch, logs)

    def on_batch_end(self, batch: int, logs: BatchLogs) -> None:
        for hook in self._batch_hooks["on_batch_end"]:
            hook(batch, logs)
