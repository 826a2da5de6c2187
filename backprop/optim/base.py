"""`Optimizer`: the reference update rule, hyperparameters and state; subclasses write one
parameter's rule (`update`), and rules that are elementwise also their `fused_update` over
flat buffers (run by `backprop.optim.fused` when the whole model lives in one buffer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from ..backends import Array, Ops, to_numpy
from ..parameter import Parameter
from ..registry import OPTIMIZERS
from ..validation import real
from . import fused as _fused

__all__ = ["Optimizer"]


class Optimizer:
    """Updates parameters from their gradients.

    State (momentum buffers, moment estimates, step counts) is kept per parameter, on the
    parameter's device; after ``model.to(device)`` it follows on the next `step`.
    ``lr`` may be changed between steps (that is what learning-rate schedules do).

    `update` is the reference rule, one parameter at a time. When all parameters live in one
    flat buffer (a model on NumPy or CuPy) and the rule is ``fusable``, `step` instead runs
    `fused_update` over the whole buffer at once, with the state arrays named in
    ``fused_state`` held in flat buffers too (each parameter's state stays a view).
    """

    #: whether `fused_update` is implemented (an elementwise rule with in-place state)
    fusable: ClassVar[bool] = False
    fused_state: tuple[str, ...] = ()
    #: whether the rule keeps a per-parameter ``"step"`` count (Adam's bias correction does)
    counts_steps: ClassVar[bool] = False

    def __init__(self, params: Iterable[Parameter], lr: float):
        if not isinstance(params, Iterable):
            raise TypeError(f"{type(self).__name__} takes the model's parameters (model.parameters()); got "
                            f"{type(params).__name__} {params!r}")  # fmt: skip
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters: pass model.parameters()")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__} takes bp.Parameter objects (model.parameters()); got {type(p).__name__}"
                )
        self.lr = real(lr, "lr", low=0.0)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def get_config(self) -> dict[str, Any]:
        """The constructor's settings (besides ``params``) as JSON values, for saving and
        printing: ``from_config(params, config)`` makes a new optimizer with them."""
        return {"lr": self.lr}

    @classmethod
    def from_config(cls, params: Iterable[Parameter], config: dict[str, Any]) -> Optimizer:
        """A new optimizer over ``params`` with `get_config`'s settings (and no state)."""
        return cls(params, **config)

    def zero_grad(self) -> None:
        """Forget all gradients (``.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        fused = self.__dict__.get("_fused")
        if fused is None or not fused.valid(self):
            fused = self._fused = _fused.prepare(self)
        if fused is not None:
            _fused.run(self, fused)
            return
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            backend = p.backend
            if state.get("backend") is not backend:
                _fused.move_state(state, backend)
            with backend.activate():
                self.update(p, state, backend.xp)

    @property
    def fused_ready(self) -> bool:
        """Whether the last `step` updated every parameter in one fused update (so a captured
        step updates every array in place)."""
        return self.__dict__.get("_fused") is not None

    @property
    def fused(self) -> _fused.FusedUpdate | None:
        """The fused update the last `step` ran (``None`` after the per-parameter rule): its
        ``valid(optimizer)`` says whether every array it updates in place is still the one the
        parameters and the state hold."""
        fused: _fused.FusedUpdate | None = self.__dict__.get("_fused")
        return fused

    def update(self, p: Parameter, state: dict[str, Any], xp: Any) -> None:
        """One parameter's update rule: read ``p.grad``, update ``state`` and ``p.data``."""
        raise NotImplementedError

    def fused_update(
        self, ops: Ops, p: Array, g: Array, state: list[Array], *, fresh: bool, step: int, scalars: Array | None
    ) -> None:
        """The rule over flat buffers, in place: parameters ``p``, gradients ``g``, the
        ``fused_state`` buffers ``state`` (zeros when ``fresh``), update number ``step``
        (1-based); GPU kernels read `step_scalars` from the device array ``scalars``."""
        raise NotImplementedError(f"{type(self).__name__} has no fused update")

    def step_scalars(self, step: int) -> tuple[float, ...]:
        """The values of update number ``step`` that change from step to step, as GPU kernels
        read them from device memory (at most three): here ``(lr,)``."""
        return (self.lr,)

    def replay_scalars(self) -> tuple[Any, tuple[float, ...]]:
        """For a captured step about to be replayed: the device array its kernels read the
        step-dependent scalars from, and the coming step's `step_scalars` to write there."""
        return _fused.replay_scalars(self)

    def after_replay(self) -> None:
        """After a captured step was replayed: the host bookkeeping (step counts) redone."""
        _fused.after_replay(self)

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state, arrays as host NumPy copies (state kept in
        flat buffers is read with one copy of each buffer: one sync on a GPU, not one per array)."""
        hosted: dict[int, np.ndarray] = {}
        for key, arena in _fused.flat_states(self).items():
            hosted.update(arena.host_copies([s.get(key) for s in self.state]))
        state: dict[str, Any] = {}
        for i, s in enumerate(self.state):
            for key, value in s.items():
                if key == "backend":
                    continue
                if isinstance(value, (int, float)):
                    state[f"{i}.{key}"] = value
                else:
                    held = hosted.get(id(value))
                    state[f"{i}.{key}"] = held if held is not None else np.array(to_numpy(value), copy=True)
        return {"type": OPTIMIZERS.name_of(self), "hyperparameters": self.get_config(), "state": state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (for the same parameters, in the same order)."""
        if saved.get("type") != OPTIMIZERS.name_of(self):
            raise ValueError(f"optimizer state is for {saved.get('type')}, not {OPTIMIZERS.name_of(self)}")
        for key, value in saved.get("hyperparameters", {}).items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        fresh: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in saved["state"].items():
            index, _, name = key.partition(".")
            i = int(index)
            if i >= len(self.params):
                raise ValueError(
                    f"optimizer state has entry {key!r} but the optimizer has {len(self.params)} parameters"
                )
            fresh[i][name] = value
        for p, s in zip(self.params, fresh):
            for name, value in s.items():
                if isinstance(value, np.ndarray) and value.shape != p.shape:
                    raise ValueError(
                        f"optimizer state {name!r} for {p.name!r} has shape {value.shape}, expected {p.shape}"
                    )
        self.state = fresh

    def __getstate__(self) -> dict[str, Any]:
        """For pickling (joblib, multiprocessing): hyperparameters, parameters and each
        parameter's state as host NumPy arrays. The flat state buffers, the fused update and
        the GPU scalars are left out: the next `step` makes them again from that state (as
        after ``model.to``), with the same numbers. Pickle the optimizer together with its
        model (``pickle.dumps((model, optimizer))``) so that they share their parameters."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_fused", "_flat_cache", "_scalars")}
        state["state"] = [
            {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in s.items() if k != "backend"}
            for s in self.state
        ]
        return state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
