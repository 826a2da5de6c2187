"""What users of Keras and PyTorch reach for on a model: ``summary()``, ``count_params()``,
``named_parameters()``, ``len(model)``, ``model[i]``, ``model[i:j]`` and iterating the layers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp
from helpers import host, torch_twin


def model(device="cpu", dtype="float32", seed=0) -> bp.Sequential:
    return bp.Sequential(
        bp.Dense(4, 8),
        bp.ReLU(),
        bp.BatchNorm(8),
        bp.Residual(bp.Dense(8, 8), bp.Tanh()),
        bp.Dense(8, 3),
        device=device,
        dtype=dtype,
        seed=seed,
    )


def size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


# ---------------------------------------------------------------------------------- summary
def test_summary_counts_every_variable_and_its_bytes(dtype: str) -> None:
    m = model(dtype=dtype)
    summary = m.summary(print_fn=None)
    state = m.state_dict()
    assert summary.total == sum(v.size for v in state.values()) == m.count_params()
    assert summary.trainable == sum(size(p.shape) for p in m.parameters())
    assert summary.non_trainable == 16  # BatchNorm(8): running mean and variance
    assert summary.size_bytes == sum(v.size for v in state.values()) * np.dtype(dtype).itemsize
    assert summary.dtype == dtype
    per_layer = [sum(v.size for k, v in state.items() if k.split(".")[0] == str(i)) for i in range(len(m))]
    assert [row.params for row in summary.rows] == per_layer
    assert [row.name for row in summary.rows] == ["0", "1", "2", "3", "4"]
    assert [row.layer for row in summary.rows] == ["Dense(4, 8)", "ReLU()", "BatchNorm(8)",
                                                   "Residual(Dense(8, 8), Tanh())", "Dense(8, 3)"]


def test_summary_output_shapes_are_those_the_layers_give(device: bp.Device, rng: np.random.Generator) -> None:
    m = model(device)
    X = rng.standard_normal((5, 4))
    widths = [host(m[: i + 1].predict(X)).shape[1] for i in range(len(m))]
    assert [row.output_shape for row in m.summary(print_fn=None).rows] == [(None, w) for w in widths]


def test_summary_trainable_count_is_pytorchs() -> None:
    pytest.importorskip("torch")
    m = model(dtype="float64")
    twin = torch_twin(m)
    assert m.summary(print_fn=None).trainable == sum(p.numel() for p in twin.parameters())
    buffers = sum(b.numel() for name, b in twin.named_buffers() if not name.endswith("num_batches_tracked"))
    assert m.summary(print_fn=None).non_trainable == buffers


def test_summary_prints_the_table_once_and_returns_it(capsys: pytest.CaptureFixture[str]) -> None:
    m = model()
    summary = m.summary()
    printed = capsys.readouterr().out
    assert printed == str(summary) + "\n"
    lines = printed.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert lines[2].split() == ["0", "Dense(4,", "8)", "(None,", "8)", "40"]
    assert "Total params: 171 (684 bytes)" in lines
    assert "Trainable params: 155 (620 bytes)" in lines
    assert "Non-trainable params: 16 (64 bytes)" in lines
    assert repr(summary) == "ModelSummary(5 layers, 171 params: 155 trainable, 16 non-trainable, 684 bytes in float32)"
    seen: list[str] = []
    m.summary(print_fn=seen.append)
    assert seen == [str(summary)] and capsys.readouterr().out == ""


def test_summary_takes_the_input_width_where_no_layer_states_it() -> None:
    m = bp.Sequential(bp.ReLU(), bp.Tanh(), seed=0)
    assert [row.output_shape for row in m.summary(print_fn=None).rows] == [(None, None), (None, None)]
    assert "(None, ?)" in str(m.summary(print_fn=None))
    assert [row.output_shape for row in m.summary(in_features=3, print_fn=None).rows] == [(None, 3), (None, 3)]
    leading = bp.Sequential(bp.ReLU(), bp.Dense(4, 2), seed=0)  # the Dense states it: 4
    assert [row.output_shape for row in leading.summary(print_fn=None).rows] == [(None, 4), (None, 2)]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_summary_refuses_a_bad_input_width(bad: object) -> None:
    with pytest.raises(bp.InvalidParameterError, match="summary in_features must be a positive integer"):
        model().summary(in_features=bad, print_fn=None)  # type: ignore[arg-type]


def test_summary_refuses_an_input_width_the_model_contradicts() -> None:
    with pytest.raises(ValueError, match="the model takes 4 input features, not in_features=5"):
        model().summary(in_features=5, print_fn=None)


# ---------------------------------------------------------------------------------- names and counts
def test_named_parameters_are_the_trainable_variables_by_name() -> None:
    m = model()
    named = list(m.named_parameters())
    assert [(name, id(p)) for name, p in named] == [(p.name, id(p)) for p in m.parameters()]
    assert [name for name, _ in named] == ["0.W", "0.b", "2.gamma", "2.beta", "3.block.0.W", "3.block.0.b",
                                           "4.W", "4.b"]
    everything = [name for name, _ in m.named_variables()]
    assert set(everything) - {name for name, _ in named} == {"2.running_mean", "2.running_var"}


def test_named_parameters_follow_pytorchs_layer_positions() -> None:
    pytest.importorskip("torch")
    m = model(dtype="float64")
    ours = [name.rsplit(".", 1)[0] for name, _ in m.named_parameters()]
    theirs = [name.rsplit(".", 1)[0] for name, _ in torch_twin(m).named_parameters()]
    assert ours == theirs  # "0", "0", "2", "2", "3.block.0", ... in both


def test_count_params_is_keras_total_of_every_variable() -> None:
    m = model()
    assert m.count_params() == 4 * 8 + 8 + 4 * 8 + 8 * 8 + 8 + 8 * 3 + 3
    assert bp.Sequential(bp.ReLU(), seed=0).count_params() == 0


# ---------------------------------------------------------------------------------- a sequence of layers
def test_len_index_and_iteration_give_the_layers() -> None:
    m = model()
    assert len(m) == 5 == len(m.layers)
    assert list(m) == m.layers
    assert m[0] is m.layers[0] and m[-1] is m.layers[4] and m[np.int64(2)] is m.layers[2]
    assert bool(bp.Sequential(seed=0))  # an empty model is still a model, not a false empty sequence
    assert len(m[3].block) == 2 and isinstance(m[3].block[1], bp.Tanh)  # containers inside too


@pytest.mark.parametrize(("index", "error", "message"), [
    (5, IndexError, "layer index 5 is out of range: the model has 5 layers"),
    (-6, IndexError, "layer index -6 is out of range"),
    ("0", TypeError, "indexed by an integer or a slice"),
    (1.0, TypeError, "indexed by an integer or a slice"),
    (True, TypeError, "indexed by an integer or a slice"),
])
def test_a_bad_index_says_what_is_wrong(index: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        model()[index]  # type: ignore[index]


def test_a_slice_is_a_model_sharing_the_layers(device: bp.Device, rng: np.random.Generator) -> None:
    m = model(device)
    X = rng.standard_normal((6, 4))
    head, tail = m[:2], m[2:]
    assert isinstance(tail, bp.Sequential) and tail.layers == m.layers[2:]
    assert all(a is b for a, b in zip(tail, m.layers[2:]))
    assert (head.in_features, head.out_features, tail.in_features, tail.out_features) == (4, 8, 8, 3)
    assert (tail.device, tail.dtype, tail.seed) == (m.device, m.dtype, m.seed)
    assert [name for name, _ in tail.named_parameters()][:2] == ["2.gamma", "2.beta"]  # names kept, as PyTorch's
    np.testing.assert_array_equal(host(tail.predict(head.predict(X))), host(m.predict(X)))
    np.testing.assert_array_equal(host(m[1:][1:].predict(head.predict(X))), host(m.predict(X)))  # a slice of a slice
    assert len(m[5:]) == 0
    np.testing.assert_array_equal(host(m[5:].predict(X)), X.astype(np.float32))


def test_a_slice_computes_what_pytorchs_slice_does(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    m = model(dtype="float64")
    twin = torch_twin(m).eval()
    H = rng.standard_normal((6, 8))
    with torch.no_grad():
        expected = twin[2:](torch.from_numpy(H)).numpy()
    np.testing.assert_allclose(host(m[2:].predict(H)), expected, rtol=1e-12, atol=1e-12)


def test_training_a_slice_trains_the_shared_layers_in_the_whole_model(rng: np.random.Generator) -> None:
    m = model()
    before = m.state_dict()
    tail = m[4:]
    H = rng.standard_normal((16, 8)).astype(np.float32)
    tail.fit(H, rng.integers(0, 3, 16), loss="cross_entropy", optimizer=bp.optim.Adam(tail.parameters()),
             epochs=2, verbose=0)
    after = m.state_dict()
    assert not np.array_equal(after["4.W"], before["4.W"])
    assert all(np.array_equal(after[k], before[k]) for k in before if not k.startswith("4."))
    np.testing.assert_array_equal(host(m[4].W.data), after["4.W"])


def test_loading_weights_through_a_slice_reaches_the_whole_models_buffer() -> None:
    m = model()
    tail = m[3:]
    new = {name: np.full(value.shape, 0.25, dtype=value.dtype) for name, value in tail.state_dict().items()}
    tail.load_state_dict(new)
    state = m.state_dict()  # read from the whole model's flat buffer
    assert all(np.array_equal(state[name], value) for name, value in new.items())
    assert not np.array_equal(state["0.W"], np.full((4, 8), 0.25))
    m.fit(np.ones((4, 4), np.float32), [0, 1, 2, 0], loss="cross_entropy", optimizer=bp.optim.SGD(m.parameters()),
          epochs=1, verbose=0)  # the buffer still holds every parameter: the whole model trains


@pytest.mark.parametrize("method", ["save", "to"])
def test_a_slice_cannot_be_saved_or_moved_alone(method: str, tmp_path) -> None:
    tail = model()[2:]
    args = (tmp_path / "tail.npz",) if method == "save" else ("cpu", "float64")
    with pytest.raises(ValueError, match=f"a slice of another .* call {method} on the whole model"):
        getattr(tail, method)(*args)


def test_a_slice_with_a_step_is_refused() -> None:
    with pytest.raises(ValueError, match=r"use model\[i:j\] \(step 1\), not step 2"):
        model()[::2]


def test_only_a_slice_ending_with_the_last_layer_has_the_class_labels(rng: np.random.Generator) -> None:
    m = bp.Sequential(bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 1), bp.Sigmoid(), seed=0)
    m.classes, m.threshold = ["no", "yes"], 0.3
    X = rng.standard_normal((8, 4))
    tail = m[2:]
    assert list(tail.classes) == ["no", "yes"] and tail.threshold == 0.3
    np.testing.assert_array_equal(tail.predict_labels(m[:2].predict(X)), m.predict_labels(X))
    head = m[:2]
    assert head.classes is None and head.threshold is None
