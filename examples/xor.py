"""The tutorial's XOR network, reproduced: 2-4-1, ReLU then sigmoid, binary cross-entropy,
plain gradient descent (lr 0.1, full batch, 2000 epochs) from the tutorial's own initial
weights (``np.random.seed(42)``, ``0.01 * randn``). Final loss 0.04462, predictions [0, 1, 1, 0].

    python examples/xor.py                      # CPU
    python examples/xor.py --device cuda        # the same script on a GPU
    python examples/xor.py --plot xor_loss.png  # also save the loss curve, as the tutorial plots it
"""

from __future__ import annotations

import argparse

import numpy as np

import backprop as bp


def tutorial_weights() -> dict[str, np.ndarray]:
    """The tutorial's initial weights, transposed to backprop's batch-first layout (W is (in, out))."""
    legacy = np.random.RandomState(42)  # the tutorial seeds NumPy's legacy global generator with 42
    W1 = legacy.randn(4, 2) * 0.01
    W2 = legacy.randn(1, 4) * 0.01
    return {"0.W": W1.T, "0.b": np.zeros(4), "2.W": W2.T, "2.b": np.zeros(1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--plot", metavar="PATH.png", help="save the loss curve to this image file")
    args = parser.parse_args()

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    model = bp.Sequential(
        bp.Dense(2, 4), bp.ReLU(), bp.Dense(4, 1), bp.Sigmoid(),
        device=args.device, dtype="float64",
    )
    model.load_state_dict(tutorial_weights())
    opt = bp.optim.SGD(model.parameters(), lr=args.lr)
    history = model.fit(X, y, loss=bp.losses.BCE(), optimizer=opt, epochs=args.epochs, batch_size=4,
                        shuffle=False, verbose=0)
    for epoch in range(0, args.epochs, max(1, args.epochs // 10)):
        print(f"epoch {epoch + 1:5d}  loss {history['loss'][epoch]:.4f}")
    predictions = (bp.to_numpy(model.predict(X)) > 0.5).astype(int).ravel().tolist()
    print(f"final loss {history['loss'][-1]:.5f}  predictions {predictions}  (truth [0, 1, 1, 0]) on {model.device}")
    if args.plot:
        # The tutorial plots the loss alone; the full history also records the (constant) lr.
        loss_only = bp.History({"loss": history["loss"]}, history.epochs)
        print(f"saved the loss curve to {loss_only.plot(args.plot, title='XOR: the tutorial network')}")


if __name__ == "__main__":
    main()
