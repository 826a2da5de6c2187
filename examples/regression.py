"""Regression: a small MLP learns y = sin(x) from noisy samples, with mean squared error.

The bundled synthetic ``sine`` data set draws x uniformly from [-pi, pi] and sets
y = sin(x) + 0.1 * N(0, 1), split 80/20 into training and test points. A 1-32-32-1 network
with tanh hidden layers ends in a plain Dense layer (a regression output is any real
number, so no activation) and is trained with Adam on `bp.losses.MSE`. x already lies in
[-pi, pi], a good scale for tanh, so no standardisation is needed here.

The noise sets a floor: even sin(x) itself has an expected MSE of 0.1^2 = 0.01 on these
targets, so a test MSE close to 0.01 means the network has learned the curve, not the noise.
Printed: the loss every few epochs, train and test MSE (and that floor on the test points),
and a few test points with target, prediction and the noise-free sin(x).

    python examples/regression.py                       # CPU, a few seconds
    python examples/regression.py --device cuda         # the same on a GPU
    python examples/regression.py --plot sine.png       # also save the fit and the loss curve

``--plot`` saves two panels: the training and test points with the fitted curve and sin(x),
and the training loss per epoch against the noise floor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import backprop as bp


def build_model(device: str, seed: int) -> bp.Sequential:
    """1 input -> 32 -> 32 -> 1 output; tanh hidden layers, a linear output."""
    return bp.Sequential(
        bp.Dense(1, 32), bp.Tanh(),
        bp.Dense(32, 32), bp.Tanh(),
        bp.Dense(32, 1),
        device=device, seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--epochs", type=int, default=600, help="training epochs (default: 600)")
    parser.add_argument("--lr", type=float, default=0.005, help="Adam learning rate (default: 0.005)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the initial weights and the shuffling")
    parser.add_argument("--plot", metavar="PATH.png", help="save the fitted curve and the loss to this image file")
    args = parser.parse_args()

    data = bp.datasets.sine(n=256, noise=0.1, seed=args.seed)
    print(f"sine: {data.n_train} training and {data.n_test} test points of y = sin(x) + 0.1 * noise")

    model = build_model(args.device, args.seed)
    optimizer = bp.optim.Adam(model.parameters(), lr=args.lr)
    history = model.fit(data.X_train, data.y_train, loss=bp.losses.MSE(), optimizer=optimizer,
                        epochs=args.epochs, batch_size=32, verbose=0)
    for i in sorted({*range(0, len(history), max(1, len(history) // 6)), len(history) - 1}):
        print(f"epoch {history.epochs[i]:4d}  training loss (MSE) {history['loss'][i]:.4f}")

    train_mse = model.evaluate(data.X_train, data.y_train, loss="mse")["loss"]
    test_mse = model.evaluate(data.X_test, data.y_test, loss="mse")["loss"]
    floor = float(np.mean((np.sin(data.X_test) - data.y_test) ** 2))
    print(f"train MSE {train_mse:.4f}  test MSE {test_mse:.4f}  (sin(x) itself scores {floor:.4f} on the test points)"
          f" on {model.device}")

    print(f"{'x':>7}  {'target':>7}  {'prediction':>10}  {'sin(x)':>7}")
    order = np.argsort(data.X_test[:, 0])
    picks = order[np.linspace(0, len(order) - 1, 7).round().astype(int)]  # 7 points spread over [-pi, pi]
    predictions = bp.to_numpy(model.predict(data.X_test[picks]))
    for x, target, prediction in zip(data.X_test[picks, 0], data.y_test[picks, 0], predictions[:, 0]):
        print(f"{x:7.3f}  {target:7.3f}  {prediction:10.3f}  {np.sin(x):7.3f}")

    if args.plot:
        print(f"saved the fit and the loss curve to {plot_fit(model, data, history, floor, Path(args.plot))}")


def plot_fit(model: bp.Sequential, data: bp.datasets.Dataset, history: bp.History, floor: float, path: Path) -> Path:
    """Left: the data, the network's curve over [-pi, pi] and sin(x); right: the loss per epoch."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib is needed only for --plot

    x = np.linspace(-np.pi, np.pi, 400, dtype=np.float32).reshape(-1, 1)
    fitted = bp.to_numpy(model.predict(x))[:, 0]
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    figure.suptitle("sine regression: 1-32-32-1 tanh network, MSE, Adam")
    fit, loss = figure.subplots(1, 2, width_ratios=(3, 2))
    fit.scatter(data.X_train[:, 0], data.y_train[:, 0], s=12, color="0.6", label=f"training points ({data.n_train})")
    fit.scatter(data.X_test[:, 0], data.y_test[:, 0], s=22, marker="D", color="tab:orange",
                edgecolor="black", linewidth=0.4, label=f"test points ({data.n_test})")
    fit.plot(x[:, 0], np.sin(x[:, 0]), color="black", linestyle="--", linewidth=1.2, label="sin(x), noise-free")
    fit.plot(x[:, 0], fitted, color="tab:blue", linewidth=2.2, label="the network's prediction")
    fit.set(xlabel="x", ylabel="y", title="fit")
    fit.grid(True, alpha=0.3)
    fit.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncols=2, fontsize="small", frameon=False)
    loss.plot(history.epochs, history["loss"], color="tab:blue", label="training MSE")
    loss.axhline(floor, color="black", linestyle="--", linewidth=1.0,
                 label=f"noise floor on the test points ({floor:.4f})")
    loss.set(xlabel="epoch", ylabel="MSE (log scale)", yscale="log", title="loss")
    loss.grid(True, alpha=0.3)
    loss.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize="small", frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


if __name__ == "__main__":
    main()
