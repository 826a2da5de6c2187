"""A model, on paper, of data-parallel scaling efficiency at 2-64 GPUs: no measurement.

    python benchmarks/scaling_model.py          # the markdown tables in the README

**Inputs.** Step times measured by this project on one H200 (float32, the whole step replayed
from a CUDA graph; ../shared/GUIDE.md section 5), and the models' float32 gradient sizes:

- 784-256-256-10 at batch 128: 0.089 ms per step, 269,322 parameters (1.08 MB);
- 4096-4096-4096-4096-1000 at batch 2048: 12.4 ms per step, 54,440,936 parameters (218 MB).

Link bandwidths as NVIDIA publishes them: NVLink 4 on H100/H200, 900 GB/s per GPU in both
directions together (18 links; NVIDIA's MLPerf system description of an 8x H200-SXM server,
mlcommons/inference_results_v4.1 ``closed/NVIDIA/systems/H200-SXM-141GBx8_TRT_MaxQ.json``),
so 450 GB/s each way; between machines one 400 Gb/s (NDR) InfiniBand ConnectX-7 port per GPU
(NVIDIA's transceiver documentation for 400 Gb/s ConnectX-7 and Quantum-2; the same
submission lists 10x 400 Gb/s InfiniBand cards for 8 GPUs), 50 GB/s each way.

**Formula.** A ring all-reduce of S bytes over N GPUs sends ``2 (N-1)/N S`` bytes through each
GPU's slowest link (NCCL's "bus bandwidth" convention, nvidia/nccl-tests ``doc/PERFORMANCE.md``)::

    T_ar(N) = 2 (N-1)/N * S / (eta * B_link) + alpha

with ``B_link`` = 450 GB/s up to 8 GPUs (one machine, NVLink) and 50 GB/s beyond (the ring
crosses machines through each GPU's own NIC), ``eta`` the share of the link a real all-reduce
achieves, and ``alpha`` a fixed latency.

- weak scaling (batch per GPU fixed, compute ``T_c`` fixed): ``E = T_c / (T_c + T_ar)``
  without overlap; overlapped with backward as `fit` does on NCCL (buckets of 2 MiB from the
  last layer back, `backprop.training.reduction`): the last bucket, which holds the first
  layer's gradient, is written last and cannot overlap anything, and the rest can hide behind
  at most the backward pass (about 2/3 of a step's matrix products):
  ``exposed = max(T_ar(last bucket), T_ar(S) - 2/3 T_c)``, ``E = T_c / (T_c + exposed)``;
- strong scaling (global batch fixed): compute ``T_c(N) = max(T_floor, T_c / N)`` (linear in
  the rows per GPU, down to the launch-bound floor ``T_floor`` = 0.089 ms, the small model's
  whole step), ``E = T_c / (N (T_c(N) + T_ar))``.

**Assumptions, not measurements:** ``alpha`` = 10 us within a machine and 20 us across machines
(assumed orders of magnitude for a small NCCL all-reduce; not taken from a cited source);
``eta`` = 1 (the bound) and 0.5 (half the link); compute exactly linear in the batch (optimistic
for small per-GPU batches); no contention, no stragglers, no data loading.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backprop.distributed import BucketPlan
from backprop.training.reduction import BUCKET_BYTES

__all__ = ["MODELS", "allreduce_seconds", "efficiencies", "main"]

NVLINK = 450e9  # bytes/s each way per GPU (900 GB/s both directions)
INFINIBAND = 50e9  # bytes/s each way per GPU (400 Gb/s NDR)
GPUS_PER_MACHINE = 8
ALPHA_INSIDE, ALPHA_ACROSS = 10e-6, 20e-6  # assumed
FLOOR = 0.089e-3  # seconds: the launch-bound whole step of the small model
BACKWARD_SHARE = 2 / 3
#: name -> (layer widths, seconds per step at its batch on one H200, batch)
MODELS = {
    "784-256-256-10": ((784, 256, 256, 10), 0.089e-3, 128),
    "4096x3-1000": ((4096, 4096, 4096, 4096, 1000), 12.4e-3, 2048),
}
SIZES = (2, 4, 8, 16, 32, 64)


def allreduce_seconds(n: int, nbytes: float, eta: float) -> float:
    """Ring all-reduce time of ``nbytes`` over ``n`` GPUs (see the module docstring)."""
    inside = n <= GPUS_PER_MACHINE
    link = (NVLINK if inside else INFINIBAND) * eta
    return 2 * (n - 1) / n * nbytes / link + (ALPHA_INSIDE if inside else ALPHA_ACROSS)


def gradient_bytes(widths: tuple[int, ...]) -> tuple[int, int]:
    """(all float32 gradients, the last bucket's: the one holding the first layer's weight)."""
    sizes = [s for a, b in itertools.pairwise(widths) for s in (a * b, b)]  # W then b, layer by layer
    plan = BucketPlan.reverse_layer_order(sizes, 4, BUCKET_BYTES)
    return 4 * plan.total, 4 * plan.buckets[-1].size


def efficiencies(step: float, widths: tuple[int, ...], n: int, eta: float) -> dict[str, float]:
    """Weak (without and with overlap) and strong scaling efficiency at ``n`` GPUs."""
    nbytes, last = gradient_bytes(widths)
    comm = allreduce_seconds(n, nbytes, eta)
    weak = step / (step + comm)
    exposed = max(allreduce_seconds(n, last, eta), comm - BACKWARD_SHARE * step)
    weak_overlap = step / (step + exposed)
    compute = max(FLOOR, step / n)
    strong = step / (n * (compute + comm))
    return {"allreduce ms": comm * 1e3, "weak": weak, "weak, overlapped": weak_overlap, "strong": strong}


def main() -> None:
    for eta in (1.0, 0.5):
        print(f"\nachieved share of link bandwidth eta = {eta:g}\n")
        print("| model | GPUs | all-reduce ms | weak | weak, overlapped | strong |")
        print("|---|---|---|---|---|---|")
        for name, (widths, step, _) in MODELS.items():
            for n in SIZES:
                e = efficiencies(step, widths, n, eta)
                print(f"| {name} | {n} | {e['allreduce ms']:.3f} | {e['weak']:.0%} | {e['weak, overlapped']:.0%} | "
                      f"{e['strong']:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
