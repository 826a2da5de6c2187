"""The random generators a model draws from while training, captured and restored.

A model's ``shuffle_rng`` orders the mini-batches and its ``noise_rng`` feeds stochastic
layers; a layer may also keep a host generator of its own (found by looking for
`numpy.random.Generator` attributes). Restoring their states in place, after the model is
rebuilt, makes a resumed run draw exactly the numbers the uninterrupted run would have.
Generators that live on a GPU (CuPy's) cannot be captured; a layer that draws from one
(`Dropout(masks="device")`) saves how many streams it has started instead, and a resumed
run starts a fresh one (``"<layer path>:streams"``): new masks, never repeated ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .protocol import CheckpointedModel

__all__ = ["restore_rng_states", "rng_states"]


def rng_states(model: CheckpointedModel) -> dict[str, Any]:
    """``{"shuffle": state, "noise": state, "<layer path>:<attribute>": state, ...}``, each the
    generator's ``bit_generator.state`` (a dict; copies, so later draws do not change them)."""
    states = {"shuffle": model.shuffle_rng.bit_generator.state, "noise": model.noise_rng.bit_generator.state}
    for key, generator in _layer_generators(model):
        states[key] = generator.bit_generator.state
    for layer in model.walk():
        stream = getattr(layer, "stream_state", None)
        state = stream() if stream is not None and layer is not model else None
        if state is not None:
            states[f"{layer.path}:streams"] = state
    return states


def restore_rng_states(model: CheckpointedModel, states: dict[str, Any]) -> None:
    """Set every generator captured by `rng_states` back to its state, in place (layers that
    hold a reference to ``model.noise_rng`` see the change). A layer generator the rebuilt
    model does not have on the host (it runs on a GPU now) is skipped. Raises ``ValueError``
    for a state that does not fit its generator and ``KeyError`` for a missing one."""
    model.shuffle_rng.bit_generator.state = states["shuffle"]
    model.noise_rng.bit_generator.state = states["noise"]
    own = dict(_layer_generators(model))
    layers = {layer.path: layer for layer in model.walk() if layer is not model}
    for key, state in states.items():
        path, _, attribute = key.rpartition(":")
        layer = layers.get(path) if attribute == "streams" else None
        if layer is not None and hasattr(layer, "restore_stream_state"):
            layer.restore_stream_state(state)
        elif key not in ("shuffle", "noise") and key in own:
            own[key].bit_generator.state = state


def _layer_generators(model: CheckpointedModel) -> Iterator[tuple[str, np.random.Generator]]:
    shared = (model.shuffle_rng, model.noise_rng)
    for layer in model.walk():
        if layer is model:
            continue
        for attribute, value in sorted(getattr(layer, "__dict__", {}).items()):
            if isinstance(value, np.random.Generator) and not any(value is g for g in shared):
                yield f"{layer.path}:{attribute}", value
