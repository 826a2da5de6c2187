"""`Optimizer`: the shared machinery; subclasses write one parameter's update rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backends import Backend, to_numpy
from ..backends.arena import Arena, ParameterArenas
from ..parameter import Parameter

__all__ = ["Optimizer"]


class Optimizer:
    """Updates parameters from their gradients.

    State (momentum buffers, moment estimates, step counts) is kept per parameter, on the
    parameter's device; after ``model.to(device)`` it follows on the next `step`.
    ``lr`` may be changed between steps (that is what learning-rate schedules do).

    `update` is the reference rule, one parameter at a time. When all parameters live in one
    flat buffer (a model on NumPy or CuPy) and the backend has a fused kernel named
    ``fused_kernel``, `step` instead updates the whole buffer at once, with the state arrays
    named in ``fused_state`` held in flat buffers too (each parameter's state stays a view).
    """

    fused_kernel = ""
    fused_state: tuple[str, ...] = ()
    #: whether the rule keeps a per-parameter ``"step"`` count (Adam's bias correction does)
    counts_steps = False

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters: pass model.parameters()")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__} takes bp.Parameter objects (model.parameters()); got {type(p).__name__}"
                )
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
        fused = self.__dict__.get("_fused")
        if fused is None or not fused.valid(self):
            fused = self._fused = self._fuse()
        if fused is not None:
            self._fused_step(fused)
            return
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

    def fused_arguments(self, step: int) -> dict[str, Any]:
        """Keyword arguments of the fused kernel for update number ``step`` (1-based)."""
        raise NotImplementedError

    def _fuse(self) -> _Fused | None:
        """Ready the flat buffers for one update of all parameters at once, when that gives
        exactly the per-parameter loop's result: every parameter a view of the model's
        arena, with a gradient, on one backend, all stepped equally often. None otherwise."""
        arenas = self.params[0].arenas
        if not self.fused_kernel or arenas is None or len(arenas.data.views) != len(self.params):
            return None
        backend = arenas.data.backend
        for i, p in enumerate(self.params):
            if p.arenas is not arenas or p.index != i or p.grad is None or p.backend is not backend:
                return None
        states = self.state
        if self.counts_steps:
            step = states[0].get("step", 0)
            if any(s.get("step", 0) != step for s in states):
                return None  # parameters stepped different numbers of times: only the loop is exact
        keys = self.fused_state
        present = sum(keys[0] in s for s in states) if keys else 0
        if 0 < present < len(states):
            return None
        kernel = backend.kernel(self.fused_kernel, None)
        if kernel is None:
            return None
        for state in states:
            if state.get("backend") is not backend:
                _move_state(state, backend)
        params = self.params
        fresh = bool(keys) and present == 0
        with backend.activate():
            data = arenas.data.gather([p.data for p in params])
            grads = arenas.grad.gather([p.grad for p in params])
            for p, d, g in zip(params, data, grads):
                p.data, p.grad = d, g
            flats = [self._flat_state(arenas, key, fresh) for key in keys]
        for i, state in enumerate(states):
            for key, flat in zip(keys, flats):
                state[key] = flat.views[i]
        return _Fused(arenas, kernel, keys, flats, states, fresh)

    def _fused_step(self, fused: _Fused) -> None:
        backend = fused.arenas.data.backend
        states = self.state
        step = states[0].get("step", 0) + 1
        arguments = self.fused_arguments(step)
        with backend.activate():
            write_scalars = fused.write_scalars
            if write_scalars is not None:  # GPU kernels read step-dependent scalars from device memory
                arguments["scalars"] = self._device_scalars(backend)
                if not backend.capturing():  # a graph replay writes them itself (`replay_scalars`)
                    write_scalars(arguments["scalars"], self.step_scalars(step))
            fused.kernel(
                backend.xp,
                fused.arenas.data.flat,
                fused.arenas.grad.flat,
                *fused.state_flats,
                fresh=fused.fresh,
                **arguments,
            )
        fused.fresh = False
        if self.counts_steps:
            for state in states:
                state["step"] = step

    def step_scalars(self, step: int) -> tuple[float, ...]:
        """The values of update number ``step`` that change from step to step, as GPU kernels
        read them from device memory (at most three): here ``(lr,)``."""
        return (self.lr,)

    def _device_scalars(self, backend: Backend) -> Any:
        """A float64 array of three on the device for `step_scalars`, made once per backend."""
        held = self.__dict__.get("_scalars")
        if held is None or held[0] is not backend:
            held = self._scalars = (backend, backend.zeros((3,), dtype=backend.xp.float64))
        return held[1]

    def replay_scalars(self) -> tuple[Any, tuple[float, ...]]:
        """For a captured step about to be replayed: the device array its kernels read the
        step-dependent scalars from, and the coming step's `step_scalars` to write there."""
        backend = self.params[0].backend
        return self._device_scalars(backend), self.step_scalars(self.state[0].get("step", 0) + 1)

    def after_replay(self) -> None:
        """After a captured step was replayed: the host-side bookkeeping its Python did once,
        at capture (step counts), done again."""
        if self.counts_steps:
            for state in self.state:
                state["step"] = state.get("step", 0) + 1

    def _flat_state(self, arenas: ParameterArenas, key: str, fresh: bool) -> Arena:
        """The flat buffer of state ``key``, holding every parameter's current value (zeros
        when ``fresh``); made once per parameter arena."""
        cache: dict[str, Arena] = self.__dict__.setdefault("_flat_cache", {})
        arena = cache.get(key)
        if arena is None or arena.backend is not arenas.data.backend or arena.shapes != arenas.data.shapes:
            arena = cache[key] = Arena(arenas.data.backend, arenas.data.shapes)
        if fresh:
            arena.flat[...] = 0
        else:
            arena.gather([s[key] for s in self.state])
        return arena

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state, arrays as host NumPy copies (state kept in
        flat buffers is read with one copy of each buffer: one sync on a GPU, not one per array)."""
        hosted: dict[int, np.ndarray] = {}
        for key, arena in self.__dict__.get("_flat_cache", {}).items():
            hosted.update(arena.host_copies([s.get(key) for s in self.state]))
        state = {}
        for i, s in enumerate(self.state):
            for key, value in s.items():
                if key == "backend":
                    continue
                if isinstance(value, (int, float)):
                    state[f"{i}.{key}"] = value
                else:
                    held = hosted.get(id(value))
                    state[f"{i}.{key}"] = held if held is not None else np.array(to_numpy(value), copy=True)
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

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class _Fused:
    """An optimizer's fused update, kept from step to step while nothing it relies on changed."""

    __slots__ = ("arenas", "fresh", "kernel", "keys", "pairs", "state_flats", "state_views", "states", "write_scalars")

    def __init__(
        self,
        arenas: ParameterArenas,
        kernel: Any,
        keys: tuple[str, ...],
        flats: list[Arena],
        states: list[dict[str, Any]],
        fresh: bool,
    ):
        self.arenas, self.kernel, self.keys, self.states, self.fresh = arenas, kernel, keys, states, fresh
        self.pairs = list(zip(arenas.data.views, arenas.grad.views))  # each parameter's value and gradient views
        self.write_scalars = arenas.data.backend.kernel("write_scalars", None)
        self.state_flats = [f.flat for f in flats]
        self.state_views = [[f.views[i] for f in flats] for i in range(len(states))]

    def valid(self, optimizer: Optimizer) -> bool:
        """Whether every parameter, gradient and state array is still the view it was: the
        user, `load_state_dict`, `model.to` or a gradient kept outside the arena (l1/l2,
        `zero_grad`) all replace one, and then the buffers are readied again."""
        if optimizer.state is not self.states or optimizer.fused_state != self.keys:
            return False
        for p, (data, grad) in zip(optimizer.params, self.pairs):
            if p.data is not data or p.grad is not grad:
                return False
        for state, views in zip(self.states, self.state_views):
            for key, view in zip(self.keys, views):
                if state.get(key) is not view:
                    return False
        return True


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
