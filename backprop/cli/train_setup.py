"""Setting up a training run: the data, the loss and metrics, the model, the optimizer and
the schedule, either new or restored from the checkpoint of a run to resume."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ..checkpoint import Checkpoint
from ..history import History
from ..model import Sequential
from ..optim import LRScheduler, Optimizer
from .checkpoints import SavedRun, model_classes, open_checkpoint, standardizes_itself
from .data import TrainingData, prepare_training_data
from .errors import CliError, UsageError
from .memory import check_fits, layer_sizes, optimizer_state_factor, training_estimate
from .model_spec import LayerSpec, ModelSpec, parse_layers
from .optimizers import build_optimizer, build_schedule
from .settings import DEFAULT_HIDDEN, TrainSettings, for_task
from .tasks import check_loss, metric_names, output_activation, training_task

__all__ = ["TrainingJob", "open_resumed", "set_up"]


@dataclass
class TrainingJob:
    """Everything one invocation trains with."""

    settings: TrainSettings
    data: TrainingData
    loss: str
    metrics: list[str]
    model: Sequential
    optimizer: Optimizer
    schedule: LRScheduler | None
    history: History
    initial_epoch: int


def open_resumed(args: argparse.Namespace, device: str) -> tuple[Checkpoint, SavedRun]:
    """The checkpoint ``--resume`` names, loaded on ``device``, if it can continue a run."""
    checkpoint, saved = open_checkpoint(args.resume, device)
    if checkpoint.optimizer is None:
        raise CliError(f"cannot resume from {args.resume!r}: it holds no optimizer state (a model saved without one)")
    if not saved.args:
        raise CliError(f"cannot resume from {args.resume!r}: it has no training settings (it was not written by "
                       "backprop train)")
    return checkpoint, saved


def set_up(settings: TrainSettings, device: str, resumed: tuple[Checkpoint, SavedRun] | None) -> TrainingJob:
    """Everything to train with: a new model (standardising its inputs with the training part's
    statistics, carrying the class labels), optimizer and schedule from ``settings``, or those
    of the ``resumed`` checkpoint with its history, epoch and (older files) standardiser."""
    saved = resumed[1] if resumed else None
    spec = None if resumed is not None else _parse_spec(settings)
    if spec is not None:  # a first, lower bound before any data is read: the input layer left out
        _check_memory(settings, [1, *spec.sizes], device, settings.batch_size)
    # the model standardises the features itself, unless it is resumed from an older version's file
    in_model = resumed is None or standardizes_itself(resumed[0].model)
    task, note = training_task(settings.task, settings.loss, settings.data)
    if note is not None:
        print(note, file=sys.stderr)
    data = prepare_training_data(settings.data, settings.test_size, settings.split_seed, settings.val_split,
                                 scaler=saved.scaler if saved else None, task=task, delimiter=settings.delimiter,
                                 raw=in_model)
    settings = for_task(settings, data.dataset.task)
    assert settings.dropout is not None and settings.lr_schedule is not None  # for_task fills them in
    loss = check_loss(data.dataset, settings.loss)
    metrics = metric_names(data.dataset, loss, settings.metrics)
    if resumed is not None:
        checkpoint = resumed[0]
        assert checkpoint.optimizer is not None  # checked by open_resumed
        _check_features(checkpoint.model, data, settings)
        sizes = layer_sizes(checkpoint.model)
        if sizes:
            _check_memory(settings, sizes, device, min(settings.batch_size, len(data.X_train)), build=False)
        schedule = build_schedule(settings.lr_schedule, checkpoint.optimizer, settings.epochs)
        if schedule is not None and checkpoint.scheduler_state is not None:
            try:
                schedule.load_state_dict(checkpoint.scheduler_state)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise CliError(f"cannot resume: the checkpoint's schedule state does not fit a {settings.lr_schedule} "
                               f"schedule ({exc})") from None
            _note_extended_cosine(schedule, settings.epochs)
        return TrainingJob(settings, data, loss, metrics, checkpoint.model, checkpoint.optimizer, schedule,
                           checkpoint.history, checkpoint.epoch)
    spec = _fitted_spec(spec, settings, data)
    _check_memory(settings, [data.dataset.n_features, *spec.sizes], device,
                  min(settings.batch_size, len(data.X_train)))
    model = spec.build(
        data.dataset.n_features, activation=settings.activation, dropout=settings.dropout,
        output_activation=output_activation(loss), device=device, dtype=settings.dtype, seed=settings.seed,
        standardize=data.scaler,
        precision=settings.precision,
    )
    model.classes = model_classes(data.dataset, model)
    if loss == "mse" and model.classes is not None:  # values regressed onto 0/1: the cut is halfway
        model.threshold = 0.5
    optimizer = build_optimizer(settings.optimizer, model.parameters(), settings.lr, settings.weight_decay,
                                settings.momentum)
    schedule = build_schedule(settings.lr_schedule, optimizer, settings.epochs)
    return TrainingJob(settings, data, loss, metrics, model, optimizer, schedule, History(), 0)


def _note_extended_cosine(schedule: LRScheduler, epochs: int) -> None:
    planned = getattr(schedule, "T_max", None)
    if planned is not None and epochs > planned:
        print(f"note: the run's cosine schedule was planned for {planned} epochs; after epoch {planned} its "
              "learning rate rises again (runs meant to be extended train better with --lr-schedule constant)",
              file=sys.stderr)


def _parse_spec(settings: TrainSettings) -> ModelSpec | None:
    """The model ``--layers`` describes (``None``: the default, which needs the data's size)."""
    return None if settings.layers is None else parse_layers(settings.layers)


def _check_memory(settings: TrainSettings, sizes: list[int], device: str, batch: int, *, build: bool = True) -> None:
    """Refuse a model and batch that cannot fit, before anything is allocated for them."""
    itemsize = 8 if settings.dtype == "float64" else 4
    factor = optimizer_state_factor(settings.optimizer, settings.momentum)
    what = "--layers " + (settings.layers or ",".join(map(str, sizes[1:]))) if build else "the resumed model"
    check_fits(training_estimate(sizes, itemsize, factor, batch, build=build), device,
               f"{what} is too large for it; use fewer or smaller layers or a smaller --batch-size")


def _fitted_spec(spec: ModelSpec | None, settings: TrainSettings, data: TrainingData) -> ModelSpec:
    needed = data.dataset.out_features
    if spec is None:
        return ModelSpec((LayerSpec(DEFAULT_HIDDEN), LayerSpec(needed)))
    if spec.out_features != needed:
        sizes = ",".join(str(size) for size in [*spec.sizes[:-1], needed])
        raise UsageError(
            f"--layers {settings.layers}: the output layer has {spec.out_features} units but {data.dataset.name} "
            f"needs {needed} ({_outputs(data)}); the last size is the output size, e.g. --layers {sizes}"
        )
    return spec


def _outputs(data: TrainingData) -> str:
    ds = data.dataset
    if ds.task == "regression":
        return "one per regression target"
    return f"one logit per class, {ds.n_classes} classes" if ds.y_train.ndim == 1 else "one binary output"


def _check_features(model: Sequential, data: TrainingData, settings: TrainSettings) -> None:
    if model.in_features is not None and model.in_features != data.dataset.n_features:
        raise CliError(f"the resumed model takes {model.in_features} features but --data {settings.data} has "
                       f"{data.dataset.n_features}")
