"""The options of ``backprop train`` (values left out are ``None`` and resolved later by
`settings.resolve_settings`, so a resumed run can tell given options from defaults)."""

from __future__ import annotations

import argparse

from ..datasets import SPEC_FORMS
from ..datasets.csv_file import TASK_CHOICES
from ..precision import PRECISIONS
from . import arguments as types
from .optimizers import DEFAULT_LR, OPTIMIZERS, SCHEDULES
from .settings import DEFAULT_HIDDEN, DEFAULTS

__all__ = ["EPILOG", "add_train_options"]

EPILOG = """examples:
  backprop train                                   # digits classifier, about 98% test accuracy in seconds
  backprop train --data xor --layers 8,1 --epochs 500 --batch-size 4 --lr 0.05 --dropout 0
  backprop train --data sine --layers 64,64,1 --activation tanh --dropout 0 --epochs 200
  backprop train --data csv:iris.csv:label=species --layers 16,3 --epochs 100 --checkpoint iris.npz
  backprop train --data csv:diabetes.csv --loss mse --delimiter ';'   # whole-number targets as values
  backprop train --layers model.toml --plot curves.png --checkpoint run.npz
  backprop train --val-split 0.1 --tensorboard runs/digits --csv-log digits.csv
  backprop train --resume run.npz --epochs 80      # continue the same run up to epoch 80
  backprop train --device cuda --dtype float64 --quiet
  backprop train --device cuda --precision bf16-mixed  # bfloat16 matrix products, float32 everything else

model files (--layers FILE.json | FILE.toml):
  layers = [128, 64, 10]      # sizes, or tables {units, activation, dropout, init}; the output last
  activation = "gelu"         # optional defaults for the hidden layers
  dropout = 0.2

--quiet prints only the result lines (test loss and accuracy, time). Checkpoints store the
model, optimizer, schedule, history, the standardiser, the class labels, the data spec and the
settings, so evaluate/predict/--resume need nothing else.
"""


def _default(key: str) -> str:
    return f"default: {DEFAULTS[key]}"


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Add every ``train`` option to ``parser``."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=types.data_spec, metavar="SPEC",
                      help=f"{' | '.join(SPEC_FORMS)} ({_default('data')})")
    data.add_argument("--test-size", type=types.split_fraction, metavar="FRACTION",
                      help=f"fraction held out as the test set ({_default('test_size')})")
    data.add_argument("--split-seed", type=types.non_negative_int, metavar="N",
                      help="seed of the test and validation splits, kept apart from --seed so that every "
                      f"model seed is scored on the same test set ({_default('split_seed')})")
    data.add_argument("--val-split", type=types.fraction, metavar="FRACTION",
                      help="fraction of the training part held out for validation; 0 disables "
                      "(default: 0, or 0.1 with --early-stopping)")
    data.add_argument("--task", choices=TASK_CHOICES,
                      help="what a CSV label column holds: auto reads text or whole numbers as classes, "
                      "other numbers as regression targets, and --loss mse as regression (default: auto)")
    data.add_argument("--delimiter", type=types.delimiter, metavar="CHAR",
                      help="a CSV file's delimiter: ',', ';', '|', tab (or \\t) (default: sniffed from the "
                      "file, else ',')")

    model = parser.add_argument_group("model")
    model.add_argument("--layers", metavar="SIZES|FILE",
                       help="hidden sizes then the output size, e.g. 64,128,10 (the input size comes from the "
                       "data), or a .json/.toml model file (default: "
                       f"{DEFAULT_HIDDEN},<outputs the data needs>)")
    model.add_argument("--activation", type=types.activation_name, metavar="NAME",
                       help=f"hidden activation: relu, leaky_relu, tanh, sigmoid, gelu, ... ({_default('activation')})")
    model.add_argument("--dropout", type=types.probability, metavar="P",
                       help="dropout after each hidden activation; 0 disables (default: 0.5 for classification, "
                       "0 for regression)")
    model.add_argument("--loss", type=types.loss_name, metavar="NAME",
                       help="cross_entropy, bce_with_logits, bce or mse; for regression also mae or huber "
                       "(default: the data set's: cross_entropy for class labels, bce_with_logits for 0/1 "
                       "targets, mse for regression)")
    model.add_argument("--metrics", metavar="NAMES",
                       help="comma-separated metrics (accuracy, top_k_accuracy, precision, recall, f1, mae, mse, "
                       "r2), or none (default: accuracy for classification)")

    training = parser.add_argument_group("training")
    training.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help=f"({_default('optimizer')})")
    lrs = ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
    training.add_argument("--lr", type=types.positive_float, metavar="RATE",
                          help=f"learning rate (default per optimizer: {lrs})")
    training.add_argument("--lr-schedule", choices=SCHEDULES,
                          help="constant, or cosine annealing to 0 over --epochs (default: cosine for "
                          "classification, constant for regression)")
    training.add_argument("--weight-decay", type=types.non_negative_float, metavar="W",
                          help="weight decay (default: the optimizer's own: 0, or 0.01 for adamw)")
    training.add_argument("--momentum", type=types.non_negative_float, metavar="M",
                          help="momentum for sgd (default 0.9) and rmsprop (default 0)")
    training.add_argument("--epochs", type=types.positive_int, metavar="N",
                          help=f"total epochs; with --resume, the epoch to continue up to ({_default('epochs')})")
    training.add_argument("--batch-size", type=types.positive_int, metavar="N", help=f"({_default('batch_size')})")
    training.add_argument("--clip-grad-norm", type=types.positive_float, metavar="MAX",
                          help="clip the global gradient norm to MAX (default: no clipping)")
    training.add_argument("--early-stopping", type=types.non_negative_int, metavar="PATIENCE",
                          help="stop after PATIENCE epochs without a better validation loss (training loss "
                          "with --val-split 0) and keep the best epoch's weights, also in the checkpoint")
    training.add_argument("--seed", type=types.non_negative_int, metavar="N",
                          help=f"seed of the initial weights, batch order and dropout ({_default('seed')})")

    run = parser.add_argument_group("running and output")
    types.add_device_argument(run)
    run.add_argument("--dtype", choices=("float32", "float64"), help=f"({_default('dtype')})")
    run.add_argument("--precision", choices=tuple(PRECISIONS),
                     help="the matrix products' arithmetic: fp32, TF32, or bfloat16/float16 operands with float32 "
                     "sums (fp16-mixed with dynamic loss scaling); on the CPU an exact emulation "
                     f"({_default('precision')})")
    run.add_argument("--checkpoint", metavar="PATH",
                     help="save model and training state here every epoch and at the end (with --resume: "
                     "default the resumed file)")
    run.add_argument("--resume", metavar="PATH",
                     help="continue the run saved in PATH exactly: model (its architecture wins over --layers), "
                     "optimizer, schedule, history, epoch numbering and settings")
    run.add_argument("--plot", metavar="PATH.png", help="save the training curves as an image")
    run.add_argument("--tensorboard", metavar="DIR",
                     help="write each epoch's values for TensorBoard to DIR/train and DIR/validation "
                     "(tensorboard --logdir DIR; needs pip install 'backprop-nn[tensorboard]')")
    run.add_argument("--csv-log", metavar="FILE",
                     help="write a CSV row per epoch (epoch, loss, metrics, lr, val_*) to FILE; with --resume "
                     "the rows continue the file")
    run.add_argument("--quiet", action="store_true", help="print only the result lines")

