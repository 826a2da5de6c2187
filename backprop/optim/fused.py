"""The fused update: one optimizer step over the model's whole flat buffer at once.

When every parameter is a view of the model's flat buffer (`backprop.backends.arena`), an
optimizer whose rule is elementwise updates the whole model with one call of its
``fused_update`` (a few passes over memory on NumPy, one kernel launch on CuPy) instead of a
few calls per parameter; its state arrays (moments, momentum buffers) then live in flat buffers
too, each parameter's state a view of them. That gives exactly the per-parameter rule's result
only under conditions checked here (`prepare`); otherwise the optimizer runs its reference
rule parameter by parameter. A prepared update is kept from step to step while nothing it
relies on changed (`FusedUpdate.valid`).

On a GPU the step-dependent scalars (learning rate, Adam's bias corrections) are read by the
kernels from a small device array written before each step (or, for a replayed CUDA graph,
before each replay: `replay_scalars`), so that a captured step replays this step's values.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from ..backends import Array, Backend, Ops, to_numpy
from ..backends.arena import Arena, ParameterArenas
from ..parameter import Parameter

__all__ = ["FusedUpdate", "Optimizer", "after_replay", "move_state", "prepare", "replay_scalars", "run"]


class Optimizer(Protocol):
    """What this module needs of a `backprop.optim.Optimizer`."""

    params: list[Parameter]
    state: list[dict[str, Any]]
    fusable: ClassVar[bool]
    counts_steps: ClassVar[bool]

    @property
    def fused_state(self) -> tuple[str, ...]: ...

    def fused_update(
        self, ops: Ops, p: Array, g: Array, state: list[Array], *, fresh: bool, step: int, scalars: Array | None
    ) -> None: ...

    def step_scalars(self, step: int) -> tuple[float, ...]: ...


class FusedUpdate:
    """An optimizer's fused update over one parameter arena."""

    __slots__ = ("arenas", "fresh", "keys", "pairs", "state_flats", "state_views", "states")

    def __init__(
        self,
        arenas: ParameterArenas,
        keys: tuple[str, ...],
        flats: list[Arena],
        states: list[dict[str, Any]],
        fresh: bool,
    ):
        self.arenas, self.keys, self.states, self.fresh = arenas, keys, states, fresh
        self.pairs = list(zip(arenas.data.views, arenas.grad.views))  # each parameter's value and gradient views
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


def prepare(optimizer: Optimizer) -> FusedUpdate | None:
    """Ready the flat buffers for one update of all parameters at once, when that gives exactly
    the per-parameter loop's result: a rule that fuses, every parameter a view of the model's
    arena, with a gradient, on one backend, all stepped equally often. None otherwise."""
    params = optimizer.params
    arenas = params[0].arenas
    if not optimizer.fusable or arenas is None or len(arenas.data.views) != len(params):
        return None
    backend = arenas.data.backend
    for i, p in enumerate(params):
        if p.arenas is not arenas or p.index != i or p.grad is None or p.backend is not backend:
            return None
    states = optimizer.state
    if optimizer.counts_steps:
        step = states[0].get("step", 0)
        if any(s.get("step", 0) != step for s in states):
            return None  # parameters stepped different numbers of times: only the loop is exact
    keys = optimizer.fused_state
    present = sum(keys[0] in s for s in states) if keys else 0
    if 0 < present < len(states):
        return None
    for state in states:
        if state.get("backend") is not backend:
            move_state(state, backend)
    fresh = bool(keys) and present == 0
    with backend.activate():
        data = arenas.data.gather([p.data for p in params])
        grads = arenas.grad.gather([p.grad for p in params])
        for p, d, g in zip(params, data, grads):
            p.data, p.grad = d, g
        flats = [_flat_state(optimizer, arenas, key, fresh) for key in keys]
    for i, state in enumerate(states):
        for key, flat in zip(keys, flats):
            state[key] = flat.views[i]
    return FusedUpdate(arenas, keys, flats, states, fresh)


def run(optimizer: Optimizer, fused: FusedUpdate) -> None:
    """One fused update of every parameter (step counts advanced as the reference rule does)."""
    backend = fused.arenas.data.backend
    states = optimizer.state
    step = states[0].get("step", 0) + 1
    scalars = None
    with backend.activate():
        if backend.cuda is not None:  # GPU kernels read step-dependent scalars from device memory
            scalars = _device_scalars(optimizer, backend)
            if not backend.capturing():  # a graph replay writes them itself (`replay_scalars`)
                backend.cuda.write_scalars(scalars, optimizer.step_scalars(step))
        optimizer.fused_update(
            backend.ops,
            fused.arenas.data.flat,
            fused.arenas.grad.flat,
            fused.state_flats,
            fresh=fused.fresh,
            step=step,
            scalars=scalars,
        )
    fused.fresh = False
    if optimizer.counts_steps:
        for state in states:
            state["step"] = step


def replay_scalars(optimizer: Optimizer) -> tuple[Array, tuple[float, ...]]:
    """For a captured step about to be replayed: the device array its kernels read the
    step-dependent scalars from, and the coming step's `step_scalars` to write there."""
    backend = optimizer.params[0].backend
    return _device_scalars(optimizer, backend), optimizer.step_scalars(optimizer.state[0].get("step", 0) + 1)


def after_replay(optimizer: Optimizer) -> None:
    """After a captured step was replayed: the host-side bookkeeping its Python did once, at
    capture (step counts), done again."""
    if optimizer.counts_steps:
        for state in optimizer.state:
            state["step"] = state.get("step", 0) + 1


def move_state(state: dict[str, Any], backend: Backend) -> None:
    """Bring every array in ``state`` to ``backend`` (after ``model.to`` or loading)."""
    for key, value in state.items():
        if key != "backend" and not isinstance(value, (int, float)):
            state[key] = backend.from_host(np.array(to_numpy(value)))
    state["backend"] = backend


def _device_scalars(optimizer: Optimizer, backend: Backend) -> Array:
    """A float64 array of three on the device for `step_scalars`, made once per backend."""
    held = optimizer.__dict__.get("_scalars")
    if held is None or held[0] is not backend:
        held = optimizer.__dict__["_scalars"] = (backend, backend.zeros((3,), dtype=backend.xp.float64))
    return held[1]


def _flat_state(optimizer: Optimizer, arenas: ParameterArenas, key: str, fresh: bool) -> Arena:
    """The flat buffer of state ``key``, holding every parameter's current value (zeros when
    ``fresh``); made once per parameter arena."""
    cache = flat_states(optimizer)
    arena = cache.get(key)
    if arena is None or arena.backend is not arenas.data.backend or arena.shapes != arenas.data.shapes:
        arena = cache[key] = Arena(arenas.data.backend, arenas.data.shapes)
    if fresh:
        arena.flat[...] = 0
    else:
        arena.gather([s[key] for s in optimizer.state])
    return arena


def flat_states(optimizer: Optimizer) -> dict[str, Arena]:
    """The optimizer's flat state buffers by state key (empty before a fused update)."""
    cache: dict[str, Arena] = optimizer.__dict__.setdefault("_flat_cache", {})
    return cache
