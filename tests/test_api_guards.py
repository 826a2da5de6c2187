"""The API refuses what would train nothing, undo training or compute silently wrong numbers:
values that overflow the model's dtype, ragged rows, a zero batch size, an optimizer of another
model, a trained model's layers reused, non-finite or complex weights loaded; and loading with
``strict=False`` reports what it skipped, as PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def model(seed: int = 0, dtype: str = "float32") -> bp.Sequential:
    return bp.Sequential(bp.Dense(2, 3), bp.ReLU(), bp.Dense(3, 1), seed=seed, dtype=dtype)


@pytest.mark.parametrize("where", ["predict", "fit X", "fit y", "evaluate"])
def test_values_beyond_float32_are_refused_in_a_float32_model(where: str) -> None:
    m = model()
    big, fine = np.array([[1e39, 0.0]]), np.array([[1.0, 0.0]])
    opt = bp.optim.SGD(m.parameters())
    with pytest.raises(ValueError, match=r"beyond what float32 can represent .* dtype='float64'|NaN or Inf"):
        if where == "predict":
            m.predict(big)
        elif where == "fit X":
            m.fit(big, [[1.0]], loss="mse", optimizer=opt, verbose=0)
        elif where == "fit y":
            m.fit(fine, [[1e39]], loss="mse", optimizer=opt, verbose=0)
        else:
            m.evaluate(big, [[1.0]], "mse")
    np.testing.assert_allclose(bp.to_numpy(model(dtype="float64").predict(big)).shape, (1, 1))  # float64 holds it


def test_ragged_rows_get_a_clear_error() -> None:
    with pytest.raises(ValueError, match="is ragged: its rows have different lengths"):
        model().predict([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_predict_batch_size_is_checked(bad: object) -> None:
    with pytest.raises(bp.InvalidParameterError, match="predict batch_size must be a positive integer"):
        model().predict([[1.0, 2.0]], batch_size=bad)  # type: ignore[arg-type]


def test_fit_refuses_an_optimizer_of_another_model() -> None:
    m, other = model(0), model(1)
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"not this model's \(0.W, 0.b, 2.W, \.\.\.\).*model.parameters\(\)"):
        m.fit([[1.0, 2.0]], [[1.0]], loss="mse", optimizer=bp.optim.SGD(other.parameters()), verbose=0)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    m.fit([[1.0, 2.0]], [[1.0]], loss="mse", optimizer=bp.optim.SGD(m.parameters()[2:]), verbose=0)  # a subset: fine


def test_a_trained_models_layers_are_not_re_initialised_in_a_new_model() -> None:
    trained = model()
    trained.fit([[1.0, 2.0]] * 4, [[1.0]] * 4, loss="mse", optimizer=bp.optim.SGD(trained.parameters()), verbose=0)
    weights = trained.state_dict()
    with pytest.raises(ValueError, match=r"already belongs to a built model .* re-initialise"):
        bp.Sequential(*trained.layers, bp.Sigmoid())
    with pytest.raises(ValueError, match="already belongs to a built model"):
        bp.Sequential(bp.Residual(trained.layers[0], bp.Dense(3, 2)))
    assert all(np.array_equal(weights[k], v) for k, v in trained.state_dict().items())
    nested = bp.Sequential(model(), bp.Sigmoid())  # a model as a layer: rebuilt by its parent, as documented
    assert next(p.name for p in nested.parameters()) == "0.0.W"


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_load_state_dict_refuses_non_finite_weights_and_changes_nothing(value: float) -> None:
    m = model(dtype="float64")
    state, before = m.state_dict(), m.state_dict()
    state["0.W"] = state["0.W"].copy()
    state["0.W"][0, 0] = value
    with pytest.raises(ValueError, match=r"'0.W' contains NaN or Inf"):
        m.load_state_dict(state)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_load_state_dict_refuses_complex_and_boolean_weights() -> None:
    m = model()
    for dtype in (np.complex64, np.bool_):
        state = m.state_dict()
        state["2.b"] = state["2.b"].astype(dtype)
        with pytest.raises(ValueError, match=r"'2.b' holds (complex64|bool) values, not real numbers"):
            m.load_state_dict(state)


def test_non_strict_loading_reports_what_it_skipped() -> None:
    source, target = model(1), bp.Sequential(bp.Dense(2, 3), bp.ReLU(), bp.Dense(3, 4), seed=2)
    state = source.state_dict()
    del state["2.W"], state["2.b"]  # the head differs: load only the body
    state["extra"] = np.zeros(3)
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["2.W", "2.b"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(target.state_dict()["0.W"], source.state_dict()["0.W"])
    with pytest.raises(ValueError, match="missing '2.W'"):
        target.load_state_dict(state)  # strict: nothing loaded, every difference listed


def test_a_model_that_cannot_fit_is_refused_before_anything_is_allocated() -> None:
    import tracemalloc  # noqa: PLC0415

    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match=r"10,001,100,010 parameter values, which need about .* available"):
            bp.Sequential(bp.Dense(100_000, 100_000), bp.Dense(100_000, 10))
        assert tracemalloc.get_traced_memory()[1] < 64 * 2**20  # the peak: nothing of the 40 GB was drawn
    finally:
        tracemalloc.stop()


def test_layers_know_their_size_before_they_are_built() -> None:
    assert bp.Dense(3, 4).size_estimate() == 16 and bp.Dense(3, 4, bias=False).size_estimate() == 12
    assert bp.BatchNorm(5).size_estimate() == 20 and bp.LayerNorm(5).size_estimate() == 10
    model = bp.Sequential(bp.Dense(3, 4), bp.BatchNorm(4), bp.ReLU(), seed=0)
    assert sum(layer.size_estimate() for layer in model.walk()) == sum(v.size for v in model.state_dict().values())


def test_fit_refuses_data_that_cannot_fit_before_copying_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from backprop import model_checks  # noqa: PLC0415 - its memory probe is replaced

    m = model()
    monkeypatch.setattr(model_checks, "available_host_memory", lambda: 10_000_000)  # 10 MB left
    X = np.zeros((3_000_000, 2))  # float64 (pages never touched): its float32 copy, 24 MB, does not fit
    with pytest.raises(MemoryError, match=r"3,000,000 samples of 2 features .* needs about 25.1 MB .* only 10 MB are"):
        m.fit(X, np.zeros((3_000_000, 1)), loss="mse", optimizer=bp.optim.SGD(m.parameters()), verbose=0)
    # the same samples already in the model's dtype are trained on in place: only the shuffled
    # rows gathered at a time (1 MiB) and a batch's activations count
    model_checks.check_data_fits(m, np.zeros((3_000_000, 2), np.float32), 32)
    m.fit(X[:100], np.zeros((100, 1)), loss="mse", optimizer=bp.optim.SGD(m.parameters()), verbose=0)  # fits


def test_fit_reads_no_memory_limits_for_small_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the limits costs a quarter of a millisecond a call: needs under
    `UNCHECKED_BYTES` skip it, larger ones do not."""
    from backprop import model_checks  # noqa: PLC0415 - its memory probe is replaced

    m = model()
    reads: list[int] = []
    monkeypatch.setattr(model_checks, "available_host_memory", lambda: reads.append(1) or 10**12)
    m.fit(np.zeros((1000, 2)), np.zeros((1000, 1)), loss="mse", optimizer="sgd", verbose=0)
    assert reads == []
    rows = model_checks.UNCHECKED_BYTES // 8 + 1  # as float32, two features: just over the limit
    model_checks.check_data_fits(m, np.zeros((rows, 2)), 32)
    assert reads == [1]


def test_data_already_on_the_device_is_not_counted_as_a_copy(
    device: bp.Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a device array as large as the free memory left beside it was refused, though
    `fit` trains on it in place; in another dtype it is cast, a copy, and counts."""
    from backprop import model_checks  # noqa: PLC0415 - its memory probes are replaced

    m = bp.Sequential(bp.Dense(2, 3), bp.ReLU(), bp.Dense(3, 1), device=device, seed=0)
    backend = m.backend
    monkeypatch.setattr(model_checks, "available_host_memory", lambda: 10_000_000)
    monkeypatch.setattr(model_checks, "free_memory", lambda _device: 10_000_000)
    with backend.activate():
        X = backend.zeros((3_000_000, 2))  # 24 MB in float32, the model's dtype
        model_checks.check_data_fits(m, X, 32)
        X64 = backend.zeros((3_000_000, 2), dtype=backend.xp.float64)
    with pytest.raises(MemoryError, match="needs about 25.1 MB"):
        model_checks.check_data_fits(m, X64, 32)
