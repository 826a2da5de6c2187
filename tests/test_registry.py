"""One registry per kind (layers, optimizers, schedules, losses): names in, classes out, and
each class's configuration round trip (`get_config` -> `from_config`)."""

from __future__ import annotations

import pytest

import backprop as bp
from backprop.registry import LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, Registry


def test_every_built_in_class_is_registered_under_its_class_name() -> None:
    assert {
        "Dense",
        "ReLU",
        "LeakyReLU",
        "Sigmoid",
        "Tanh",
        "GELU",
        "Softmax",
        "Dropout",
        "BatchNorm",
        "LayerNorm",
    } <= set(LAYERS)
    assert set(OPTIMIZERS) == {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}
    assert {"StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ReduceLROnPlateau", "SequentialLR"} <= set(
        SCHEDULES
    )
    assert set(LOSSES) == {"MSE", "MAE", "Huber", "BCE", "BCEWithLogits", "SoftmaxCrossEntropy"}


def test_lookup_by_name_or_alias_in_any_case() -> None:
    assert OPTIMIZERS["Adam"] is OPTIMIZERS["adam"] is OPTIMIZERS["ADAM"] is bp.optim.Adam
    assert LOSSES["cross-entropy"] is LOSSES["softmax_cross_entropy"] is bp.losses.SoftmaxCrossEntropy
    assert LAYERS["leaky-relu"] is bp.LeakyReLU
    assert "adamw" in OPTIMIZERS and "lamb" not in OPTIMIZERS and 3 not in OPTIMIZERS
    with pytest.raises(
        ValueError, match=r"unknown optimizer 'lamb': known optimizers are Adagrad, Adam, .*@bp.register_optimizer"
    ):
        OPTIMIZERS["lamb"]


def test_a_name_is_never_imported_only_looked_up() -> None:
    with pytest.raises(ValueError, match="unknown layer 'os.system'"):
        LAYERS["os.system"]


def test_registering_a_class_of_ones_own() -> None:
    registry: Registry[type] = Registry("layer", "bp.register_layer")

    @registry.register
    class Scale(bp.Layer):
        pass

    assert registry["Scale"] is Scale and registry.name_of(Scale()) == "Scale"
    registry.register(Scale)  # the same class again: fine

    class Other(bp.Layer):
        pass

    with pytest.raises(ValueError, match=r"named 'Scale' is registered already .*name='\.\.\.'"):
        registry.register(Other, name="Scale")
    with pytest.raises(TypeError, match="Other is not a registered layer.*@bp.register_layer"):
        registry.name_of(Other)


@pytest.mark.parametrize(
    "layer",
    [
        bp.Dense(3, 2, init="he", bias=False, l2=0.1),
        bp.LeakyReLU(0.2),
        bp.Dropout(0.3, masks="device"),
        bp.BatchNorm(4, 0.2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer: bp.Layer) -> None:
    twin = LAYERS[LAYERS.name_of(layer)].from_config(layer.get_config())
    assert type(twin) is type(layer) and twin.get_config() == layer.get_config()


def test_optimizer_and_schedule_config_round_trip() -> None:
    params = bp.Sequential(bp.Dense(2, 1), seed=0).parameters()
    opt = bp.optim.Adam(params, lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)
    twin = OPTIMIZERS["Adam"].from_config(params, opt.get_config())
    assert type(twin) is bp.optim.Adam and twin.get_config() == opt.get_config()
    schedule = bp.optim.StepLR(opt, step_size=3, gamma=0.5)
    again = SCHEDULES["StepLR"].from_config(twin, schedule.get_config())
    assert again.get_config() == schedule.get_config() and again.optimizer is twin


def test_get_loss_goes_through_the_registry() -> None:
    assert isinstance(bp.losses.get_loss("Cross-Entropy"), bp.losses.SoftmaxCrossEntropy)
    known = "bce, bce_with_logits, cross_entropy, huber, l1, mae, mse"
    with pytest.raises(ValueError, match=f"unknown loss 'hinge': use one of {known}"):
        bp.losses.get_loss("hinge")


@bp.register_layer
class Scale(bp.Layer):
    """``Y = k X``: a layer of the user's own, registered so models holding it save and load."""

    def __init__(self, k: float = 2.0):
        super().__init__()
        self.k = float(k)

    def apply(self, X, training):  # type: ignore[no-untyped-def]
        return X * self.k, lambda dY, need_dX=True: dY * self.k if need_dX else None

    def get_config(self) -> dict:
        return {"k": self.k}


def test_a_registered_layer_of_ones_own_saves_and_loads(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    model = bp.Sequential(bp.Dense(3, 2), Scale(3.0), seed=0, dtype="float64")
    path = tmp_path / "custom.npz"
    model.save(path)
    loaded = bp.load_checkpoint(path).model
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].k == 3.0
    X = [[1.0, 2.0, 3.0]]
    assert bp.to_numpy(loaded.predict(X)).tolist() == bp.to_numpy(model.predict(X)).tolist()
    monkeypatch.delitem(LAYERS._classes, "Scale")  # a process that never registered it
    monkeypatch.delitem(LAYERS._aliases, "scale")
    with pytest.raises(bp.CheckpointError, match=r"unknown layer type 'Scale'.*@bp.register_layer"):
        bp.load_checkpoint(path)


def test_an_unregistered_layer_is_refused_when_saving_with_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Loose(bp.Layer):
        def apply(self, X, training):  # type: ignore[no-untyped-def]
            return X, lambda dY, need_dX=True: dY

    model = bp.Sequential(bp.Dense(3, 2), Loose(), seed=0)
    with pytest.raises((TypeError, ValueError), match=r"Loose is not a registered layer.*@bp.register_layer"):
        model.save(tmp_path / "loose.npz")
    assert not (tmp_path / "loose.npz").exists()
