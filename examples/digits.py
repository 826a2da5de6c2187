"""Handwritten digits: a complete classification workflow on real data.

The bundled 8x8 digits (1,797 images, 10 classes; no download) are split into training,
validation and test sets; the pixels are standardised with statistics of the training part
only; a 64-128-64-10 ReLU network with dropout is trained with Adam on softmax
cross-entropy, watching validation loss and accuracy each epoch; early stopping ends
training once the validation loss has not improved for ``--patience`` epochs and puts back
the best epoch's weights. The test set is used once, at the end: accuracy 0.975 with the
default seed (0.96-0.98 across seeds, as the split changes; one test image is 0.0028).

With ``--checkpoint PATH`` the trained model, its history and the standardiser's statistics
are saved to one file, which is then loaded back (as a program that only predicts would) to
check that the restored model scores the same.

    python examples/digits.py                                   # CPU, a few seconds
    python examples/digits.py --device cuda                     # the same on a GPU
    python examples/digits.py --checkpoint digits.npz --plot digits.png
"""

from __future__ import annotations

import argparse

import numpy as np

import backprop as bp


def split_data(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train / validation / test arrays, standardised by the training part's statistics.

    The loader holds out 20% as the test set (stratified by digit); 15% of the rest becomes
    the validation set that early stopping watches, so the test set never steers training.
    """
    data = bp.datasets.digits(test_size=0.2, seed=seed)
    fit_rows, val_rows = bp.datasets.split_indices(
        data.n_train, test_size=0.15, seed=seed, stratify=data.y_train
    )
    scaler = bp.datasets.Standardizer().fit(data.X_train[fit_rows])
    return {
        "train": (scaler.transform(data.X_train[fit_rows]), data.y_train[fit_rows]),
        "val": (scaler.transform(data.X_train[val_rows]), data.y_train[val_rows]),
        "test": (scaler.transform(data.X_test), data.y_test),
        "scaler": scaler,
    }


def build_model(device: str, seed: int) -> bp.Sequential:
    """64 pixels -> 128 -> 64 -> 10 logits (softmax cross-entropy applies the softmax).

    1,221 training images are few for 17,000 weights: dropout (active in training only)
    keeps the network from memorising them, the tutorial's cure for overfitting.
    """
    return bp.Sequential(
        bp.Dense(64, 128, init="he"), bp.ReLU(), bp.Dropout(0.3),
        bp.Dense(128, 64, init="he"), bp.ReLU(), bp.Dropout(0.3),
        bp.Dense(64, 10),
        device=device, seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--epochs", type=int, default=100, help="at most this many epochs (default: 100)")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without a better val_loss before stopping (default: 10)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the initial weights and the shuffling")
    parser.add_argument("--checkpoint", metavar="PATH", help="save the trained model here, then load it back")
    parser.add_argument("--plot", metavar="PATH.png", help="save the loss and accuracy curves to this image file")
    args = parser.parse_args()

    data = split_data(args.seed)
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = data["train"], data["val"], data["test"]
    print(f"digits: {len(X_train)} training, {len(X_val)} validation, {len(X_test)} test images")

    model = build_model(args.device, args.seed)
    optimizer = bp.optim.Adam(model.parameters(), lr=args.lr)
    stopper = bp.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    history = model.fit(
        X_train, y_train, loss="cross_entropy", optimizer=optimizer, epochs=args.epochs, batch_size=32,
        validation_data=(X_val, y_val), metrics=["accuracy"], early_stopping=stopper, verbose=0,
    )

    print(f"{'epoch':>5}  {'loss':>7}  {'accuracy':>8}  {'val_loss':>8}  {'val_accuracy':>12}")
    shown = sorted({*range(0, len(history), 5), stopper.best_epoch - 1, len(history) - 1})
    for i in shown:
        mark = "  <- best val_loss" if history.epochs[i] == stopper.best_epoch else ""
        print(f"{history.epochs[i]:5d}  {history['loss'][i]:7.4f}  {history['accuracy'][i]:8.4f}  "
              f"{history['val_loss'][i]:8.4f}  {history['val_accuracy'][i]:12.4f}{mark}")
    if stopper.stopped_epoch is not None:
        print(f"early stopping after epoch {stopper.stopped_epoch}; restored the weights of epoch {stopper.best_epoch}")
    else:
        print(f"ran all {args.epochs} epochs; restored the weights of epoch {stopper.best_epoch}")

    test = model.evaluate(X_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    print(f"test loss {test['loss']:.4f}  test accuracy {test['accuracy']:.4f} on {model.device}")

    if args.plot:
        path = history.plot(args.plot, title="digits: 64-128-64-10 ReLU + dropout, Adam")
        print(f"saved the training curves to {path}")

    if args.checkpoint:
        # The best epoch's weights (early stopping put them back) and the scaling they expect.
        # No optimizer: this file is for predicting; fit(checkpoint=PATH) instead saves the
        # complete training state every epoch, to resume an interrupted run.
        model.save(args.checkpoint, epoch=stopper.best_epoch, history=history,
                   extra={"standardizer": data["scaler"].to_dict()})
        # What a program that only predicts would do: rebuild the model and the scaling from
        # the file, then score the raw (unscaled) test images.
        saved = bp.load_checkpoint(args.checkpoint, device=args.device)
        scaler = bp.datasets.Standardizer.from_dict(saved.extra["standardizer"])
        raw = bp.datasets.digits(test_size=0.2, seed=args.seed)
        restored = saved.model.evaluate(scaler.transform(raw.X_test), raw.y_test, loss="cross_entropy",
                                        metrics=["accuracy"])
        print(f"saved {args.checkpoint} (epoch {saved.epoch}); the reloaded model's test accuracy "
              f"{restored['accuracy']:.4f}")


if __name__ == "__main__":
    main()
