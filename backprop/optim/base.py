"""`Optimizer`: the shared machinery; subclasses write one parameter's update rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backends import Backend, to_numpy
from ..parameter import Parameter

__all__ = ["Optimizer"]


class Optimizer:
    """Updates parameters from their gradients.

    State (momentum buffers, moment estimates, step counts) is kept per parameter, on the
    parameter's device; after ``model.to(device)`` it follows on the next `step`.
    ``lr`` may be changed between steps (that is what learning-rate schedules do).
    """

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters: pass model.parameters()")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} takes bp.Parameter objects (model.parameters()); got {type(p).__name__}")
        self.lr = _non_negative(lr, "lr")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's settings (besides ``params``), for saving and printing."""
        return {"lr": self.lr}

    def zero_grad(self) -> None:
        """Forget all gradients (``.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            backend = p.backend
            if state.get("backend") is not backend:
                _move_state(state, backend)
            with backend.activate():
                self.update(p, state, backend.xp)

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        """One parameter's update rule: read ``p.grad``, update ``state`` and ``p.data``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state, arrays as host NumPy copies."""
        state = {}
        for i, s in enumerate(self.state):
            for key, value in s.items():
                if key == "backend":
                    continue
                state[f"{i}.{key}"] = np.array(to_numpy(value), copy=True) if not isinstance(value, (int, float)) else value
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(), "state": state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (for the same parameters, in the same order)."""
        if saved.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state is for {saved.get('type')}, not {type(self).__name__}")
        for key, value in saved.get("hyperparameters", {}).items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        fresh: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in saved["state"].items():
            index, _, name = key.partition(".")
            i = int(index)
            if i >= len(self.params):
                raise ValueError(f"optimizer state has entry {key!r} but the optimizer has {len(self.params)} parameters")
            fresh[i][name] = value
        for p, s in zip(self.params, fresh):
            for name, value in s.items():
                if isinstance(value, np.ndarray) and value.shape != p.shape:
                    raise ValueError(f"optimizer state {name!r} for {p.name!r} has shape {value.shape}, expected {p.shape}")
        self.state = fresh

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _move_state(state: dict[str, Any], backend: Backend) -> None:
    """Bring every array in ``state`` to ``backend`` (after ``model.to`` or loading)."""
    for key, value in state.items():
        if key != "backend" and not isinstance(value, (int, float)):
            state[key] = backend.from_host(np.array(to_numpy(value)))
    state["backend"] = backend


def _non_negative(value: Any, name: str) -> float:
    number = float(value)
    if not number >= 0.0:
        raise ValueError(f"{name} must be a non-negative number; got {value!r}")
    return number

