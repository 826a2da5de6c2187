"""What each rank runs in `test_distributed_fit.py`, under
``mpiexec -n N python tests/distributed_fit.py OUTDIR MODE``.

``cases``: every case of `CASES` trained by ``model.fit(..., distributed=world)``; rank 0
writes the final weights and the history to OUTDIR for the test to compare with one process's
``fit``. Then the checkpoint case: on 2 ranks, epochs 1-2 saved with ``checkpoint=``; on any
other number of ranks, that checkpoint loaded and epochs 3-4 trained from it.
``fail``: the last rank raises from a callback in its second epoch while the others go on into
the next all-reduce; the job must end, on every rank, within seconds.

The cases and their single-process twins are built by the same functions (`build`, `data`,
`options`), so that only ``distributed=`` differs.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

import backprop as bp
from backprop import distributed
from backprop.training import reduction

CASES: dict[str, dict[str, Any]] = {
    # 23 rows in batches of 6 (6, 6, 6, 5): uneven shares at 2 ranks (3/3, then 3/2) and at 3
    # (2/2/2, then 2/2/1); validation sliced over the ranks, early stopping, a schedule,
    # clipping and gradient-norm records after the reduction, metrics (sums and confusion counts)
    "sgd": {
        "model": "plain", "optimizer": "sgd", "loss": "cross_entropy", "rows": 23, "batch": 6, "epochs": 4,
        "validation": 7, "early_stopping": 1, "scheduler": True, "clip": 0.5, "grad_norms": True,
        "metrics": ["accuracy", "top_2_accuracy", "f1"],
    },
    # synchronised BatchNorm (after a Dense without bias: a bias there has a gradient of 0 plus
    # rounding, which Adam would scale up to steps of lr), host dropout masks, an l2 penalty;
    # 22 rows in batches of 5: the last batch of 2 leaves rank 2 of 3 without rows (it still
    # joins BatchNorm's reductions)
    "adam_bn_dropout": {
        "model": "bn_dropout", "optimizer": "adam", "loss": "cross_entropy", "rows": 22, "batch": 5, "epochs": 3,
        "metrics": ["accuracy", "precision"],
    },
    # MSE (a mean over every element), AdamW, an l2 penalty, data streamed from .npy files a
    # shard at a time; 21 rows in batches of 4: the last batch of 1 leaves every rank but rank 0
    # without rows
    "adamw_npy": {
        "model": "plain", "optimizer": "adamw", "loss": "mse", "rows": 21, "batch": 4, "epochs": 3, "npy": True,
        "metrics": ["mae", "r2"],
    },
    # the reduction overlapped with backward, as on NCCL (forced here onto host MPI, whose
    # non-blocking all-reduce it then uses), in 64-byte buckets, through a Residual block whose
    # inner stages report before the outer one does
    "overlap": {
        "model": "residual", "optimizer": "adam", "loss": "cross_entropy", "rows": 23, "batch": 6, "epochs": 2,
        "overlap": True,
    },
}  # fmt: skip

#: the checkpoint case: 4 epochs in all, saved after 2 on 2 ranks and resumed elsewhere
RESUME: dict[str, Any] = {
    "model": "dropout", "optimizer": "adam", "loss": "cross_entropy", "rows": 23, "batch": 6, "epochs": 4,
    "metrics": ["accuracy"],
}  # fmt: skip
SAVED_AFTER = 2


def data(case: dict[str, Any], rows: int | None = None, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = case["rows"] if rows is None else rows
    X = rng.normal(size=(n, 5))
    y = rng.integers(0, 3, size=n) if case["loss"] == "cross_entropy" else rng.normal(size=(n, 3))
    return X, y


def build(case: dict[str, Any]) -> tuple[bp.Sequential, bp.optim.Optimizer]:
    layers = {
        "plain": lambda: [bp.Dense(5, 8, l2=0.01), bp.Tanh(), bp.Dense(8, 6), bp.ReLU(), bp.Dense(6, 3)],
        "bn_dropout": lambda: [
            bp.Dense(5, 8, l2=0.01, bias=False), bp.BatchNorm(8), bp.ReLU(), bp.Dropout(0.3), bp.Dense(8, 3),
        ],
        "dropout": lambda: [bp.Dense(5, 8), bp.ReLU(), bp.Dropout(0.2), bp.Dense(8, 3)],
        "residual": lambda: [bp.Dense(5, 8), bp.ReLU(), bp.Residual(bp.Dense(8, 8), bp.Tanh()), bp.Dense(8, 3)],
    }[case["model"]]()
    model = bp.Sequential(*layers, dtype="float64", seed=3)
    params = model.parameters()
    optimizer = {
        "sgd": lambda: bp.optim.SGD(params, lr=0.1, momentum=0.9),
        "adam": lambda: bp.optim.Adam(params, lr=0.01),
        "adamw": lambda: bp.optim.AdamW(params, lr=0.01, weight_decay=0.1),
    }[case["optimizer"]]()
    return model, optimizer


def options(case: dict[str, Any], optimizer: bp.optim.Optimizer) -> dict[str, Any]:
    """``fit``'s keyword options for ``case`` (loss and optimizer included)."""
    kwargs: dict[str, Any] = {
        "loss": case["loss"], "optimizer": optimizer, "epochs": case["epochs"], "batch_size": case["batch"],
        "metrics": case.get("metrics", ()), "verbose": 0,
    }  # fmt: skip
    if case.get("validation"):
        kwargs["validation_data"] = data(case, rows=case["validation"], seed=11)
    if case.get("early_stopping"):
        kwargs["early_stopping"] = case["early_stopping"]
    if case.get("scheduler"):
        kwargs["scheduler"] = bp.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    if case.get("clip"):
        kwargs["clip_grad_norm"] = case["clip"]
    if case.get("grad_norms"):
        kwargs["record_grad_norms"] = True
    return kwargs


def history_dict(history: bp.History) -> dict[str, Any]:
    return history.to_dict()


def _same_everywhere(world: distributed.World, model: bp.Sequential) -> bool:
    mine = b"".join(np.ascontiguousarray(v).tobytes() for v in model.state_dict().values())
    everyone = world.communicator().allgather_object(mine)
    return all(b == everyone[0] for b in everyone)


def run_cases(world: distributed.World, outdir: str) -> None:
    report: dict[str, Any] = {"world": [world.rank, world.size, world.local_rank, world.local_size]}
    for name, case in CASES.items():
        model, optimizer = build(case)
        kwargs = options(case, optimizer)
        X, y = data(case)
        if case.get("npy"):
            X, y = os.path.join(outdir, f"{name}-X.npy"), os.path.join(outdir, f"{name}-y.npy")  # written by the test
        if case.get("overlap"):
            history, buckets = _overlapped(model, X, y, world, kwargs)
        else:
            history, buckets = model.fit(X, y, distributed=world, **kwargs), 0
        report[name] = {"history": history_dict(history), "identical_on_all_ranks": _same_everywhere(world, model),
                        "gradients marked ready in backward": buckets}  # fmt: skip
        if world.is_root:
            np.savez(os.path.join(outdir, f"{name}-{world.size}.npz"), **model.state_dict())
    report["resume"] = run_resume(world, outdir)
    if world.is_root:
        with open(os.path.join(outdir, f"report-{world.size}.json"), "w") as f:
            json.dump(report, f)


def _overlapped(model: bp.Sequential, X: Any, y: Any, world: distributed.World, kwargs: dict[str, Any]) -> Any:
    """``fit`` with the reduction overlapped with backward on host MPI; returns the history and
    how many parameters backward's stage reports marked ready."""
    saved = reduction.OVERLAP_TRANSPORTS, reduction.BUCKET_BYTES, reduction.GradientReduction.ready
    marked = [0]

    def ready(self: reduction.GradientReduction, layers: Any) -> None:
        before = sum(self._marked)
        saved[2](self, layers)
        marked[0] += sum(self._marked) - before

    reduction.OVERLAP_TRANSPORTS, reduction.BUCKET_BYTES = ("MpiHost",), 64
    reduction.GradientReduction.ready = ready  # type: ignore[method-assign]
    try:
        return model.fit(X, y, distributed=world, **kwargs), marked[0]
    finally:
        reduction.OVERLAP_TRANSPORTS, reduction.BUCKET_BYTES, reduction.GradientReduction.ready = saved


def run_resume(world: distributed.World, outdir: str) -> dict[str, Any]:
    """2 ranks: epochs 1-2, saved. Other sizes: that checkpoint, continued to epoch 4."""
    saved = os.path.join(outdir, "resume-2ranks.npz")
    X, y = data(RESUME)
    if world.size == 2:
        model, optimizer = build(RESUME)
        kwargs = options(RESUME, optimizer)
        kwargs["epochs"] = SAVED_AFTER
        history = model.fit(X, y, distributed=world, checkpoint=saved, **kwargs)
        assert os.path.exists(saved), "the barrier let a rank go on before the checkpoint was written"
    else:
        checkpoint = bp.load_checkpoint(saved)
        model, optimizer = checkpoint.model, checkpoint.optimizer
        assert optimizer is not None
        kwargs = options(RESUME, optimizer)
        kwargs["epochs"] = RESUME["epochs"] - checkpoint.epoch
        history = model.fit(X, y, distributed=world, initial_epoch=checkpoint.epoch, history=checkpoint.history,
                            checkpoint=os.path.join(outdir, f"resumed-{world.size}ranks.npz"), **kwargs)  # fmt: skip
    if world.is_root:
        np.savez(os.path.join(outdir, f"resume-{world.size}.npz"), **model.state_dict())
    return {"history": history_dict(history), "identical_on_all_ranks": _same_everywhere(world, model)}


class FailOnLastRank(bp.callbacks.Callback):
    """Raises on the last rank in epoch 2, batch 1: the others are in the next all-reduce."""

    def __init__(self, world: distributed.World):
        self.world = world
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self.epoch = epoch

    def on_batch_begin(self, batch: int, logs: Any) -> None:
        if self.epoch == 2 and batch == 1 and self.world.rank == self.world.size - 1:
            raise ValueError(f"rank {self.world.rank} fails on purpose inside fit")


def run_fail(world: distributed.World) -> None:
    case = CASES["sgd"]
    model, optimizer = build(case)
    X, y = data(case)
    model.fit(X, y, loss=case["loss"], optimizer=optimizer, epochs=3, batch_size=case["batch"], verbose=0,
              callbacks=[FailOnLastRank(world)], distributed=world)  # fmt: skip


def main() -> None:
    outdir, mode = sys.argv[1], sys.argv[2]
    world = distributed.init()
    if mode == "fail":
        run_fail(world)
    else:
        run_cases(world, outdir)


if __name__ == "__main__":
    main()
