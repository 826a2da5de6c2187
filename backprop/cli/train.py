"""``backprop train``: train a model on a data set and report its held-out loss and accuracy.

Under a launcher (``mpiexec -n 4 backprop train ...``, ``srun``) every process runs this command
and they train data-parallel, with no option of their own: ``--batch-size`` is the global
batch, each rank takes the GPU of its local rank for ``--device cuda``, and only rank 0 prints,
plots and writes the checkpoint. An error that one rank reports ends the whole job.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from typing import Any

import numpy as np

from ..callbacks import Callback, CSVLogger, EarlyStopping, TensorBoard
from ..callbacks.tensorboard import INSTALL_HINT as TENSORBOARD_HINT
from ..checkpoint.save import checkpoint_path
from ..distributed import World, init
from ..progress import format_duration
from ..training import TrainingDivergedError
from .checkpoints import run_extra
from .devices import resolve_device
from .errors import CliError, Interrupted, UsageError
from .report import describe_model, result_line, say
from .settings import resolve_settings
from .train_options import EPILOG, add_train_options
from .train_setup import TrainingJob, open_resumed, set_up

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model and report its held-out test loss and accuracy",
        description="Train a network on a data set (features standardised with training statistics only),\n"
        "then print the held-out test loss, the accuracy for classification, and the time taken.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say; returns the exit status."""
    world = init()  # a world of one, unless a launcher started several of us
    try:
        return _run(args, world)
    except CliError as exc:
        if world.size == 1:
            raise
        print(f"backprop train: error (rank {world.rank} of {world.size}): {' '.join(str(exc).split())}",
              file=sys.stderr)  # fmt: skip
        world.abort(exc.exit_code)  # the other ranks may be waiting for this one
        raise


def _run(args: argparse.Namespace, world: World) -> int:
    args.quiet = args.quiet or not world.is_root  # only rank 0 prints
    device = resolve_device(args.device, world)
    _check_outputs(args)
    resumed = open_resumed(args, device) if args.resume else None
    settings = resolve_settings(args, resumed[1].args if resumed else None)
    job = set_up(settings, device, resumed)
    checkpoint = args.checkpoint or args.resume
    if not args.quiet:
        _print_header(job, checkpoint, args.resume, world)
    started = time.perf_counter()
    stopper = None if args.early_stopping is None else _stopper(args.early_stopping, job)
    scaler = None if job.data.raw else job.data.scaler  # raw: the model's first layer standardises
    extra = run_extra(job.data.dataset, scaler, job.loss, settings.data, job.settings.run_args())
    remaining = settings.epochs - job.initial_epoch
    before = len(job.history)
    if remaining > 0:
        _fit(job, remaining, stopper, checkpoint, extra, verbose=0 if args.quiet else 1, world=world,
             loggers=_loggers(args))  # fmt: skip
        if stopper is not None and stopper.best_epoch not in (None, job.history.epochs[-1]):
            _kept_best(job, stopper, checkpoint, extra, args.quiet, world)
    elif not args.quiet:
        print(f"nothing to train: the run is at epoch {job.initial_epoch} of {settings.epochs}; "
              "pass a larger --epochs to continue")
    seconds = time.perf_counter() - started
    if world.is_root:
        _report(job, len(job.history) - before, seconds, args, checkpoint, world)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before training, not after, when an output cannot be written."""
    for option, path in (("--checkpoint", args.checkpoint), ("--plot", args.plot), ("--csv-log", args.csv_log)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if option in ("--checkpoint", "--csv-log") and not os.path.isdir(folder):
            raise CliError(f"{option} {path}: the folder {folder!r} does not exist; create it first")
        if os.path.isdir(path):
            raise CliError(f"{option} {path}: that is a folder; give a file name")
    if args.csv_log is not None and os.path.realpath(args.csv_log) in {
        os.path.realpath(p) for p in (args.checkpoint, args.resume, args.plot) if p is not None
    }:
        raise UsageError(f"--csv-log {args.csv_log} is also another output or the checkpoint; give another name")
    if args.tensorboard is not None:
        if os.path.exists(args.tensorboard) and not os.path.isdir(args.tensorboard):
            raise CliError(f"--tensorboard {args.tensorboard}: that is a file; give a folder (made if missing)")
        if importlib.util.find_spec("tensorboardX") is None:
            raise CliError(f"--tensorboard needs tensorboardX: {TENSORBOARD_HINT.split(': ', 1)[1]}")
    if args.plot is not None and args.plot != "-" and os.path.realpath(args.plot) in {
        os.path.realpath(p) for p in (args.checkpoint, args.resume) if p is not None
    }:
        raise UsageError(f"--plot {args.plot} is the checkpoint file, which it would overwrite; give another name")
    saved_to = args.checkpoint or args.resume
    if saved_to is not None:
        try:
            checkpoint_path(saved_to)
        except ValueError as exc:
            option = "--checkpoint" if args.checkpoint else "--resume (which is also where the run is saved)"
            hint = "" if args.checkpoint else "; pass --checkpoint NAME.npz to save elsewhere"
            raise UsageError(f"{option} {saved_to} {str(exc).split(' ', 2)[2]}{hint}") from None
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise CliError('--plot needs matplotlib: pip install "backprop-nn[plot]" (or pip install matplotlib)')


def _stopper(patience: int, job: TrainingJob) -> EarlyStopping:
    monitor = "val_loss" if job.data.validation is not None else "loss"
    return EarlyStopping(monitor=monitor, patience=patience)


def _loggers(args: argparse.Namespace) -> list[Callback]:
    """The callbacks of ``--csv-log`` (continuing its file when resuming) and ``--tensorboard``."""
    loggers: list[Callback] = []
    if args.csv_log is not None:
        loggers.append(CSVLogger(args.csv_log, append=args.resume is not None))
    if args.tensorboard is not None:
        loggers.append(TensorBoard(args.tensorboard))
    return loggers


def _fit(job: TrainingJob, epochs: int, stopper: EarlyStopping | None, checkpoint: str | None, extra: dict[str, Any],
         verbose: int, world: World, loggers: list[Callback]) -> None:
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is reported below
            job.model.fit(
                job.data.X_train, job.data.y_train, loss=job.loss, optimizer=job.optimizer, epochs=epochs,
                batch_size=job.settings.batch_size, clip_grad_norm=job.settings.clip_grad_norm,
                validation_data=job.data.validation, metrics=job.metrics, early_stopping=stopper,
                scheduler=job.schedule, checkpoint=checkpoint, checkpoint_extra=extra,
                initial_epoch=job.initial_epoch, history=job.history, verbose=verbose,
                distributed=world if world.size > 1 else None, callbacks=loggers,
            )
    except TrainingDivergedError as exc:
        raise CliError(str(exc).replace("clip_grad_norm=1.0", "--clip-grad-norm 1.0")) from None
    except OSError as exc:
        raise CliError(f"{_failed_output(exc, checkpoint, loggers)}: cannot save: {exc}") from None
    except ValueError as exc:
        csv_log = next((cb.path for cb in loggers if isinstance(cb, CSVLogger)), None)
        if csv_log is None or not str(exc).startswith("CSVLogger"):
            raise
        reason = str(exc).split(": ", 1)[1].replace(" or pass append=False", "")  # the CLI appends when resuming
        raise CliError(f"--csv-log {csv_log}: {reason}") from None
    except KeyboardInterrupt:
        done = job.history.epochs[-1] if job.history.epochs else job.initial_epoch
        saved = ""
        if checkpoint and done > job.initial_epoch:
            saved = f"; epoch {done} is saved in {checkpoint}: continue with backprop train --resume {checkpoint}"
        raise Interrupted(f"interrupted during epoch {done + 1}{saved}") from None


def _failed_output(exc: OSError, checkpoint: str | None, loggers: list[Callback]) -> str:
    """The option whose file could not be written (the checkpoint unless a logger's file is named)."""
    name = os.path.realpath(exc.filename) if isinstance(exc.filename, str) else None
    for cb in loggers:
        if isinstance(cb, CSVLogger) and name == os.path.realpath(cb.path):
            return f"--csv-log {cb.path}"
        if isinstance(cb, TensorBoard) and name is not None and name.startswith(os.path.realpath(cb.log_dir) + os.sep):
            return f"--tensorboard {cb.log_dir}"
    return f"--checkpoint {checkpoint}"


def _kept_best(
    job: TrainingJob, stopper: EarlyStopping, checkpoint: str | None, extra: dict[str, Any], quiet: bool, world: World
) -> None:
    """Early stopping put the best epoch's weights back: save them, so the checkpoint holds the
    model that is reported (resuming from it continues with these weights)."""
    if not quiet:
        print(f"early stopping: kept the weights of epoch {stopper.best_epoch} "
              f"({stopper.monitor} {stopper.best_value:.4g})")
    if checkpoint:
        if world.is_root:
            job.model.save(checkpoint, job.optimizer, scheduler=job.schedule, epoch=job.history.epochs[-1],
                           history=job.history, extra=extra)
        world.communicator().barrier()  # every rank's weights are these: the file is complete for all


def _print_header(job: TrainingJob, checkpoint: str | None, resumed: str | None, world: World) -> None:
    """What is about to be trained: data, model, optimizer, epochs."""
    s = job.settings
    if resumed:
        say(f"resuming {resumed} after epoch {job.initial_epoch}")
    say(f"data: {job.data.describe()}")
    say(f"model: {describe_model(job.model)}")
    schedule = "cosine schedule" if s.lr_schedule == "cosine" else "constant lr"
    say(f"training: {s.optimizer} lr {s.lr:g}, {schedule}, loss {job.loss}, batches of {s.batch_size}, "
         f"epochs {job.initial_epoch + 1} to {s.epochs}" + (f", checkpoint {checkpoint}" if checkpoint else ""))
    if world.size > 1:
        say(f"data-parallel: {world.size} ranks on {world.nodes} machine{'s' if world.nodes != 1 else ''}, each "
             f"training its share of every batch of {s.batch_size}")


def _report(job: TrainingJob, trained: int, seconds: float, args: argparse.Namespace, checkpoint: str | None,
            world: World) -> None:  # fmt: skip
    """The result lines (held-out loss and accuracy, time), then the plot and where things went."""
    data = job.data
    values = job.model.evaluate(data.X_test, data.y_test, job.loss, job.metrics)
    part = "training data (no held-out set)" if data.dataset.test_is_train else "test"
    print(result_line(part, values, len(data.X_test)))
    epochs = "1 epoch" if trained == 1 else f"{trained} epochs"
    ranks = f" ({world.size} ranks)" if world.size > 1 else ""
    print(f"time: {format_duration(seconds)} for {epochs} on {job.model.device.name}{ranks}")
    if args.plot is not None and len(job.history):
        try:
            path = job.history.plot(args.plot, title=f"backprop train --data {job.settings.data}")
        except (ValueError, OSError, ImportError) as exc:
            raise CliError(f"--plot {args.plot}: {exc}") from None
        if not args.quiet:
            print(f"plot: {path}")
    if checkpoint and not args.quiet:
        print(f"checkpoint: {checkpoint}")
