"""The layer protocol: ``apply`` runs the forward pass and returns a ``backward`` callback.

A layer's ``apply(X, training)`` returns ``(Y, backward)``. ``backward(dY, need_dX)``
writes the gradients of the layer's own parameters into their ``.grad`` (overwriting) and
returns ``dX = dLoss/dX`` (or ``None`` when ``need_dX`` is false, which saves the first
layer's largest matrix product). The callback captures exactly what it needs from the
forward pass; no layer keeps a stale cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..backends import Array, Backend, Ops
from ..parameter import Parameter

__all__ = ["Backward", "BuildContext", "Layer", "ShardContext", "Stage"]

Backward = Callable[[Array, bool], "Array | None"]
Stage = Callable[[Array, bool], "tuple[Array, Backward]"]


@dataclass
class BuildContext:
    """What a layer needs to create its parameters.

    ``rng`` is the host generator initial weights are drawn from; ``noise_rng`` the host
    generator stochastic layers (dropout) draw from while training.
    """

    backend: Backend
    rng: np.random.Generator
    noise_rng: np.random.Generator


@dataclass
class ShardContext:
    """What a layer sees of data-parallel training: where this process's rows sit in the
    global batch, and how to sum an array over the processes.

    The trainer (`backprop.training`) makes one per `fit` on several processes, hands it to
    every layer (`Layer.set_shard_context`) and moves ``batch_rows``/``start``/``stop`` before
    each step; layers never see the communicator itself. Layers that must behave as if they
    saw the whole global batch use it: `BatchNorm` sums its statistics over the processes,
    host-mask `Dropout` draws the global batch's mask and keeps its own rows.

    ``allreduce_sum_(A)``: replace the contiguous array ``A`` by its sum over all processes,
    in place; every process must make the same calls in the same order, a process with no
    rows in a batch included. ``gradients_ready(layers)``: called by containers once backward
    has finished ``layers`` (their gradients are final), so that their reduction can start
    while backward goes on; ``None`` when nobody listens.
    """

    rank: int
    size: int
    allreduce_sum_: Callable[[Array], None]
    batch_rows: int = 0  # B: the rows of the global batch being trained
    start: int = 0  # this process's rows are the global batch's rows start:stop
    stop: int = 0
    gradients_ready: Callable[[Sequence[Layer]], None] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        """This process's rows in the batch, ``n_r`` (0 when it holds none)."""
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """``n_r / B``: the share of the global batch's mean that this process's mean makes."""
        return self.count / self.batch_rows if self.batch_rows else 0.0


class Layer:
    """Base class of every layer and container.

    Subclasses override `apply`, and `build` when they own parameters or constrain the
    number of features. ``path`` is the layer's dotted position in its model (``"0"``,
    ``"2.block.1"``), set when the model is built and used in names and error messages.

    A layer declares what the rest of the library needs to know about it, so that nothing
    above has to ask which class it is: `output_kind`, `updates_state`, `randomness`,
    `regularised` (with `penalty`) and `fused_with`.
    """

    #: what the outputs are: ``"probabilities"`` (Sigmoid, Softmax), ``"scores"`` (raw and
    #: unbounded, as a Dense layer's) or ``"any"``; losses check it against what they expect
    output_kind: ClassVar[str] = "any"
    #: whether a training pass replaces saved state arrays (BatchNorm's running statistics)
    #: instead of leaving every array in place, which a replayed CUDA graph cannot follow
    updates_state: ClassVar[bool] = False
    #: whether a training pass, in data-parallel training, makes collective calls of its own
    #: (`ShardContext.allreduce_sum_`, as synchronised BatchNorm does): the step then reduces
    #: gradients after backward rather than overlapped with it, keeping one stream of collectives
    collective: ClassVar[bool] = False
    #: the data-parallel training this layer takes part in (set by the trainer, else ``None``)
    shard: ShardContext | None = None
    #: what the loss's gradient is multiplied by in the backward pass under way (dynamic loss
    #: scaling sets it, `backprop.loss_scaling`): a layer adding a gradient term of its own (a
    #: penalty's) multiplies that term by it, as it would be had the term come through the loss
    loss_scale: float = 1.0

    def __init__(self) -> None:
        self.path = ""
        self.backend: Backend | None = None
        self._variables: dict[str, Parameter] = {}

    # ------------------------------------------------------------------ building
    def build(self, in_features: int | None, ctx: BuildContext) -> int | None:
        """Create parameters on ``ctx.backend``; return the number of output features
        (``None`` when still unknown). The default keeps the feature count."""
        self.backend = ctx.backend
        self._variables = {}
        return in_features

    def add_variable(self, name: str, value: np.ndarray, ctx: BuildContext, *, trainable: bool = True) -> Parameter:
        """Register a parameter (or, with ``trainable=False``, saved state) from host values."""
        full = f"{self.path}.{name}" if self.path else name
        param = Parameter(full, ctx.backend.from_host(value), ctx.backend, trainable=trainable)
        self._variables[name] = param
        return param

    def variables(self) -> dict[str, Parameter]:
        """This layer's own parameters and saved state, by local name (children excluded)."""
        return dict(self._variables)

    def children(self) -> list[tuple[str, Layer]]:
        """Named sub-layers of a container (empty for a plain layer)."""
        return []

    def walk(self) -> Iterator[Layer]:
        """This layer and every layer inside it, depth first, in order."""
        yield self
        for _, child in self.children():
            yield from child.walk()

    def describe(self) -> str:
        """How error messages name this layer: ``layer '2' (Dense(4, 1))``."""
        return f"layer {self.path!r} ({self!r})" if self.path else repr(self)

    def set_shard_context(self, shard: ShardContext | None) -> None:
        """Data-parallel training starts (``shard``) or ends (``None``). The trainer calls it
        on every layer of the model (`walk`); override it to reset what depends on it."""
        self.shard = shard

    # ------------------------------------------------------------------ computing
    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        raise NotImplementedError(f"{type(self).__name__} must implement apply(X, training) -> (Y, backward)")

    def fused_with(self, nxt: Layer) -> Stage | None:
        """A stage computing this layer followed by ``nxt`` in one go (fewer passes over
        memory, the same numbers), or ``None`` when the two run one after the other."""
        return None

    # ------------------------------------------------------------------ declarations
    def randomness(self) -> str | None:
        """Where a training pass draws random numbers: ``"host"`` (the model's NumPy
        generator, the same on every device), ``"device"`` or ``None`` (deterministic)."""
        return None

    def size_estimate(self) -> int:
        """How many parameter and state values `build` will allocate (this layer's own, not its
        children's), known before it allocates any: the model refuses a model that cannot fit."""
        return 0

    @property
    def regularised(self) -> bool:
        """Whether `penalty` adds a term to the training loss (and its gradient to ``.grad``)."""
        return False

    def penalty(self, xp: Any) -> Array | float:
        """The regularisation term this layer adds to the training loss (0.0 for none)."""
        return 0.0

    # ------------------------------------------------------------------ description
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer, as JSON values: ``from_config`` of
        them makes an unbuilt twin. Saving a model stores this with the registered name."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A new, unbuilt layer from `get_config`'s values."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def ops(self) -> Ops:
        """The computations of the backend this layer was built on."""
        return self._require_built().ops

    def _require_built(self) -> Backend:
        if self.backend is None:
            raise RuntimeError(f"{self!r} is not part of a model yet: put it in bp.Sequential(...) before calling it")
        return self.backend

    def _check_input(self, X: Array, features: int) -> None:
        if X.ndim == 2 and X.shape[1] == features:
            return
        shape = tuple(X.shape)
        if len(shape) != 2 or shape[1] != features:
            raise ValueError(
                f"{self.describe()} expects inputs of shape (batch, {features}); got shape {shape}. "
                "Inputs are batch-first: one row per sample, one column per feature."
            )
