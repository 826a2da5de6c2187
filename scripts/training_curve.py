"""Draw the README's training-curve picture from a real training run.

Trains the digits model of the documentation's Training page (docs/training.md, "fit": 64-128-10
with dropout, Adam, a cosine schedule, early stopping on the validation loss) on the bundled
digits, and draws its training and validation loss and accuracy, epoch by epoch, with
matplotlib's Agg canvas (no window, no pyplot):

    python scripts/training_curve.py                       # writes docs/images/training-curve.png
    python scripts/training_curve.py --out /tmp/curve.png --epochs 5

It prints the run's final figures, which the caption in the README quotes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's backprop, also when it is not installed

import backprop as bp  # noqa: E402  (after the path is set)

__all__ = ["main", "train"]


def train(epochs: int) -> bp.History:
    """The Training page's digits run, as written there (seed 0, so the same run every time)."""
    data, _ = bp.datasets.load("digits", test_size=0.2, seed=0).standardize()
    model = bp.Sequential(bp.Dense(64, 128, init="he"), bp.ReLU(), bp.Dropout(0.3), bp.Dense(128, 10), seed=0)
    opt = bp.optim.Adam(model.parameters(), lr=2e-3)
    return model.fit(
        data.X_train, data.y_train, loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=32,
        validation_data=(data.X_test, data.y_test), metrics=["accuracy"],
        scheduler=bp.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
        early_stopping=bp.EarlyStopping(monitor="val_loss", patience=5), verbose=0,
    )


def draw(history: bp.History, out: Path) -> None:
    """Loss and accuracy side by side, training and validation in each, written to ``out``."""
    # matplotlib is optional for the library, needed by this script only
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(9.0, 3.4), layout="constrained")
    for index, (name, label) in enumerate([("loss", "cross-entropy loss"), ("accuracy", "accuracy")]):
        ax = figure.add_subplot(1, 2, index + 1)
        ax.plot(history.epochs, history[name], label="training", color="tab:blue")
        ax.plot(history.epochs, history["val_" + name], label="validation (360 held-out digits)", color="tab:orange")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("bp.Sequential 64-128-10 on the bundled 8x8 digits (docs/training.md)", fontsize="medium")
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "training-curve.png")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    history = train(args.epochs)
    draw(history, args.out)
    last = {key: round(history[key][-1], 3) for key in ("loss", "val_loss", "val_accuracy")}
    print(f"{len(history)} of {args.epochs} epochs (early stopping restores the best weights); the last: {last}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
