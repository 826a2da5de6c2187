"""`bp.Sequential`: the user's model, layers applied in order plus a device, a dtype, a seed
and the model API (fit, predict, evaluate, save, to, state_dict).

The container part, applying the layers in order, is `backprop.layers.Sequential`, which this
class extends; training is `backprop.training` and saving `backprop.checkpoint`, both below
this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import numpy as np

from .backends import Array, DeviceLike, to_numpy
from .backends.arena import ParameterArenas
from .checkpoint import save_checkpoint
from .history import History
from .labels import check_classes, labels_from_outputs
from .layers.base import BuildContext, Layer
from .layers.sequential import Sequential as SequentialLayer
from .loss_scaling import LossScaler
from .losses import Loss, get_loss
from .metrics import get_metrics
from .model_checks import (
    check_data_fits,
    check_fits,
    check_loss,
    check_unbuilt,
    check_unique,
    checked_input,
    checked_state,
)
from .model_slicing import refuse_slice, sliced
from .parameter import Parameter
from .precision import PRECISIONS, Precision, get_precision, precision_backend, rounded_weights, scaled_gradients
from .training import evaluate as _evaluate
from .training import fit as _fit
from .validation import integer

if TYPE_CHECKING:
    from .optim import Optimizer

__all__ = ["Sequential"]


class Sequential(SequentialLayer):
    """A stack of layers, ``Y = f_n(... f_2(f_1(X)))``, and a trainable model.

    A Sequential placed inside another container is rebuilt by its parent, on the parent's
    device, dtype and seed. ``stop_training``: set it (a callback does) to end `fit` early.

    Parameters
    ----------
    *layers:
        The layers, in order.
    device:
        ``"cpu"`` (NumPy), ``"cuda"``/``"cuda:N"`` (CuPy), or a `bp.Device` (any Array API
        namespace). Every parameter is allocated there once; inputs are moved there per call.
    dtype:
        ``"float32"`` (default) or ``"float64"``.
    seed:
        Seeds the host generator the initial weights are drawn from (so a seed gives the same
        weights on every device), the shuffling of mini-batches and the dropout masks.
        ``None`` draws a fresh seed, recorded in ``model.seed``.
    precision:
        ``"fp32"`` (default), ``"tf32"``, ``"bf16-mixed"`` or ``"fp16-mixed"``: the operands of
        the matrix products (see `backprop.precision`; weights, gradients and everything else
        stay float32). ``"fp16-mixed"`` trains with dynamic loss scaling, ``model.loss_scaler``.
    """

    # Until set: also what a model pickled by an earlier version lacks (the layers' own are derived
    # again when it is unpickled, `backprop.layers.sequential.Sequential.__setstate__`).
    _precision: Precision = PRECISIONS["fp32"]
    loss_scaler: LossScaler | None = None  # dynamic loss scaling of training steps (`LossScaler`)
    optimizer: Optimizer | None = None  # the last fit's, reused by fit(optimizer="adam") again
    threshold: float | None = None  # predict_labels' cut of one output (None: by output kind); saved
    _classes: np.ndarray | None = None

    def __init__(
        self, *layers: Layer, device: DeviceLike = "cpu", dtype: str = "float32", seed: int | None = None,
        precision: str = "fp32",
    ):  # fmt: skip
        super().__init__(*layers)
        self._precision = get_precision(precision)
        self.loss_scaler = LossScaler() if self._precision.loss_scaling else None
        self.stop_training = False
        given = None if seed is None else integer(seed, "seed", minimum=None, owner="Sequential")
        entropy = np.random.SeedSequence().entropy if given is None else given
        self.seed = int(entropy) % 2**63  # type: ignore[arg-type]  # a fresh SeedSequence's entropy is an int
        self.training = True
        init_seq, noise_seq, shuffle_seq = np.random.SeedSequence(self.seed).spawn(3)
        self.shuffle_rng = np.random.default_rng(shuffle_seq)
        self.noise_rng = np.random.default_rng(noise_seq)
        ctx = BuildContext(precision_backend(self._precision, device, dtype), np.random.default_rng(init_seq),
                           self.noise_rng)  # fmt: skip
        check_unique(self)
        check_unbuilt(self)
        check_fits(self, ctx.backend)
        self.build(None, ctx)
        self._penalised = [layer for layer in self.walk() if layer is not self and layer.regularised]
        self._pack()

    # ------------------------------------------------------------------ description
    def __repr__(self) -> str:
        if self.path:  # nested in another model: described as the container it is there
            return super().__repr__()
        inner = self._inner_repr()
        precision = f", precision={self.precision!r}" if self._precision.reduced else ""
        return (f"Sequential(\n{inner},\n    device={self.device.name!r}, dtype={self.dtype!r}, seed={self.seed}"
                f"{precision},\n)")  # fmt: skip

    # ------------------------------------------------------------------ labels
    @property
    def classes(self) -> np.ndarray | None:
        """Each output class's label (a read-only 1-D array of strings or numbers; ``None``: the
        class indices). Saved in checkpoints: ``model.classes = ["setosa", "versicolor", ...]``."""
        return self._classes

    @classes.setter
    def classes(self, classes: Any) -> None:
        self._classes = check_classes(classes, self.out_features)

    def predict_labels(self, X: Any, batch_size: int | None = None, threshold: float | None = None) -> np.ndarray:
        """The label each sample is given, a host array, as ``backprop predict`` writes it; see
        `backprop.labels.labels_from_outputs` (argmax; one output: ``output > threshold``, by
        default ``model.threshold``, else 0.5 on probabilities and 0 on logits)."""
        last = self.layers[-1].output_kind if self.layers else "any"
        cut = self.threshold if threshold is None else threshold
        return labels_from_outputs(to_numpy(self.predict(X, batch_size)), self._classes, last, cut)

    # ------------------------------------------------------------------ model API
    @property
    def device(self) -> Any:
        """The `bp.Device` all parameters live on."""
        return self._require_built().device

    @property
    def dtype(self) -> str:
        """The floating dtype name, ``"float32"`` or ``"float64"``."""
        return self._require_built().dtype_name

    @property
    def precision(self) -> str:
        """The matrix products' precision: ``"fp32"``, ``"tf32"``, ``"bf16-mixed"`` or ``"fp16-mixed"``."""
        return self._precision.name

    def named_variables(self) -> Iterator[tuple[str, Parameter]]:
        """Every parameter and saved state array, by dotted name, in layer order."""
        for layer in self.walk():
            for param in layer.variables().values():
                yield param.name, param

    def parameters(self) -> list[Parameter]:
        """Trainable parameters in layer order (each Dense gives ``W`` then ``b``)."""
        return [p for _, p in self.named_variables() if p.trainable]

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Layer | Sequential:
        """``model[i]``: the layer at position ``i``; ``model[i:j]``: a model of those layers,
        sharing them (see `backprop.model_slicing.sliced`)."""
        return sliced(self, index) if isinstance(index, slice) else super().__getitem__(index)

    def zero_grad(self) -> None:
        """Forget all gradients (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Sequential:
        """Switch to training mode (dropout active, batch statistics); returns ``self``."""
        self.training = bool(mode)
        return self

    def eval(self) -> Sequential:
        """Switch to inference mode; returns ``self``."""
        return self.train(False)

    def forward(self, X: Any) -> Array:
        """Run the model on user data in its current mode (see `train`/`eval`); the output
        stays on the device. ``model(X)`` is the same."""
        backend = self._require_built()
        with backend.activate():
            Y, _ = self.apply(self._input(X), self.training)
        return Y

    __call__ = forward

    def apply(self, X: Array, training: bool) -> tuple[Array, Any]:
        """The layers in order (see `backprop.layers.Sequential`); in mixed precision the
        weights are rounded for the pass's matrix products first, in one pass (`rounded_weights`)."""
        if self.path or not self._precision.reduced:  # nested: its parent's pass rounded them
            return super().apply(X, training)
        with rounded_weights(self.parameters()):
            return super().apply(X, training)

    def predict(self, X: Any, batch_size: int | None = None) -> Array:
        """Outputs for ``X`` in inference mode, on the model's device (`bp.to_numpy` brings them
        home). ``batch_size`` bounds memory for large inputs."""
        backend = self._require_built()
        if batch_size is not None:
            batch_size = integer(batch_size, "batch_size", minimum=1, owner="predict")
        was_training = self.training
        self.training = False
        try:
            with backend.activate():
                Xd = self._input(X)
                if batch_size is None or Xd.shape[0] <= batch_size:
                    return self.apply(Xd, False)[0]
                n = Xd.shape[0]
                parts = [self.apply(Xd[i : min(i + batch_size, n), ...], False)[0] for i in range(0, n, batch_size)]
                return backend.xp.concat(parts, axis=0)
        finally:
            self.training = was_training

    def backprop(self, X: Any, y: Any, loss: Loss | str) -> float:
        """Forward, loss and backward on one batch: fills every parameter's ``.grad``
        (overwriting, not accumulating) and returns the loss as a Python float."""
        backend = self._require_built()
        loss = get_loss(loss)
        self._check_loss(loss)
        with backend.activate():
            L = self.loss_and_grads(*self.checked_data(X, y, loss), loss)
        return backend.scalar(L)

    def loss_and_grads(self, X: Array, T: Array, loss: Loss) -> Array:
        """`backprop` for data already on the device and checked: returns the loss as a 0-d
        device array (no host sync). Call inside ``backend.activate()``."""
        return self.train_batch(X, T, loss)[0]

    def train_batch(self, X: Array, T: Array, loss: Loss, scale: float | None = None) -> tuple[Array, Array]:
        """Forward, loss (plus `Dense` l1/l2 penalties) and backward on checked device data, in
        the current mode; returns ``(L, P)``: the 0-d loss and the model's outputs. ``scale``
        (loss scaling): the gradients computed are those of ``scale * L``."""
        backend = self._require_built()
        P, backward = self.apply(X, self.training)
        L, dP = loss.value_and_grad(backend.ops, P, T)
        if scale is None:  # no context manager on the unscaled step: it runs every batch
            backward(dP, False)
        else:
            with scaled_gradients(self._penalised, scale):  # the penalties' own gradient terms are scaled alike
                backward(dP * scale, False)
        return L + self.penalty() if self._penalised else L, P

    def penalty(self, xp: Any = None) -> Array | float:
        """The sum of the layers' l1/l2 regularisation terms (0.0 when there are none), in the
        model's namespace (``xp``, as `Layer.penalty` takes it, defaults to that)."""
        xp = self._require_built().xp if xp is None else xp
        total: Array | float = 0.0
        for layer in self._penalised:
            total = total + layer.penalty(xp)
        return total

    def evaluate(self, X: Any, y: Any, loss: Loss | str, metrics: Any = (), batch_size: int = 1024) -> dict[str, float]:
        """Mean loss (without l1/l2 penalties) and metrics on ``(X, y)`` in inference mode,
        e.g. ``{"loss": 0.12, "accuracy": 0.97}``."""
        backend = self._require_built()
        batch_size = integer(batch_size, "batch_size", minimum=1, owner="evaluate")
        loss = get_loss(loss)
        self._check_loss(loss)
        with backend.activate():
            Xd, T = self.checked_data(X, y, loss)
            outputs = self.out_features if self.out_features is not None else Xd.shape[1]
            return _evaluate(self, Xd, T, loss, get_metrics(metrics, loss, outputs), batch_size)

    def checked_data(self, X: Any, y: Any, loss: Loss, x_name: str = "X", y_name: str = "y") -> tuple[Array, Array]:
        """Inputs and targets checked (shapes, labels, NaN/Inf) and moved to the device once.
        Call inside ``backend.activate()``."""
        Xd = self._input(X)
        if Xd.shape[0] == 0:
            raise ValueError(f"{x_name} has no samples")
        features = self.out_features if self.out_features is not None else Xd.shape[1]  # activations only: kept
        return Xd, loss.prepare_target(self._require_built(), y, Xd.shape[0], features, y_name)

    def fit(self, X: Any, y: Any, *, loss: Loss | str, optimizer: Optimizer | str, **options: Any) -> History:
        """Train with mini-batches; see `backprop.training.fit` for every option (epochs,
        batch_size, shuffle, clip_grad_norm, validation_data, validation_split, metrics, early_stopping,
        scheduler, record_grad_norms, checkpoint, initial_epoch, history, graph, verbose,
        callbacks, distributed). ``X``/``y`` may be memory-mapped arrays or ``.npy`` paths (read
        a batch at a time); ``distributed=bp.distributed.init()`` trains data-parallel under
        ``mpiexec``."""
        own = {id(p) for p in self.parameters()}
        foreign = [getattr(p, "name", repr(p)) for p in getattr(optimizer, "params", ()) if id(p) not in own]
        if foreign:
            raise ValueError(
                f"the optimizer updates {len(foreign)} parameter(s) that are not this model's ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}), so fit would train nothing of it: build the optimizer over "
                "this model's parameters, e.g. bp.optim.Adam(model.parameters())"
            )
        check_data_fits(self, X, options.get("batch_size", 32))
        return _fit(self, X, y, loss=loss, optimizer=optimizer, **options)

    def save(self, path: str | os.PathLike[str], optimizer: Optimizer | None = None, **kwargs: Any) -> None:
        """Save this model (and ``optimizer``; ``scheduler=``, ``epoch=``, ``history=``,
        ``extra=``) to one checkpoint file, atomically; see `backprop.checkpoint.save_checkpoint`."""
        refuse_slice(self, "save")
        save_checkpoint(path, self, optimizer, **kwargs)

    def to(
        self, device: DeviceLike | None = None, dtype: str | None = None, precision: str | Precision | None = None
    ) -> Sequential:
        """Move every parameter (and gradient) to ``device``, cast to ``dtype`` and/or compute
        in ``precision``, in place. Optimizer state follows on the optimizer's next step.
        Returns ``self``."""
        refuse_slice(self, "to")
        old = self._require_built()
        mode = self._precision if precision is None else get_precision(precision)
        new = precision_backend(mode, device if device is not None else old.device, dtype or old.dtype_name)
        if mode is not self._precision:
            self.loss_scaler = (self.loss_scaler or LossScaler()) if mode.loss_scaling else None
            self._precision = mode
        for layer in self.walk():
            layer.backend = new
        for _, p in self.named_variables():
            p.data = new.from_host(to_numpy(p.data))
            p.grad = None if p.grad is None else new.from_host(to_numpy(p.grad))
            p.backend = new
        self._pack()
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and saved state array as a host NumPy copy, by dotted name. The
        parameters in the flat buffer come from one copy of it (one sync on a GPU)."""
        params = self.parameters()
        arenas = params[0].arenas if params else None
        hosted = arenas.data.host_copies([p.data for p in params]) if arenas is not None else {}
        # the rest: state outside the buffer (BatchNorm statistics), a parameter rebound since
        return {
            name: hosted[id(p.data)] if id(p.data) in hosted else np.array(to_numpy(p.data), copy=True)
            for name, p in self.named_variables()
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy values into the parameters (cast to the model dtype), as PyTorch's. With
        ``strict=True`` names must match exactly; with ``strict=False`` the names both have are
        loaded and the others reported: the returned ``LoadResult(missing_keys,
        unexpected_keys)`` lists them. Shapes must match, and values must be real numbers,
        finite in the model's dtype; any problem lists every difference and changes nothing."""
        backend = self._require_built()
        own = dict(self.named_variables())
        values, missing, unexpected = checked_state(own, state, strict, backend.dtype_name)
        for name, value in values.items():
            p = own[name]
            p.data = backend.from_host(value)
            p.grad = None
        self._pack()
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------------ helpers
    def _pack(self) -> None:
        """Put the trainable parameters into one flat buffer (NumPy, CuPy) so optimizers can
        update them all at once; their ``.data`` become views of it."""
        whole = getattr(self, "_whole", None)
        if whole is not None:  # a slice: its parameters are part of the whole model's buffer
            return whole._pack()
        backend = self._require_built()
        params = self.parameters()
        if backend.device.type == "array_api":  # slices there need not be views one can write through
            for p in params:
                p.arenas = None
            return
        if not params:
            return
        arenas = params[0].arenas
        if arenas is None or arenas.data.backend is not backend or any(p.arenas is not arenas for p in params):
            arenas = ParameterArenas(backend, [p.shape for p in params])
        with backend.activate():
            views = arenas.data.gather([p.data for p in params])
        for i, (p, view) in enumerate(zip(params, views)):
            p.data, p.arenas, p.index = view, arenas, i

    def _input(self, X: Any) -> Array:
        return checked_input(self, X)

    def _check_loss(self, loss: Loss) -> None:
        check_loss(self, loss)


class LoadResult(NamedTuple):
    """What `Sequential.load_state_dict` did not load: names the model has that the state
    lacked, and names the state has that the model lacks (PyTorch's ``_IncompatibleKeys``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]
