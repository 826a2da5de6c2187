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
    python examples/regression.py --plot sine_loss.png  # also save the loss curve
"""

from __future__ import annotations

import argparse

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
    parser.add_argument("--plot", metavar="PATH.png", help="save the loss curves to this image file")
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
        print(f"saved the loss curve to {history.plot(args.plot, title='sine regression: 1-32-32-1 tanh, MSE')}")


if __name__ == "__main__":
    main()
