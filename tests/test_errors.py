"""Bad input gets a clear ValueError/TypeError that says what to do, never a deep traceback."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def xor_model(device="cpu") -> bp.Sequential:
    return bp.Sequential(bp.Dense(2, 4), bp.ReLU(), bp.Dense(4, 1), bp.Sigmoid(), device=device)


def classifier(device="cpu") -> bp.Sequential:
    return bp.Sequential(bp.Dense(2, 4), bp.ReLU(), bp.Dense(4, 3), device=device)


X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def test_wrong_feature_count_names_the_layer_and_both_shapes(device: bp.Device) -> None:
    with pytest.raises(
        ValueError, match=r"layer '0' \(Dense\(2, 4\)\) expects inputs of shape \(batch, 2\); got shape \(4, 3\)"
    ):
        xor_model(device).predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"2-D.*X.reshape\(1, -1\)"):
        xor_model(device).predict(np.ones(2))


def test_layers_that_do_not_fit_together() -> None:
    with pytest.raises(
        ValueError, match=r"layer '2' \(Dense\(5, 1\)\) expects 5 input features but the layer before it produces 4"
    ):
        bp.Sequential(bp.Dense(2, 4), bp.ReLU(), bp.Dense(5, 1))
    with pytest.raises(TypeError, match="argument 1 is 'relu'"):
        bp.Sequential(bp.Dense(2, 4), "relu")
    relu = bp.ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        bp.Sequential(bp.Dense(2, 2), relu, bp.Dense(2, 2), relu)
    with pytest.raises(TypeError, match="positive int"):
        bp.Dense(2.5, 3)
    with pytest.raises(ValueError, match="positive int"):
        bp.Dense(0, 3)


def test_wrong_label_shape(device: bp.Device) -> None:
    # one target per sample is unambiguous for one output (it used to be refused): read as a column
    model = xor_model(device)
    assert model.backprop(X, y.ravel(), bp.losses.BCE()) == model.backprop(X, y, bp.losses.BCE())
    with pytest.raises(ValueError, match=r"y must have shape \(4, 3\).*got \(4,\): one value per sample"):
        classifier(device).backprop(X, y.ravel(), bp.losses.MSE())
    with pytest.raises(ValueError, match=r"shape \(4,\); got \(4, 3\).*argmax"):
        classifier(device).backprop(X, np.eye(3)[[0, 1, 2, 0]], bp.losses.SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\).*got \(3, 1\)"):
        xor_model(device).backprop(X, y[:3], bp.losses.BCE())


def test_labels_out_of_range_or_not_integers(device: bp.Device) -> None:
    model = classifier(device)
    with pytest.raises(
        ValueError, match=r"labels from 0 to 3, but the model has 3 outputs, so labels must lie in \[0, 2\]"
    ):
        model.backprop(X, np.array([0, 1, 2, 3]), "cross_entropy")
    with pytest.raises(ValueError, match=r"labels from -1 to 2"):
        model.backprop(X, np.array([0, -1, 2, 1]), "cross_entropy")
    with pytest.raises(ValueError, match="integer class labels"):
        model.backprop(X, np.array([0, 0.5, 1, 1]), "cross_entropy")
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        xor_model(device).backprop(X, 2 * y, bp.losses.BCE())
    # float labels holding whole numbers are fine
    model.backprop(X, np.array([0.0, 1.0, 2.0, 1.0]), "cross_entropy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_inputs(device: bp.Device, bad: float) -> None:
    Xb = X.copy()
    Xb[1, 0] = bad
    model = xor_model(device)
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    for call in (lambda: model.predict(Xb), lambda: model.backprop(Xb, y, "bce"),
                 lambda: model.fit(Xb, y, loss="bce", optimizer=opt, verbose=0)):
        with pytest.raises(ValueError, match="NaN or Inf"):
            call()
    yb = y.copy()
    yb[0, 0] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.backprop(X, yb, "bce")
    with pytest.raises(ValueError, match="NaN or Inf"):
        xor_model(device).backprop(model.backend.from_host(Xb), y, "bce")


@pytest.mark.parametrize("spec", ["gpu", "GPU:0", "tpu", "cuda:x", "cuda:-1", "", "cpu:0"])
def test_unknown_device_strings(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown device") as err:
        bp.Sequential(bp.Dense(2, 2), device=spec)
    assert "'cuda:N'" in str(err.value)
    if spec.lower().startswith("gpu"):
        assert "spelled 'cuda'" in str(err.value)


def test_device_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="device must be a string"):
        bp.Sequential(bp.Dense(2, 2), device=0)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown init 'glorious'.*he_uniform.*xavier"):
        bp.Dense(2, 2, init="glorious")
    with pytest.raises(ValueError, match="unknown activation 'swish'.*gelu.*relu"):
        bp.layers.get_activation("swish")
    with pytest.raises(ValueError, match="dtype must be one of 'float32', 'float64'"):
        bp.Sequential(bp.Dense(2, 2), dtype="int32")


def test_loss_that_does_not_fit_the_model_output() -> None:
    logits_model = bp.Sequential(bp.Dense(2, 1))
    with pytest.raises(ValueError, match="expects probabilities.*BCEWithLogits"):
        logits_model.backprop(X, y, bp.losses.BCE())
    with pytest.raises(ValueError, match="applies the sigmoid/softmax itself.*remove that last layer"):
        xor_model().backprop(X, y, bp.losses.BCEWithLogits())


def test_mixed_devices_name_the_layer_both_devices_and_the_fix() -> None:
    strict = pytest.importorskip("array_api_strict")
    model = xor_model(bp.Device(namespace="array_api_strict"))
    elsewhere = strict.asarray(X, device=strict.Device("device1"))
    with pytest.raises(bp.DeviceMismatchError) as err:
        model.predict(elsewhere)
    message = str(err.value)
    assert "layer '0' (Dense(2, 4))" in message
    assert "array_api_strict:device1" in message and "array_api_strict:CPU_DEVICE" in message
    assert "bp.to_numpy(x)" in message
    with pytest.raises(bp.DeviceMismatchError, match="is on array_api_strict:CPU_DEVICE but the model is on cpu"):
        xor_model("cpu").predict(strict.asarray(X))
    with pytest.raises(bp.DeviceMismatchError):
        xor_model("cpu").backprop(X, strict.asarray(y), "bce")
    assert isinstance(bp.DeviceMismatchError("x"), ValueError)


def test_torch_tensors_are_refused_with_the_conversion() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"tensor.detach\(\).cpu\(\).numpy\(\)"):
        xor_model().predict(torch.zeros(4, 2))


def test_fit_arguments() -> None:
    model = xor_model()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
        model.fit(X, y, loss="bce", optimizer=opt, batch_size=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        model.fit(X, y, loss="bce", optimizer=opt, epochs=1.5)
    with pytest.raises(ValueError, match="no samples"):
        model.fit(X[:0], y[:0], loss="bce", optimizer=opt)


def test_forgotten_and_malformed_arguments_are_named() -> None:
    """Found by feeding the public API odd arguments: each used to fail deep inside (an
    AttributeError from a shifted argument, int() on a string, a dtype-object message)."""
    model = xor_model()
    pair = r"validation_data must be a pair \(X_val, y_val\); got"
    with pytest.raises(bp.InvalidParameterError, match=pair + " a tuple of 1$"):
        model.fit(X, y, loss="bce", optimizer="sgd", validation_data=(X,), verbose=0)
    with pytest.raises(bp.InvalidParameterError, match="got a tuple of 3 \\(sample weights are not supported\\)"):
        model.fit(X, y, loss="bce", optimizer="sgd", validation_data=(X, y, np.ones(4)), verbose=0)
    with pytest.raises(bp.InvalidParameterError, match="got ndarray"):
        model.fit(X, y, loss="bce", optimizer="sgd", validation_data=X, verbose=0)
    with pytest.raises(TypeError, match="^y is None: pass an array$"):
        model.fit(X, None, loss="bce", optimizer="sgd", verbose=0)
    with pytest.raises(TypeError, match="^y is None: pass an array$"):
        classifier().evaluate(X, None, loss="cross_entropy")
    with pytest.raises(TypeError, match=r"the input to layer '0' \(Dense\(2, 4\)\) is None: pass an array"):
        model.predict(None)
    with pytest.raises(bp.InvalidParameterError, match="Sequential seed must be an integer; got str 'abc'"):
        bp.Sequential(bp.Dense(2, 1), seed="abc")
    with pytest.raises(bp.InvalidParameterError, match="threshold must be a finite number; got nan"):
        bp.Sequential(bp.Dense(2, 1), seed=0).predict_labels(X, threshold=float("nan"))
    assert bp.Sequential(bp.Dense(2, 1), seed=np.int64(-3)).seed == 2**63 - 3  # NumPy ints and negatives, as before


def test_options_of_the_wrong_kind_are_refused_up_front(tmp_path) -> None:
    """Each was taken for its truth or failed deep inside: shuffle="no" shuffled, a list as
    history failed in list.append, an int as scheduler or world as AttributeError."""
    model = xor_model()
    fit = {"loss": "bce", "optimizer": "sgd", "verbose": 0}
    for name, value in (("shuffle", "no"), ("record_grad_norms", "yes"), ("graph", 1)):
        with pytest.raises(bp.InvalidParameterError, match=f"fit {name} must be True or False; got"):
            model.fit(X, y, **fit, **{name: value})
    with pytest.raises(bp.InvalidParameterError, match="fit history must be a bp.History"):
        model.fit(X, y, **fit, history=[1, 2])
    world = r"fit distributed must be the world of bp.distributed.init\(\); got int"
    with pytest.raises(bp.InvalidParameterError, match=world):
        model.fit(X, y, **fit, distributed=3)
    with pytest.raises(bp.InvalidParameterError, match="scheduler must be a bp.optim.lr_scheduler schedule"):
        model.fit(X, y, **fit, scheduler=3)
    with pytest.raises(TypeError, match=r"Adam takes the model's parameters \(model.parameters\(\)\); got int 3"):
        bp.optim.Adam(3)  # type: ignore[arg-type]
    with pytest.raises(bp.InvalidParameterError, match="LeakyReLU alpha must be a float; got str"):
        bp.LeakyReLU("a")  # type: ignore[arg-type]
    with pytest.raises(bp.InvalidParameterError, match="LeakyReLU alpha must be a finite number; got nan"):
        bp.LeakyReLU(float("nan"))
    with pytest.raises(bp.InvalidParameterError, match="Dense bias must be True or False; got str 'yes'"):
        bp.Dense(2, 3, bias="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="load_state_dict takes a state dict, names to arrays"):
        model.load_state_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(bp.InvalidParameterError, match="load_state_dict strict must be True or False"):
        model.load_state_dict(model.state_dict(), strict="no")  # type: ignore[arg-type]
    with pytest.raises(bp.InvalidParameterError, match="CSVLogger path .* is a directory: name a file, such as"):
        bp.callbacks.CSVLogger(tmp_path)
    with pytest.raises(bp.InvalidParameterError, match="EarlyStopping min_delta must be a finite number; got nan"):
        bp.EarlyStopping(min_delta=float("nan"))
    (tmp_path / "events").touch()
    with pytest.raises(bp.InvalidParameterError, match="TensorBoard log_dir .* is a file: name a folder"):
        bp.callbacks.TensorBoard(tmp_path / "events")
    with pytest.raises(bp.InvalidParameterError, match="evaluate batch_size must be a positive integer; got 0"):
        model.evaluate(X, y, loss="bce", batch_size=0)
    with pytest.raises(bp.InvalidParameterError, match="summary print_fn must be a function"):
        model.summary(print_fn=3)  # type: ignore[arg-type]
    assert model.fit(X, y, **fit, shuffle=np.bool_(False), graph=False)  # NumPy's booleans are booleans


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_diverging_training_names_the_epoch() -> None:
    model = bp.Sequential(bp.Dense(2, 1), device="cpu", dtype="float32", seed=0)
    opt = bp.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(bp.TrainingDivergedError, match=r"in epoch \d+.*Lower the learning rate \(now 1e\+30\)"):
        model.fit(1e10 * X, y, loss="mse", optimizer=opt, epochs=20, verbose=0)


def test_gradcheck_still_catches_a_wrong_gradient_above_its_rounding_floor() -> None:
    """The finite difference's rounding floor (eps_float64 * |L| / eps) is small: a gradient
    off by one part in 10^5 still fails."""
    model = bp.Sequential(bp.Dense(2, 3), bp.Tanh(), bp.Dense(3, 1), dtype="float64", seed=0)
    Xr, yr = np.random.default_rng(0).standard_normal((5, 2)), np.random.default_rng(1).standard_normal((5, 1))
    assert bp.gradcheck(model, Xr, yr, "mse").ok
    real = bp.Dense._backward

    def off(self, *args):  # type: ignore[no-untyped-def]
        out = real(self, *args)
        self.W.grad = self.W.grad * (1 + 1e-5)
        return out

    bp.Dense._backward = off  # type: ignore[method-assign]
    try:
        assert not bp.gradcheck(model, Xr, yr, "mse").ok
    finally:
        bp.Dense._backward = real  # type: ignore[method-assign]
