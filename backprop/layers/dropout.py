"""`Dropout`: inverted dropout, ``Y = X * M / (1 - p)`` while training, the identity otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import Array, Backend
from ..registry import LAYERS
from ..validation import choice, real
from .base import Backward, BuildContext, Layer

__all__ = ["Dropout"]

_MASKS = ("host", "device")


@LAYERS.register
class Dropout(Layer):
    """Inverted dropout.

    Training:  ``Y = X * M / (1 - p)``  with ``M = 1[U < 1 - p]``, ``U ~ U[0, 1)`` drawn fresh
    for every call (so each entry is kept with probability ``1 - p`` and ``E[Y] = X``);
    ``dX = dY * M / (1 - p)`` with the same mask.
    Inference: the identity, ``Y = X`` and ``dX = dY``. ``p = 0`` is an exact identity too.
    Shapes: X, Y, dY, dX are all ``(N, features)``.

    ``masks`` chooses where the uniforms come from:

    - ``"host"`` (default): the model's host generator (``model.noise_rng``, seeded by the
      model's ``seed``), drawn on the CPU and copied to the device. The masks are the same bit
      for bit on every device, and `bp.gradcheck` holds them fixed. Costs one host draw and one
      transfer of an ``(N, features)`` array per call.
    - ``"device"``: a generator on the model's device (`Backend.device_generator`, seeded from
      the model's host generator when the model is built). On CuPy the uniforms are drawn on the
      GPU: faster, no transfer, but different numbers than the host draws, and `bp.gradcheck`
      cannot hold them fixed (check gradients in eval mode or with host masks). Elsewhere it is a
      NumPy generator. After ``model.to(...)`` a new generator is made on the new device.

    In data-parallel training (`fit(distributed=world)`) host masks stay those of one process:
    every process draws the mask of the whole global batch, ``(B, features)``, from the same
    generator state and keeps its own rows of it. Device masks are independent: each process
    draws from a stream of its own (its rank is mixed into the generator's seed).
    """

    # the data-parallel rank the device generator was made for; until set (and in a Dropout
    # pickled by an earlier version), none
    _device_rng_rank: int | None = None

    def __init__(self, p: float = 0.5, masks: str = "host"):
        super().__init__()
        # p: the probability of dropping an entry
        self.p = real(p, "p", low=0.0, high=1.0, high_open=True, owner="Dropout")
        self.masks = choice(masks, "masks", _MASKS, owner="Dropout")
        self._rng: np.random.Generator | None = None
        self._seeds: np.random.SeedSequence | None = None
        self._device_rng: Any = None
        self._device_rng_backend: Backend | None = None

    def build(self, in_features: int | None, ctx: BuildContext) -> int | None:
        super().build(in_features, ctx)
        self._rng = ctx.noise_rng
        self._device_rng = None
        self._device_rng_backend = None
        if self.masks == "device":
            # One draw from the model's noise stream seeds every device generator this layer
            # will ever make (one per device it is moved to), so a seed fixes them all.
            self._seeds = np.random.SeedSequence(int(ctx.noise_rng.integers(2**63)))
            self._generator(ctx.backend)
        return in_features

    def apply(self, X: Array, training: bool) -> tuple[Array, Backward]:
        backend = self._require_built()
        if not training or self.p == 0.0:

            def identity(dY: Array, need_dX: bool = True) -> Array | None:
                return dY if need_dX else None

            return X, identity

        shard = self.shard
        if self.masks == "host" and shard is not None and shard.size > 1 and X.shape[0] == shard.count:
            # the global batch's mask, drawn as one process draws it; this process's rows of it
            rows = self._generator(backend).random((shard.batch_rows, *X.shape[1:]))
            U = backend.from_host(rows[shard.start : shard.stop])
        else:
            U = backend.uniform(self._generator(backend), tuple(X.shape))
        Y, scale = backend.ops.dropout(X, U, 1.0 - self.p)

        def backward(dY: Array, need_dX: bool = True) -> Array | None:
            return dY * scale if need_dX else None

        return Y, backward

    def randomness(self) -> str | None:
        return self.masks if self.p > 0 else None

    def _generator(self, backend: Backend) -> Any:
        """The generator masks are drawn from: the model's host generator, or this layer's
        device generator, (re)made for ``backend`` when the model moved since it was made."""
        if self.masks == "host":
            if self._rng is None:
                raise RuntimeError(
                    f"{self!r} is not part of a model yet: put it in bp.Sequential(...) before calling it"
                )
            return self._rng
        rank = self.shard.rank if self.shard is not None and self.shard.size > 1 else None
        if self._device_rng is None or self._device_rng_backend is not backend or self._device_rng_rank != rank:
            assert self._seeds is not None
            child = self._seeds.spawn(1)[0]  # a fresh stream per generator: no mask repeats after a move
            if rank is not None:  # data-parallel: every process its own stream
                child = np.random.SeedSequence(child.entropy, spawn_key=(*child.spawn_key, rank))
            self._device_rng = backend.device_generator(int(child.generate_state(1, np.uint64)[0]))
            self._device_rng_backend, self._device_rng_rank = backend, rank
        return self._device_rng

    def stream_state(self) -> dict[str, int] | None:
        """For a checkpoint: how many device streams this layer has started, when its generator
        lives on a GPU (its state cannot be saved); ``None`` otherwise (host masks, or a host
        generator, whose exact state is saved with the model's others)."""
        if self._seeds is None or self._device_rng is None or isinstance(self._device_rng, np.random.Generator):
            return None
        return {"spawned": int(self._seeds.n_children_spawned)}

    def restore_stream_state(self, state: dict[str, int]) -> None:
        """After loading a checkpoint: the next device generator starts a stream this layer has
        never used, so a resumed run does not repeat the masks drawn before it was saved."""
        seeds = self._seeds
        if seeds is None:
            raise ValueError(f"{self!r} keeps no device streams; the checkpoint's stream state is for another layer")
        self._seeds = np.random.SeedSequence(
            seeds.entropy,
            spawn_key=seeds.spawn_key,
            pool_size=seeds.pool_size,
            n_children_spawned=max(int(state["spawned"]), seeds.n_children_spawned),
        )
        self._device_rng = None
        self._device_rng_backend = None

    def __getstate__(self) -> dict[str, Any]:
        # A CuPy generator cannot be copied (bp.gradcheck deep-copies the model): drop it and
        # let `_generator` make a new one. NumPy generators copy with their state.
        state = self.__dict__.copy()
        if not isinstance(state.get("_device_rng"), np.random.Generator):
            state["_device_rng"] = None
            state["_device_rng_backend"] = None
        state["shard"] = None  # a copy takes part in no data-parallel training
        return state

    def __repr__(self) -> str:
        extra = "" if self.masks == "host" else f", masks={self.masks!r}"
        return f"Dropout({self.p}{extra})"

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"p": self.p}
        if self.masks != "host":
            cfg["masks"] = self.masks
        return cfg
