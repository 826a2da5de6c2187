"""``backprop predict``: a checkpoint's predictions for new samples."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..backends import to_numpy
from . import arguments as types
from .checkpoints import SavedRun, inputs_for, open_checkpoint
from .devices import resolve_device
from .errors import CliError
from .inputs import read_features
from .memory import check_fits, layer_sizes, training_estimate
from .outputs import check_outputs, output_kind, write_tables

__all__ = ["predictions", "register", "run"]

EPILOG = """examples:
  backprop predict --checkpoint run.npz --input digits.csv --output labels.csv
  backprop predict --checkpoint run.npz --input X.npy --output labels.npy --probabilities proba.npy
  backprop predict --checkpoint sine.npz --input x.csv --output -          # CSV on standard output

--input: one sample per row, the training features in the training order (a CSV header that
names the training features may list them in any order, plus other columns such as the label);
the model standardises them as it did the training features. --output: for classification the predicted class
labels, as the training data wrote them (e.g. setosa, or 0..9); for regression the predicted
values. A .csv file gets a header row; a .npy file holds one array (labels: shape (samples,);
values: (samples, targets)). --probabilities FILE: the class probabilities, one column per class
in the order of the class labels (the CSV header names them).
"""


def register(subparsers: Any) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict",
        help="predict labels or values for new samples",
        description="Apply a trained checkpoint to the samples in a .csv or .npy file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="a file written by backprop train")
    parser.add_argument("--input", required=True, metavar="FILE", help="samples: .csv (.csv.gz) or .npy")
    parser.add_argument("--output", required=True, metavar="FILE", help="labels or values: .csv, .npy, or - (stdout)")
    parser.add_argument("--probabilities", metavar="FILE", help="class probabilities: .csv or .npy (classification)")
    parser.add_argument("--batch-size", type=types.positive_int, default=4096, metavar="N",
                        help="samples per forward pass (default: 4096)")
    parser.add_argument("--delimiter", type=types.delimiter, metavar="CHAR",
                        help="the --input CSV file's delimiter: ',', ';', '|', tab (or \\t) (default: sniffed from "
                        "the file, else ',')")
    types.add_device_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Predict as ``args`` say; returns the exit status."""
    output_kind(args.output, "--output")  # check the file names before any work
    if args.probabilities is not None:
        output_kind(args.probabilities, "--probabilities")
    check_outputs([("--output", args.output), ("--probabilities", args.probabilities)],
                  [("--checkpoint", args.checkpoint), ("--input", args.input)])
    device = resolve_device(args.device)
    checkpoint, saved = open_checkpoint(args.checkpoint, device)
    model = checkpoint.model
    n_features = model.in_features or (saved.scaler.n_features if saved.scaler else 0)
    X = read_features(args.input, n_features, saved.feature_names, saved.target_name, model.dtype,
                      delimiter=args.delimiter or "auto")
    sizes = layer_sizes(model)
    if sizes:
        check_fits(training_estimate(sizes, np.dtype(model.dtype).itemsize, 0, min(args.batch_size, len(X)),
                                     build=False, train=False), device, "use a smaller --batch-size")
    X = inputs_for(model, saved, X, f"--input {args.input}")
    outputs = np.asarray(to_numpy(model.predict(X, batch_size=args.batch_size)), dtype=np.float64)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise CliError(f"--input {args.input}: the model's output for sample {row + 1} is not finite (its weights or "
                       "that sample's features are too large for its dtype); no predictions were written")
    values, probabilities, classes = predictions(outputs, saved, model.classes)
    if args.probabilities is not None and probabilities is None:
        raise CliError(
            f"--probabilities: the model was trained with loss {saved.loss}, which gives no class probabilities"
        )
    tables = [(args.output, "--output", _value_header(saved, values), values)]
    if args.probabilities is not None and probabilities is not None:
        tables.insert(0, (args.probabilities, "--probabilities", [str(c) for c in classes], probabilities))
    write_tables(tables)
    if args.output != "-":
        what = "labels" if saved.task == "classification" else "values"
        extra = f" and class probabilities to {args.probabilities}" if args.probabilities else ""
        print(f"predicted {len(X)} samples: {what} written to {args.output}{extra}")
    return 0


def predictions(
    outputs: np.ndarray, saved: SavedRun, model_classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[Any]]:
    """``(labels or values, probabilities or None, classes)`` from the model's raw outputs; the
    labels are the model's own (``model.classes``, the same as ``model.predict_labels``), else
    those the checkpoint's extra values record (files of older versions), else the indices."""
    if saved.task != "classification":
        return outputs, None, []
    width = outputs.shape[1]
    classes = list(saved.classes) if saved.classes is not None else list(range(max(width, 2)))
    if len(classes) != max(width, 2):
        raise CliError(f"the checkpoint records {len(classes)} class labels but its model has {width} output"
                       f"{'s' if width != 1 else ''} (the file is damaged)")
    if model_classes is not None:
        own = model_classes.tolist()
        if saved.classes is not None and own != classes:
            raise CliError(f"the checkpoint's model has the class labels {own[:10]} but its extra values record "
                           f"{classes[:10]} (the file is damaged)")
        classes = own
    probabilities: np.ndarray | None
    if saved.loss == "cross_entropy":
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        index = outputs.argmax(axis=1)
    elif width == 1:
        p = outputs[:, 0] if saved.loss == "bce" else 0.5 * (1.0 + np.tanh(0.5 * outputs[:, 0]))  # sigmoid
        probabilities = None if saved.loss == "mse" else np.stack([1.0 - p, p], axis=1)
        index = (outputs[:, 0] > (0.0 if saved.loss == "bce_with_logits" else 0.5)).astype(np.int64)
    else:
        raise CliError(f"predict handles one binary output; this model has {width} outputs with loss {saved.loss}")
    return np.asarray(classes)[index], probabilities, classes


def _value_header(saved: SavedRun, values: np.ndarray) -> list[str]:
    name = saved.target_name or ("label" if saved.task == "classification" else "y")
    if values.ndim == 1 or values.shape[1] == 1:
        return [name]
    return [f"{name}_{i}" for i in range(values.shape[1])]
