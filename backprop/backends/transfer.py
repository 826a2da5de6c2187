"""Host rows to the device ahead of use: `Uploader`.

Data streamed from host memory or disk (a memory-mapped file, read a batch at a time) must
reach the device without stalling the step that uses it. On CUDA an `Uploader` copies each
batch into one of a few page-locked (pinned) host buffers, then to the device on a copy
stream of its own: the host call returns at once and the copy runs while the step before it
computes. The compute stream is made to wait for the copy (on the GPU, through an event) only
when the batch is about to be used (`Upload.ready`). Elsewhere an upload is
`Backend.from_host` and `ready` returns the array.

Ordering, for batch ``k + 1`` uploaded while step ``k`` is about to be queued:

- the device array is allocated from the compute stream's memory pool, whose free blocks may
  still be read by steps queued earlier: the copy stream first waits for an event recorded on
  the compute stream (everything queued so far: steps up to ``k - 1``), so the copy overlaps
  step ``k`` but never a step that might still read the block's previous tenant;
- a pinned buffer is refilled only once the copy that read it has finished (its event), and
  there are `SLOTS` of them, so the host rarely waits;
- `Upload.ready` makes the compute stream wait for the copy's event, just before the step
  that uses the batch is queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .backend import Array, Backend

__all__ = ["SLOTS", "Upload", "Uploader"]

#: pinned host buffers per uploader: one being copied, one waiting, one being filled
SLOTS = 3


class Upload:
    """A batch on its way to the device: `ready` gives the array once the compute stream
    will see it complete."""

    __slots__ = ("array", "event")

    def __init__(self, array: Array, event: Any = None):
        self.array, self.event = array, event

    def ready(self, cupy: Any = None) -> Array:
        """The array, with the current stream made to wait for its copy (no host wait)."""
        if self.event is not None:
            cupy.cuda.get_current_stream().wait_event(self.event)
            self.event = None
        return self.array


class Uploader:
    """Copies host arrays to ``backend``'s device ahead of use (see the module docstring);
    ``cupy`` is the module to use on CUDA (the tests pass a fake)."""

    def __init__(self, backend: Backend, slots: int = SLOTS, cupy: Any = None):
        self.backend = backend
        self.cupy: Any = cupy if cupy is not None else (backend._cupy if backend.device.type == "cuda" else None)
        self.index = backend.device.index or 0
        self._stream: Any = None  # the copy stream, made on first use (on this device)
        self._pinned: list[np.ndarray | None] = [None] * slots
        self._copied: list[Any] = [None] * slots  # the event of the copy that last read each buffer
        self._next = 0

    def __call__(self, host: np.ndarray, dtype: Any = None) -> Upload:
        """Start copying ``host`` to the device as ``dtype`` (default: the model dtype)."""
        if self.cupy is None:
            return Upload(self.backend.from_host(host, dtype))
        dtype = self.backend.dtype if dtype is None else dtype
        host = np.ascontiguousarray(host, dtype=np.dtype(dtype))
        cupy: Any = self.cupy
        cuda = cupy.cuda
        with cuda.Device(self.index):
            if self._stream is None:
                self._stream = cuda.Stream(non_blocking=True)
            slot, staged = self._stage(host)
            compute = cuda.get_current_stream()
            out = cupy.empty(host.shape, dtype=host.dtype)  # from the compute stream's pool
            queued = cuda.Event(disable_timing=True)
            queued.record(compute)
            self._stream.wait_event(queued)  # the block's previous tenant is done with it
            out.set(staged, stream=self._stream)
            copied = cuda.Event(disable_timing=True)
            copied.record(self._stream)
            self._copied[slot] = copied
        return Upload(out, copied)

    def _stage(self, host: np.ndarray) -> tuple[int, np.ndarray]:
        """``host`` copied into the next pinned buffer (grown when too small), waiting first for
        the copy that last read that buffer; returns the buffer's slot and the copy."""
        slot = self._next
        self._next = (slot + 1) % len(self._pinned)
        copied = self._copied[slot]
        if copied is not None:
            copied.synchronize()
            self._copied[slot] = None
        buffer = self._pinned[slot]
        if buffer is None or buffer.nbytes < host.nbytes:
            size = max(host.nbytes, 1)
            memory = self.cupy.cuda.alloc_pinned_memory(size)
            buffer = self._pinned[slot] = np.ndarray((size,), dtype=np.uint8, buffer=memory)  # as cupyx.empty_pinned
        staged = buffer[: host.nbytes].view(host.dtype).reshape(host.shape)
        np.copyto(staged, host)
        return slot, staged

    def ready(self, upload: Upload) -> Array:
        """``upload.ready()`` on this uploader's device."""
        if upload.event is None:
            return upload.array
        with self.cupy.cuda.Device(self.index):
            return upload.ready(self.cupy)
