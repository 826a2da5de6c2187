"""`Sequential` as a layer: a container applying its children in order, ``Y = f_n(... f_1(X))``.

This is the part of a model that other containers need: `Residual` holds one as its block,
the layer registry rebuilds one from a saved description, and the user's `bp.Sequential`
(`backprop.model`) is a subclass that adds a device, a dtype, a seed and the model API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, overload

from ..backends import Array
from ..parameter import Parameter
from ..registry import LAYERS
from .base import Backward, BuildContext, Layer, Stage
from .summary import ModelSummary, summarize

__all__ = ["Sequential", "layer_description"]


@LAYERS.register
class Sequential(Layer):
    """A stack of layers applied in order, as a layer: it owns no parameters itself, only
    its children ``"0"``, ``"1"``, ... (so the first Dense's weight is ``"0.W"``).

    A layer directly followed by one it fuses with (`Layer.fused_with`, e.g. a `Dense` and
    an elementwise activation) runs as one stage: the same numbers in fewer passes.

    It has no device of its own: the model it is part of builds it. A model you train is a
    `bp.Sequential`, this class plus a device, a dtype, a seed and fit/predict/save.
    """

    def __init__(self, *layers: Layer):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential takes layers such as bp.Dense(2, 4) or bp.ReLU(); argument {i} is {layer!r}"
                )
        self.layers: list[Layer] = list(layers)
        self.in_features: int | None = None
        self.out_features: int | None = None
        self._stages: list[Stage] = []
        self._stage_layers: list[tuple[Layer, ...]] = []  # the layers each stage computes
        self._trains_before: list[bool] = []  # whether a stage before each one has trainable parameters
        self.layer_widths: list[int | None] = []  # built: the features after each layer (None: not known yet)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle; a model pickled by an earlier version lacks the plan of its stages' layers
        and its layer widths: both are derived again from its (built) layers."""
        self.__dict__.update(state)
        if "_stage_layers" not in state:
            if self._stages:  # built: plan again what build planned
                self.link()
            else:
                self._stage_layers, self._trains_before = [], []
        if "layer_widths" not in state:
            widths, features = [], self.in_features
            for layer in self.layers:  # a layer with no out_features keeps its input's width
                features = getattr(layer, "out_features", None) or features
                widths.append(features)
            self.layer_widths = widths if self._stages else []

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    # ------------------------------------------------------------------ a sequence of layers
    def __len__(self) -> int:
        """How many layers it holds (its own, not those nested in them), as PyTorch's."""
        return len(self.layers)

    def __bool__(self) -> bool:
        return True  # a layer, even an empty container: never false as a sequence would be

    def __iter__(self) -> Iterator[Layer]:
        """Its layers, in order."""
        return iter(self.layers)

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Layer | Sequential:
        """``model[i]``: the layer at position ``i`` (negative counts from the end);
        ``model[i:j]``: a container of those layers, the same objects (not copies)."""
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[_position(index, len(self.layers))]

    # ------------------------------------------------------------------ inspection (Keras', PyTorch's habits)
    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``("0.W", W), ("0.b", b), ...``: the trainable parameters by name, as PyTorch's (the
        model's `named_variables` adds the saved state, such as BatchNorm's running statistics)."""
        for layer in self.walk():
            yield from ((p.name, p) for p in layer.variables().values() if p.trainable)

    def count_params(self) -> int:
        """How many values its layers hold, trainable or saved state (Keras' ``count_params``)."""
        return sum(math.prod(p.shape) for layer in self.walk() for p in layer.variables().values())

    def summary(self, in_features: int | None = None, print_fn: Callable[[str], object] | None = print) -> ModelSummary:
        """Print (with ``print_fn``; ``None``: do not) and return a table of the layers, their
        output shapes and parameter counts, with the totals (all, trainable, non-trainable) and
        their size in bytes, as Keras' ``model.summary()``; see `backprop.layers.summary`.
        ``in_features``: the input width, where no layer states it (a model of activations)."""
        backend = self._require_built()
        return summarize(self.layers, self.layer_widths, self.in_features, backend.dtype_name, in_features, print_fn)

    def build(self, in_features: int | None, ctx: BuildContext) -> int | None:
        super().build(in_features, ctx)
        features = in_features
        self.layer_widths = []
        for name, child in self.children():
            child.path = f"{self.path}.{name}" if self.path else name
            features = child.build(features, ctx)
            self.layer_widths.append(features)
        self.in_features = _first_in_features(self)
        self.out_features = features
        self.link()
        return features

    def link(self) -> None:
        """Plan the stages `apply` runs from the (built) layers: each layer's own, or a layer
        and the next one fused. `build` calls it; so does a model made of built layers."""
        fused = _fuse(self.layers)
        self._stages = [stage for stage, _ in fused]
        self._stage_layers = [layers for _, layers in fused]
        # backward needs a stage's dX only for a parameter before it (or for its caller): a
        # first Standardize or activation spares the first Dense its dX = dY W^T
        self._trains_before = []
        trains = False
        for group in self._stage_layers:
            self._trains_before.append(trains)
            trains = trains or _trains(group)

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        backwards = []
        for stage in self._stages:
            X, back = stage(X, training)
            backwards.append(back)

        shard = self.shard
        ready = None if shard is None else shard.gradients_ready  # data-parallel: reduce while backward goes on
        groups = self._stage_layers
        trains_before = self._trains_before

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            last = len(backwards) - 1
            for i in range(last, -1, -1):
                needed = need_dX or trains_before[i]
                dY = backwards[i](dY, needed)
                if ready is not None:
                    ready(groups[i])
                if not needed:
                    return None  # the stages before train nothing and the caller wants no dX
            return dY

        return X, backward

    def get_config(self) -> dict[str, Any]:
        return {"layers": [layer_description(layer) for layer in self.layers]}

    def __repr__(self) -> str:
        return f"Sequential(\n{self._inner_repr()},\n)"

    def _inner_repr(self) -> str:
        return ",\n".join("    " + repr(layer).replace("\n", "\n    ") for layer in self.layers)


def layer_description(layer: Layer) -> dict[str, Any]:
    """``{"class": name, "config": layer.get_config()}`` with the name ``layer``'s class is
    registered under (`backprop.registry.LAYERS`); a model (a subclass of this container) is
    described as the container it is inside another. Raises `TypeError` for a class that is
    not registered, naming it and the decorator that registers it."""
    name = "Sequential" if isinstance(layer, Sequential) else LAYERS.name_of(layer)
    return {"class": name, "config": layer.get_config()}


def _fuse(layers: list[Layer]) -> list[tuple[Stage, tuple[Layer, ...]]]:
    """The stages `Sequential.apply` runs, each with the layers it computes: each layer's
    ``apply``, except that a layer and the next one it fuses with (`Layer.fused_with`) run as
    one stage."""
    stages: list[tuple[Stage, tuple[Layer, ...]]] = []
    i = 0
    while i < len(layers):
        fused = layers[i].fused_with(layers[i + 1]) if i + 1 < len(layers) else None
        stages.append((fused, (layers[i], layers[i + 1])) if fused else (layers[i].apply, (layers[i],)))
        i += 2 if fused else 1
    return stages


def _trains(layers: tuple[Layer, ...]) -> bool:
    """Whether any of ``layers`` (or a layer inside them) has a trainable parameter."""
    return any(p.trainable for layer in layers for sub in layer.walk() for p in sub.variables().values())


def _position(index: Any, length: int) -> int:
    """``index`` as a position in ``0..length-1`` (negative ones count from the end), or a clear
    `IndexError`/`TypeError`."""
    if isinstance(index, bool) or not hasattr(index, "__index__"):
        raise TypeError(f"layers are indexed by an integer or a slice (model[0], model[1:]); got {index!r}")
    i = index.__index__()
    if not -length <= i < length:
        raise IndexError(f"layer index {i} is out of range: the model has {length} layers (0 to {length - 1})")
    return i + length if i < 0 else i


def _first_in_features(layer: Layer) -> int | None:
    for sub in layer.walk():
        features = getattr(sub, "in_features", None)
        if sub is not layer and features is not None:
            return int(features)
    return None
