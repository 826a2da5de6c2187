"""``backprop evaluate``: a checkpoint's loss and accuracy on a data set."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..datasets import Dataset
from ..datasets.spec import parse_csv_spec
from . import arguments as types
from .checkpoints import SavedRun, inputs_for, open_checkpoint
from .data import class_indices, load_dataset
from .devices import resolve_device
from .errors import CliError, UsageError
from .memory import check_fits, layer_sizes, training_estimate
from .report import describe_model, result_line, say
from .settings import DEFAULTS

__all__ = ["register", "run"]

EPILOG = """examples:
  backprop evaluate --checkpoint run.npz                       # the test part of the data it was trained on
  backprop evaluate --checkpoint iris.npz --data csv:new_flowers.csv:label=species   # every row of a new file
  backprop evaluate --checkpoint run.npz --part all --device cuda

The model standardises the features as in training. --part test (the default for
the data set the model was trained on) rebuilds its held-out test part with the training run's
--test-size and --split-seed; --part all (the default for any other CSV file) uses every row.
"""


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="loss and accuracy of a checkpoint on a data set",
        description="Print a trained checkpoint's loss (and accuracy, for classification) on a data set.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="a file written by backprop train")
    parser.add_argument("--data", type=types.data_spec, metavar="SPEC",
                        help="xor | digits | sine | csv:PATH[:label=COLUMN] (default: the data the model was "
                        "trained on)")
    parser.add_argument("--part", choices=("test", "all"),
                        help="the held-out test part, or all samples (default: test for the training data, "
                        "all for another CSV file)")
    parser.add_argument("--delimiter", type=types.delimiter, metavar="CHAR",
                        help="a CSV file's delimiter: ',', ';', '|', tab (or \\t) (default: the training run's for "
                        "its own data, else sniffed from the file)")
    types.add_device_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; returns the exit status."""
    device = resolve_device(args.device)
    checkpoint, saved = open_checkpoint(args.checkpoint, device)
    spec = args.data or saved.data
    if spec is None:
        raise UsageError(f"checkpoint {args.checkpoint!r} does not record its data set: pass --data SPEC")
    own = spec == saved.data
    part = args.part or ("test" if own or not spec.lower().startswith("csv:") else "all")
    test_size = saved.args.get("test_size", DEFAULTS["test_size"])
    split_seed = saved.args.get("split_seed", DEFAULTS["split_seed"])
    delimiter = args.delimiter or (saved.args.get("delimiter") if own else None)
    # a CSV label column is read for the model's task: whole-number values stay values for a regression model
    task = saved.task if spec.strip().lower().startswith("csv:") and "task" not in _spec_options(spec) else None
    dataset = load_dataset(spec, test_size, split_seed, task, delimiter)
    X, y = _part(dataset, part)
    X = _aligned(X, dataset.feature_names, saved.feature_names)
    model = checkpoint.model
    if model.in_features is not None and X.shape[1] != model.in_features:
        raise CliError(
            f"--data {spec} has {X.shape[1]} features but the model in {args.checkpoint!r} takes {model.in_features}"
        )
    y = _targets(dataset, y, saved, spec)
    metrics = ["accuracy"] if saved.task == "classification" and saved.loss != "mse" else []
    X = inputs_for(model, saved, X, f"--data {spec}")
    sizes = layer_sizes(model)
    if sizes:  # evaluate runs batches of 1024 samples
        check_fits(training_estimate(sizes, np.dtype(model.dtype).itemsize, 0, min(1024, len(X)), build=False,
                                     train=False), device, "the model is too large for this machine")
    values = model.evaluate(X, y, saved.loss, metrics)
    say(f"model: {describe_model(model)}, trained {checkpoint.epoch} epochs")
    which = "training data (no held-out set)" if dataset.test_is_train and part == "test" else part
    print(result_line(f"{dataset.name} {which}", values, len(X)))
    return 0


def _spec_options(spec: str) -> dict[str, Any]:
    return parse_csv_spec(spec.strip()[4:])[1]


def _part(dataset: Dataset, part: str) -> tuple[np.ndarray, np.ndarray]:
    if part == "test" or dataset.test_is_train:
        return dataset.X_test, dataset.y_test
    return np.concatenate([dataset.X_train, dataset.X_test]), np.concatenate([dataset.y_train, dataset.y_test])


def _aligned(X: np.ndarray, names: tuple[str, ...], trained: tuple[str, ...] | None) -> np.ndarray:
    """The feature columns in the training order, matched by name where the data names every
    training feature (a CSV file may order its columns differently)."""
    if trained and tuple(names) != tuple(trained) and all(name in names for name in trained):
        return X[:, [names.index(name) for name in trained]]
    return X


def _targets(dataset: Dataset, y: np.ndarray, saved: SavedRun, spec: str) -> np.ndarray:
    """Targets in the model's terms: class indices follow the checkpoint's class list."""
    if dataset.task != saved.task:
        raise CliError(f"--data {spec} is a {dataset.task} data set but the model was trained for {saved.task}")
    if dataset.task != "classification" or saved.classes is None:
        return y
    if y.ndim == 1:
        labels = np.asarray(dataset.classes, dtype=object)[y]
        return class_indices(labels, saved.classes, f"--data {spec}")
    if tuple(dataset.classes or ()) != tuple(saved.classes):
        raise CliError(f"--data {spec} has classes {dataset.classes} but the model was trained on {saved.classes}")
    return y
