"""The settings of a training run: command-line values over the defaults, or, when resuming,
over the settings the checkpoint's run was started with."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from .optimizers import DEFAULT_LR

__all__ = ["DEFAULTS", "RUN_KEYS", "TrainSettings", "resolve_settings"]

#: What ``backprop train`` does without options: a classifier for the bundled digits that
#: reaches about 98% held-out accuracy (97.2-98.6% over seeds 0-9) in a second or two on a
#: laptop CPU. No validation part by default: the data set is small and every training
#: sample counts; early stopping holds out 10% unless --val-split says otherwise.
DEFAULTS: dict[str, Any] = {
    "data": "digits",
    "test_size": 0.2,
    "split_seed": 0,
    "val_split": None,  # 0, or 0.1 with --early-stopping
    "layers": None,  # 128 hidden units, then the data's output size
    "activation": "relu",
    "dropout": 0.5,
    "loss": None,  # the data set's loss
    "metrics": None,  # accuracy for classification
    "optimizer": "adam",
    "lr": None,  # DEFAULT_LR[optimizer]
    "weight_decay": None,
    "momentum": None,
    "lr_schedule": "cosine",
    "epochs": 60,
    "batch_size": 32,
    "clip_grad_norm": None,
    "dtype": "float32",
    "seed": 0,
}

#: Settings a resumed run takes from its checkpoint (given values are ignored, with a note):
#: changing any of them would not continue the same run. ``epochs`` (the total), ``device``,
#: ``checkpoint``, ``plot``, ``early_stopping`` and ``quiet`` may be given anew.
RUN_KEYS = tuple(key for key in DEFAULTS if key != "epochs")

DEFAULT_HIDDEN = 128


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of one ``backprop train`` invocation, resolved."""

    data: str
    test_size: float
    split_seed: int
    val_split: float
    layers: str | None
    activation: str
    dropout: float
    loss: str | None
    metrics: str | None
    optimizer: str
    lr: float
    weight_decay: float | None
    momentum: float | None
    lr_schedule: str
    epochs: int
    batch_size: int
    clip_grad_norm: float | None
    dtype: str
    seed: int

    def run_args(self) -> dict[str, Any]:
        """The settings as JSON values, as a checkpoint stores them."""
        return dataclasses.asdict(self)


def resolve_settings(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> TrainSettings:
    """Given options over ``saved`` (a resumed run's settings) over `DEFAULTS`. When resuming,
    a given option that would change the run is ignored and a note says so on stderr."""
    values = dict(DEFAULTS)
    if saved is not None:
        values.update({key: saved[key] for key in DEFAULTS if key in saved})
    for key in DEFAULTS:
        given = getattr(args, key, None)
        if given is None:
            continue
        if saved is not None and key in RUN_KEYS:
            if given != values[key]:
                _note_ignored(key, given, values[key])
            continue
        values[key] = given
    if values["val_split"] is None:
        values["val_split"] = 0.1 if getattr(args, "early_stopping", None) is not None else 0.0
    if values["lr"] is None:
        values["lr"] = DEFAULT_LR[values["optimizer"]]
    return TrainSettings(**values)


def _note_ignored(key: str, given: Any, kept: Any) -> None:
    option = "--" + key.replace("_", "-")
    if key == "layers":
        why = "the architecture comes from the checkpoint's model"
    else:
        why = f"the resumed run keeps its own ({'the default' if kept is None else kept})"
    print(f"note: {option} {given} is ignored: {why}", file=sys.stderr)
