"""Vanishing gradients, and the tutorial's three cures, on real data.

The tutorial's troubleshooting table says: vanishing gradients -> ReLU, batch normalisation,
residual connections. This script trains four networks of the same depth (12 hidden layers
of 64 units, 13 Dense layers in all) on the bundled 8x8 digits, standardised, with the same
optimizer (Adam, lr 0.001), and records each parameter's gradient norm per epoch
(``fit(..., record_grad_norms=True)``):

    sigmoid      sigmoid activations, the tutorial's small init N(0, 0.01^2): the broken net
    relu+he      ReLU activations with He init                        (cure 1: activation/init)
    sigmoid+bn   the broken net with BatchNorm after every hidden Dense        (cure 2)
    sigmoid+res  the broken net with its hidden layers as residual blocks      (cure 3)

Backpropagation multiplies the error by W^T and by sigmoid'(z) <= 0.25 once per layer; with
weights of size 0.01 each layer shrinks it ~100-fold, so the first layer of the sigmoid net
gets gradients about 1e-20 of the last layer's. Even Adam cannot use them: the net stays at
chance (loss ln 10 = 2.303, accuracy 0.10). BatchNorm rescales every layer's signal back to
unit size; a residual block adds its input to its output, so the gradient reaches the first
layer through the skips undamped; ReLU (slope 1) with He init keeps the size of the signal
from layer to layer.

Printed: the gradient norm of every Dense weight (first to last layer) in the first and last
epoch of each variant, then each variant's final training loss, test accuracy and the ratio
of its first layer's gradient norm to its output layer's in epoch 1. (In the residual net
the output layer's gradient is large, as the skips add up the blocks' outputs; what counts
is that the first layer's is of a usable size.) With ``--depth 16`` the sigmoid net's first
gradient underflows float32 to exactly 0.

    python examples/vanishing_gradients.py                   # CPU, about 10 seconds
    python examples/vanishing_gradients.py --device cuda     # the same on a GPU
    python examples/vanishing_gradients.py --epochs 40 --depth 16 --plot plots/

``--plot DIR`` saves DIR/vanishing_gradients.png: one panel per variant, all on the same
logarithmic scale, each Dense weight's gradient norm per epoch, coloured first to last layer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import backprop as bp

VARIANTS = {
    "sigmoid": "sigmoid, N(0, 0.01^2) init (the tutorial's)",
    "relu+he": "ReLU, He init",
    "sigmoid+bn": "sigmoid, N(0, 0.01^2) init, BatchNorm after each hidden Dense",
    "sigmoid+res": "sigmoid, N(0, 0.01^2) init, hidden layers as residual blocks",
}


def hidden_layers(variant: str, n_in: int, width: int, depth: int) -> list[bp.Layer]:
    """``depth`` hidden layers of ``width`` units in the style of ``variant``."""
    small = bp.init.Normal(0.01)  # the tutorial's 0.01 * randn
    layers: list[bp.Layer] = []
    for i in range(depth):
        fan_in = n_in if i == 0 else width
        if variant == "sigmoid":
            layers += [bp.Dense(fan_in, width, init=small), bp.Sigmoid()]
        elif variant == "relu+he":
            layers += [bp.Dense(fan_in, width, init="he"), bp.ReLU()]
        elif variant == "sigmoid+bn":
            layers += [bp.Dense(fan_in, width, init=small), bp.BatchNorm(width), bp.Sigmoid()]
        elif variant == "sigmoid+res" and i == 0:
            # The first layer changes the width (64 pixels -> width units): it cannot be a
            # residual block, whose output X + f(X) has its input's width.
            layers += [bp.Dense(fan_in, width, init=small), bp.Sigmoid()]
        elif variant == "sigmoid+res":
            layers.append(bp.Residual(bp.Dense(width, width, init=small), bp.Sigmoid()))
        else:
            raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return layers


def build_model(variant: str, data: bp.datasets.Dataset, args: argparse.Namespace) -> bp.Sequential:
    """The variant's hidden layers, then a Dense layer giving one raw score (logit) per class
    (initialised like the hidden layers in the sigmoid variants, Xavier after ReLU)."""
    init = bp.init.Normal(0.01) if variant.startswith("sigmoid") else "xavier"
    return bp.Sequential(
        *hidden_layers(variant, data.n_features, args.width, args.depth),
        bp.Dense(args.width, data.out_features, init=init),
        device=args.device, seed=args.seed,
    )


def weight_names(model: bp.Sequential) -> list[str]:
    """The names of the Dense weights (``"0.W"``, ``"2.block.0.W"``, ...), first layer to last."""
    return [p.name for p in model.parameters() if p.name.endswith(".W")]


def train(variant: str, data: bp.datasets.Dataset, args: argparse.Namespace) -> dict:
    """Train one variant; returns its gradient norms per Dense weight, loss, accuracy, history."""
    model = build_model(variant, data, args)
    optimizer = bp.optim.Adam(model.parameters(), lr=args.lr)
    history = model.fit(
        data.X_train, data.y_train, loss="cross_entropy", optimizer=optimizer,
        epochs=args.epochs, batch_size=64, record_grad_norms=True, verbose=0,
    )
    test = model.evaluate(data.X_test, data.y_test, loss="cross_entropy", metrics=["accuracy"])
    keys = [f"grad_norm/{name}" for name in weight_names(model)]
    norms = [(history[key][0], history[key][-1]) for key in keys]
    # For the plot, keep the loss and the Dense weights' norms (leave out biases, BatchNorm, lr).
    curves = bp.History({key: history[key] for key in ["loss", *keys]}, history.epochs)
    return {"norms": norms, "loss": history["loss"][-1], "accuracy": test["accuracy"], "curves": curves}


def print_gradient_table(results: dict[str, dict], epochs: int) -> None:
    """One row per Dense layer, first to last; per variant its norm in the first and last epoch."""
    print(f"Gradient L2 norm of each Dense weight, mean over the epoch's steps (epoch 1 | epoch {epochs}):")
    print(f"{'':9}" + "".join(f"  {name:>19}" for name in results))
    print(f"{'layer':9}" + f"  {'epoch 1':>9} {f'epoch {epochs}':>9}" * len(results))
    n_layers = len(next(iter(results.values()))["norms"])
    for i in range(n_layers):
        cells = "".join(f"  {r['norms'][i][0]:9.2e} {r['norms'][i][1]:9.2e}" for r in results.values())
        label = "out" if i == n_layers - 1 else str(i + 1)
        print(f"{'Dense ' + label:9}{cells}")


def plot_norms(results: dict[str, dict], path: Path, args: argparse.Namespace) -> Path:
    """One figure, a panel per variant sharing one log scale: each Dense weight's gradient norm
    per epoch, in colours running from the first layer to the output layer, the legend outside."""
    from matplotlib import colormaps  # noqa: PLC0415 - matplotlib is needed only for --plot
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    figure.suptitle(f"Gradient norm of each Dense weight while training ({args.depth} hidden layers of "
                    f"{args.width}, Adam lr {args.lr:g})")
    axes = figure.subplots(2, 2, sharex=True, sharey=True).ravel()
    for ax, (variant, r) in zip(axes, results.items()):
        curves = r["curves"]
        keys = [key for key in curves.history if key.startswith("grad_norm/")]
        colors = [colormaps["turbo"](0.05 + 0.9 * i / max(len(keys) - 1, 1)) for i in range(len(keys))]
        for i, (key, color) in enumerate(zip(keys, colors)):  # first layer blue ... output dark red
            label = "output" if i == len(keys) - 1 else f"Dense {i + 1}"
            ax.plot(curves.epochs, curves[key], color=color, label=label)
        ax.set_yscale("log")
        ax.set_title(f"{variant}: loss {r['loss']:.3f}, test accuracy {r['accuracy']:.3f}", fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    for ax in axes[::2]:
        ax.set_ylabel("gradient L2 norm (mean over the epoch)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title="layer", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per variant (default: 30)")
    parser.add_argument("--depth", type=int, default=12, help="hidden layers (default: 12)")
    parser.add_argument("--width", type=int, default=64, help="units per hidden layer (default: 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the shuffling")
    parser.add_argument("--plot", metavar="DIR",
                        help="save every variant's gradient norms in one figure, DIR/vanishing_gradients.png")
    args = parser.parse_args()

    data, _ = bp.datasets.load("digits").standardize()
    print(f"digits: {data.n_train} training / {data.n_test} test images; every net has {args.depth} hidden "
          f"layers of {args.width} units, Adam lr {args.lr:g}, {args.epochs} epochs, batch 64")
    for name, description in VARIANTS.items():
        print(f"  {name:12} {description}")
    print()

    results = {}
    for variant in VARIANTS:
        start = time.perf_counter()
        result = train(variant, data, args)
        result["seconds"] = time.perf_counter() - start
        results[variant] = result

    print_gradient_table(results, args.epochs)
    print()
    ratio_header = "first/last layer gradient, epoch 1"
    print(f"{'variant':12}  {'final loss':>10}  {'test accuracy':>13}  {ratio_header:>34}  {'time':>6}")
    for variant, r in results.items():
        ratio = r["norms"][0][0] / r["norms"][-1][0]
        print(f"{variant:12}  {r['loss']:10.4f}  {r['accuracy']:13.3f}  {ratio:34.1e}  {r['seconds']:5.1f}s")
    if args.plot:
        print(f"saved {plot_norms(results, Path(args.plot) / 'vanishing_gradients.png', args)}")


if __name__ == "__main__":
    main()
