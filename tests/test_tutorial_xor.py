"""The tutorial's XOR network, reproduced on every backend."""

from __future__ import annotations

import numpy as np

import backprop as bp
from helpers import host

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([[0], [1], [1], [0]], dtype=np.float64)

# The final loss printed by ../shared/reference/seed_tutorial.py (layers [2, 4, 1], ReLU, sigmoid
# output, BCE, np.random.seed(42) weights * 0.01, plain gradient descent, lr 0.1, 2000 epochs).
# It is the reference program's output, the oracle this test holds us to; TUTORIAL.md gives 0.04462.
TUTORIAL_FINAL_LOSS = 0.04462451396588936


def tutorial_state() -> dict[str, np.ndarray]:
    """The tutorial's initial weights, transposed to our batch-first layout (W is (in, out))."""
    legacy = np.random.RandomState(42)  # the tutorial seeds NumPy's legacy global generator with 42
    W1 = legacy.randn(4, 2) * 0.01
    W2 = legacy.randn(1, 4) * 0.01
    return {"0.W": W1.T, "0.b": np.zeros(4), "2.W": W2.T, "2.b": np.zeros(1)}


def test_tutorial_xor_final_loss_matches_reference(device: bp.Device) -> None:
    model = bp.Sequential(bp.Dense(2, 4), bp.ReLU(), bp.Dense(4, 1), bp.Sigmoid(), device=device, dtype="float64")
    model.load_state_dict(tutorial_state())
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    history = model.fit(X, Y, loss=bp.losses.BCE(), optimizer=opt, epochs=2000, batch_size=4, shuffle=False, verbose=0)
    assert len(history["loss"]) == 2000
    assert abs(history["loss"][-1] - TUTORIAL_FINAL_LOSS) < 1e-9
    assert (host(model.predict(X)) > 0.5).astype(int).ravel().tolist() == [0, 1, 1, 0]


def test_readme_xor_example_trains(device: bp.Device) -> None:
    model = bp.Sequential(
        bp.Dense(2, 16, init="he"), bp.ReLU(), bp.Dense(16, 1, init="xavier"), bp.Sigmoid(),
        device=device, dtype="float32", seed=42,
    )
    opt = bp.optim.Adam(model.parameters(), lr=0.05)
    history = model.fit(X.astype(np.float32), Y.astype(np.float32), loss=bp.losses.BCE(), optimizer=opt,
                        epochs=500, batch_size=4, verbose=0)
    assert history["loss"][-1] < 0.05
    assert (host(model.predict(X)) > 0.5).astype(int).ravel().tolist() == [0, 1, 1, 0]
