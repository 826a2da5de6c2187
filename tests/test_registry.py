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
    assert set(LOSSES) == {"MSE", "BCE", "BCEWithLogits", "SoftmaxCrossEntropy"}


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
    with pytest.raises(ValueError, match="unknown loss 'hinge': use one of bce, bce_with_logits, cross_entropy, mse"):
        bp.losses.get_loss("hinge")
