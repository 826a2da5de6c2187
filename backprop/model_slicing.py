"""``model[i:j]``: a model made of some of another's layers — the same layer objects, not
copies, as a slice of PyTorch's ``nn.Sequential`` — for running part of a trained model (the
features its hidden layers compute, say)."""

from __future__ import annotations

from typing import TypeVar

from .layers.sequential import Sequential as SequentialLayer

__all__ = ["refuse_slice", "sliced"]

M = TypeVar("M", bound=SequentialLayer)


def sliced(model: M, index: slice) -> M:
    """A model of ``model.layers[index]`` (step 1), sharing them with ``model``.

    It is a model of the same class on the same device, with the same dtype, seed, mode and
    random generators, ready to `predict`, `evaluate`, be summarised or trained (training it
    trains the shared layers). Its layers keep their names (``model[2:]``'s first weight is
    still ``"2.W"``, as in PyTorch). The layers belong to ``model``, which alone can be saved or
    moved with ``to``; ``_whole`` points to it."""
    if index.step not in (None, 1):
        raise ValueError(
            f"a slice of a model keeps its layers in order: use model[i:j] (step 1), not step {index.step}"
        )
    positions = range(len(model.layers))[index]
    view = object.__new__(type(model))
    SequentialLayer.__init__(view, *model.layers[index])
    shared = ("backend", "seed", "training", "shuffle_rng", "noise_rng")
    view.__dict__.update({key: value for key, value in model.__dict__.items() if key in shared})
    # the class labels (model.classes) and the cut of one output (model.threshold) are about the last
    # layer's outputs: only a slice ending with it has them
    ends = len(positions) > 0 and positions[-1] == len(model.layers) - 1
    whole = model.__dict__.get("_whole")  # a slice of a slice belongs to the first model too
    view.__dict__.update({
        "stop_training": False,
        "_classes": model.__dict__.get("_classes") if ends else None,
        "threshold": model.__dict__.get("threshold") if ends else None,
        "_whole": model if whole is None else whole,
    })
    resolved, width = [], model.in_features  # the width after each of model's layers
    for built in model.layer_widths:
        width = built if built is not None else width  # None: the layer keeps its input's width
        resolved.append(width)
    start = positions.start
    view.in_features = model.in_features if start == 0 else resolved[start - 1]
    view.layer_widths = [resolved[i] for i in positions]
    view.out_features = view.layer_widths[-1] if view.layer_widths else view.in_features
    view.link()
    view.__dict__["_penalised"] = [layer for layer in view.walk() if layer is not view and layer.regularised]
    return view


def refuse_slice(model: SequentialLayer, method: str) -> None:
    """Refuse ``method`` (``save``, ``to``) on a slice: it would save or move part of a model."""
    if getattr(model, "_whole", None) is not None:
        raise ValueError(
            f"this model is a slice of another (model[i:j]), whose layers it shares: call {method} on the whole "
            "model, or build a new bp.Sequential of new layers (weights copied with load_state_dict)"
        )
