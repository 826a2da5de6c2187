"""``backprop gradcheck``: compare a model's backprop gradients with finite differences."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ..gradcheck import gradcheck
from ..model import Sequential
from . import arguments as types
from .checkpoints import open_checkpoint, standardizes_itself
from .data import prepare_training_data
from .devices import resolve_device
from .errors import CliError, UsageError
from .memory import check_fits, layer_sizes, training_estimate
from .model_spec import parse_layers
from .report import describe_model, say
from .settings import DEFAULTS
from .tasks import output_activation, training_task

__all__ = ["register", "run"]

EPILOG = """examples:
  backprop gradcheck                                   # 4 features -> 16 relu -> 3 logits, cross_entropy
  backprop gradcheck --layers 32,16,1 --activation tanh --loss bce_with_logits --features 8
  backprop gradcheck --layers model.toml --features 64 --loss cross_entropy
  backprop gradcheck --checkpoint run.npz              # the trained model, on its own training data
  backprop gradcheck --device cuda                     # the same check on the GPU

Prints the worst relative error per parameter, the entries checked and failed, and the ReLU
kinks skipped (see bp.gradcheck); exits 1 if any entry is outside the tolerance. The check runs
on a float64 copy of the model, in training mode with its dropout masks held fixed.
"""


def register(subparsers: Any) -> None:
    """Add the ``gradcheck`` command."""
    parser = subparsers.add_parser(
        "gradcheck",
        help="check backprop's gradients against finite differences",
        description="Check a model's hand-written gradients against central differences on a small batch:\n"
        "a model described by --layers with random data, or a trained --checkpoint on its data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--layers", default="16,3", metavar="SIZES|FILE",
                        help="hidden sizes then the output size, or a .json/.toml model file (default: 16,3)")
    parser.add_argument("--activation", type=types.activation_name, default="relu", metavar="NAME",
                        help="hidden activation (default: relu)")
    parser.add_argument("--loss", type=types.loss_name, default="cross_entropy", metavar="NAME",
                        help="cross_entropy, bce_with_logits, bce or mse (default: cross_entropy)")
    parser.add_argument("--features", type=types.positive_int, default=4, metavar="N",
                        help="input features of the random batch (default: 4)")
    parser.add_argument("--checkpoint", metavar="PATH", help="check this trained model instead of --layers")
    parser.add_argument("--data", type=types.data_spec, metavar="SPEC",
                        help="with --checkpoint: the data to take the batch from (default: its training data)")
    parser.add_argument("--batch", type=types.positive_int, default=8, metavar="N", help="samples (default: 8)")
    parser.add_argument("--eps", type=types.positive_float, default=1e-6, help="finite-difference step (default: 1e-6)")
    parser.add_argument("--rtol", type=types.non_negative_float, default=1e-6,
                        help="relative tolerance (default: 1e-6)")
    parser.add_argument("--atol", type=types.non_negative_float, default=1e-9,
                        help="absolute tolerance (default: 1e-9)")
    parser.add_argument("--seed", type=types.non_negative_int, default=0, metavar="N",
                        help="seed of the weights, the batch and the entries sampled (default: 0)")
    types.add_device_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check as ``args`` say; exit status 0 when the check passes, 1 when it fails."""
    device = resolve_device(args.device)
    if args.checkpoint is not None:
        model, X, y, loss = _from_checkpoint(args, device)
    else:
        model, X, y, loss = _from_description(args, device)
    say(f"model: {describe_model(model)}")
    print(f"batch: {X.shape[0]} samples of {X.shape[1]} features, loss {loss}")
    result = gradcheck(model, X, y, loss, eps=args.eps, rtol=args.rtol, atol=args.atol, seed=args.seed)
    print(result)
    if not result.ok:
        failing = ", ".join(name for name, count in result.failed.items() if count)
        raise CliError(f"gradient check failed for {failing}: backprop's gradients disagree with finite differences")
    return 0


def _from_description(args: argparse.Namespace, device: str) -> tuple[Sequential, np.ndarray, np.ndarray, str]:
    spec = parse_layers(args.layers)
    out = spec.out_features
    if args.loss == "cross_entropy" and out < 2:
        raise UsageError(f"--loss cross_entropy needs at least 2 outputs (classes); --layers {args.layers} has {out}")
    # float64, no optimizer; the check copies the model and holds a batch of inputs besides
    estimate = training_estimate([args.features, *spec.sizes], 8, 1, args.batch,
                                 extra_host=args.batch * (args.features + out) * 8)
    check_fits(estimate, device, "use smaller --layers, --features or --batch")
    model = spec.build(args.features, activation=args.activation, dropout=0.0,
                       output_activation=output_activation(args.loss), device=device, dtype="float64", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.batch, args.features))
    if args.loss == "cross_entropy":
        y = rng.integers(0, out, size=args.batch)
    elif args.loss in ("bce", "bce_with_logits"):
        y = rng.integers(0, 2, size=(args.batch, out)).astype(np.float64)
    else:
        y = rng.standard_normal((args.batch, out))
    return model, X, y, args.loss


def _from_checkpoint(args: argparse.Namespace, device: str) -> tuple[Sequential, np.ndarray, np.ndarray, str]:
    checkpoint, saved = open_checkpoint(args.checkpoint, device)
    spec = args.data or saved.data
    if spec is None:
        raise UsageError(f"checkpoint {args.checkpoint!r} does not record its data set: pass --data SPEC")
    settings = {**DEFAULTS, **saved.args}
    own = spec == saved.data  # the training run's data: read as it was (task, delimiter)
    data = prepare_training_data(spec, settings["test_size"], settings["split_seed"], settings["val_split"] or 0.0,
                                 scaler=saved.scaler, raw=standardizes_itself(checkpoint.model),
                                 task=training_task(settings["task"], saved.loss, spec)[0] if own else None,
                                 delimiter=settings["delimiter"] if own else None)
    if checkpoint.model.in_features not in (None, data.dataset.n_features):
        raise CliError(f"--data {spec} has {data.dataset.n_features} features but the model takes "
                       f"{checkpoint.model.in_features}")
    n = min(args.batch, len(data.X_train))
    sizes = layer_sizes(checkpoint.model)
    if sizes:
        check_fits(training_estimate(sizes, 8, 1, n), device, "use a smaller --batch")
    return checkpoint.model, data.X_train[:n], data.y_train[:n], saved.loss
