"""Hostile and broken checkpoint files: every one is refused with one `CheckpointError`
paragraph naming the problem, before it can allocate much, and no other exception escapes.

The cases are mutations of one valid file (`hostile_files.base_checkpoint`): every metadata
field set to wrong types and ranges or removed, the architecture, optimizer state, random
generator states, history and references made inconsistent, members removed, duplicated,
retyped, reshaped, filled with NaN or values that overflow the target dtype, compressed into
bombs or given headers that declare 10^11 elements, the zip directory and the JSON crafted, and
files that are not files. A hypothesis fuzz run under a memory limit is in
`test_fuzzing_the_reader_under_a_memory_limit` (`fuzz_checkpoints.py`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.atomic import atomic_write, atomic_write_all, remove_stale_temps, temp_files
from backprop.checkpoint import CheckpointError, archive, load_weights, save_checkpoint
from backprop.checkpoint.archive import Limits
from backprop.checkpoint.contents import FIELDS
from backprop.loading import load_checkpoint
from hostile_files import base_checkpoint, base_model, edited, entries, npy, npy_header, parts, write_parts, write_zip

HERE = Path(__file__).resolve().parents[1]  # the tests folder, where fuzz_checkpoints.py is
PARAMS = ["0.W", "0.b", "1.gamma", "1.beta", "3.block.0.W", "3.block.0.b", "3.block.1.gamma", "3.block.1.beta",
          "4.W", "4.b"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return base_checkpoint(tmp_path_factory.mktemp("base") / "base.npz")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bases")
    return {name: base_checkpoint(folder / f"{name}.npz", name) for name in ("sgd", "rmsprop", "adagrad")}


def refused(path: Path, match: str, **kwargs: Any) -> CheckpointError:
    """Loading ``path`` raises one `CheckpointError` paragraph matching ``match``, and so does
    `load_weights` (which checks the whole file too)."""
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, **kwargs)
    error = info.value
    text = str(error)
    assert text.startswith(f"cannot load checkpoint {str(path)!r}: "), text
    assert "\n" not in text and len(text) < 2000, text
    assert error.path == str(path)
    return error


# ---------------------------------------------------------------------------------- controls
def test_the_base_file_and_its_variants_load(base: Path, bases: dict[str, Path]) -> None:
    loaded = load_checkpoint(base)
    assert loaded.epoch == 2 and type(loaded.optimizer) is bp.optim.Adam and loaded.model.training
    assert [p.name for p in loaded.optimizer.params] == PARAMS
    for path in bases.values():
        load_checkpoint(path)
    rewritten = base.parent / "rewritten.npz"
    write_parts(rewritten, *parts(base))  # our own writer of hostile files makes a valid file of valid parts
    load_checkpoint(rewritten)


def test_an_optimizer_saved_before_its_first_step_loads(tmp_path: Path) -> None:
    model = bp.Sequential(bp.Dense(3, 2), seed=0)
    for optimizer in (bp.optim.Adam(model.parameters()), bp.optim.SGD(model.parameters(), momentum=0.5)):
        save_checkpoint(tmp_path / "fresh.npz", model, optimizer)
        assert load_checkpoint(tmp_path / "fresh.npz").optimizer.state_dict()["state"] == {}


# ---------------------------------------------------------------------------------- metadata fields
def _set(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, np.ndarray]], None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        m[key] = value

    return edit


BAD_VALUES: dict[str, list[Any]] = {
    "epoch": [-1, -(2**70), 1.5, "2", True, None, 2**60, [], {}, float("nan")],
    "seed": [-1, 2**64, "0", 0.5, None, True, [0]],
    "dtype": ["float16", "int32", None, 32, "Float32", "", ["float32"]],
    "training": ["no", 0, 1, None, "true", [], {}],
    "architecture": [None, [], "Sequential", {"class": "Sequential"}, {"class": "Sequential", "config": {}},
                     {"class": "Sequential", "config": {"layers": {}}}, {"class": 3, "config": {"layers": []}},
                     {"class": "Dense", "config": {"layers": []}}, {"class": "Sequential", "config": {"layers": [3]}},
                     {"class": "Sequential", "config": {"layers": []}, "x": 1}],
    "rng": [None, [], {}, "PCG64", {"shuffle": {}}, {"noise": None, "shuffle": None}],
    "optimizer": ["Adam", [], 1, True, {}, {"type": "Adam"}],
    "scheduler": ["cosine", [], 3, {}, {"type": "CosineAnnealingLR"}, {"type": 3, "state": {}}],
    "history": ["h", [], 1, {}, {"epochs": [1, 2]}, {"history": {}}, {"epochs": {}, "history": {}}],
    "extra": [None, [], "x", 3, True],
    "library_version": [3, None, "x" * 1000, []],
    "device": [0, None, "c" * 1000],
}
FIELD_CASES = [
    pytest.param(key, value, id=f"{key}={str(value)[:24]}") for key, values in BAD_VALUES.items() for value in values
]


@pytest.mark.parametrize(("key", "value"), FIELD_CASES)
def test_every_field_of_the_wrong_type_or_range_is_refused(key: str, value: Any, base: Path, tmp_path: Path) -> None:
    path = edited(base, tmp_path / "bad.npz", _set(key, value))
    refused(path, f"{FIELDS[key][0]} cannot be (used|read)")


REQUIRED = ["architecture", "dtype", "seed", "training", "rng", "optimizer", "scheduler", "epoch", "history", "extra"]


@pytest.mark.parametrize("key", REQUIRED)
def test_every_missing_field_is_named(key: str, base: Path, tmp_path: Path) -> None:
    path = edited(base, tmp_path / "bad.npz", lambda m, a: m.pop(key))
    refused(path, f"{FIELDS[key][0]} cannot be read: the entry '{key}' is missing")


# ---------------------------------------------------------------------------------- nested values
def layer(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda m: m["architecture"]["config"]["layers"][i]


def _edit_at(get: Callable[[dict[str, Any]], Any], key: Any, value: Any) -> Callable[..., None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        get(m)[key] = value

    return edit


def _drop_at(get: Callable[[dict[str, Any]], Any], key: Any) -> Callable[..., None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        del get(m)[key]

    return edit


def nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {"class": "ReLU", "config": {}}
    for _ in range(depth):
        inner = {"class": "Sequential", "config": {"layers": [inner]}}
    return inner


def config(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda m: m["architecture"]["config"]["layers"][i]["config"]


def residual(j: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda m: m["architecture"]["config"]["layers"][3]["config"]["layers"][j]["config"]


ARCH = "its architecture cannot be used"
WEIGHTS = "its weights cannot be used"
ARCHITECTURE_CASES: list[tuple[str, Callable[..., Any], str]] = [
    ("dense-in-5e7", _edit_at(config(0), "in_features", 50_000_000),
     rf"{WEIGHTS}: member 'model/0\.W' has shape \(4, 6\) but Dense\(50000000, 6\) needs \(50000000, 6\)"),
    ("dense-out-huge", _edit_at(config(4), "out_features", 10**12), f"{WEIGHTS}: member 'model/4.W'"),
    ("dense-in-negative", _edit_at(config(0), "in_features", -4), f"{ARCH}: layer 0: .*in_features"),
    ("dense-in-zero", _edit_at(config(0), "in_features", 0), f"{ARCH}: layer 0"),
    ("dense-in-string", _edit_at(config(0), "in_features", "4"), f"{ARCH}: layer 0"),
    ("dense-in-float", _edit_at(config(0), "in_features", 4.5), f"{ARCH}: layer 0"),
    ("dense-in-bool", _edit_at(config(0), "in_features", True), f"{ARCH}: layer 0"),
    ("dense-in-list", _edit_at(config(0), "in_features", [4]), f"{ARCH}: layer 0"),
    ("dense-bias-no", _edit_at(config(0), "bias", "no"), f"{ARCH}: layer 0: Dense bias must be True or False"),
    ("dense-bias-false", _edit_at(config(0), "bias", False),
     r"it updates parameters \[.0.b.\] that the model does not"),
    ("dense-init-unknown", _edit_at(config(0), "init", "magic"), f"{ARCH}: layer 0"),
    ("dense-init-number", _edit_at(config(0), "init", 3), f"{ARCH}: layer 0"),
    ("dense-l2-negative", _edit_at(config(0), "l2", -1.0), f"{ARCH}: layer 0"),
    ("dense-l2-nan", _edit_at(config(0), "l2", float("nan")), f"{ARCH}: layer 0"),
    ("dense-unknown-option", _edit_at(config(0), "units", 3), f"{ARCH}: layer 0 .*cannot be built"),
    ("dense-config-missing", _drop_at(layer(0), "config"), f"{ARCH}: layer 0 .*cannot be built"),
    ("dense-config-list", _edit_at(layer(0), "config", [4, 6]), ARCH),
    ("dense-class-missing", _drop_at(layer(0), "class"), ARCH),
    ("unknown-layer", _edit_at(layer(2), "class", "Conv9D"), "unknown layer type 'Conv9D'.*written by backprop"),
    ("class-number", _edit_at(layer(2), "class", 7), ARCH),
    ("class-long", _edit_at(layer(2), "class", "R" * 5000), ARCH),
    ("layer-extra-key", _edit_at(layer(2), "weights", [1]), ARCH),
    ("layer-array-ref", _edit_at(config(2), "alpha", {"__ndarray__": "extra/0"}), ARCH),
    ("batchnorm-features", _edit_at(config(1), "features", 7), rf"{WEIGHTS}: member 'model/1\.\w+' has shape \(6,\)"),
    ("batchnorm-momentum", _edit_at(config(1), "momentum", 2.0), f"{ARCH}: layer 1"),
    ("batchnorm-eps-zero", _edit_at(config(1), "eps", 0), f"{ARCH}: layer 1"),
    ("layernorm-features", _edit_at(residual(1), "features", 5), WEIGHTS),
    ("dropout-p-1", _edit_at(residual(3), "p", 1.0), ARCH),
    ("dropout-p-string", _edit_at(residual(3), "p", "0.1"), ARCH),
    ("dropout-masks", _edit_at(residual(3), "masks", "gpu"), ARCH),
    ("relu-config", _edit_at(config(2), "alpha", 0.1), ARCH),
    ("residual-layers-dict", _edit_at(config(3), "layers", {}), ARCH),
    ("residual-layers-number", _edit_at(lambda m: m["architecture"]["config"]["layers"][3]["config"]["layers"], 0, 5),
     ARCH),
    ("nested-300", _edit_at(lambda m: m["architecture"]["config"]["layers"], 2, nested(300)),
     "its metadata is nested more than 64 levels deep"),
    ("nested-17-containers", _edit_at(lambda m: m["architecture"]["config"]["layers"], 2, nested(17)),
     f"{ARCH}: it has containers nested more than 16 deep"),
    ("many-layers", _edit_at(lambda m: m["architecture"]["config"], "layers",
                             [{"class": "ReLU", "config": {}}] * 100_001), ARCH),
    ("layers-shape-chain", lambda m, a: (m["architecture"]["config"]["layers"].insert(
        0, {"class": "Dense", "config": {"in_features": 4, "out_features": 4}}), a.update(
        {"model/0.W": np.zeros((4, 4), np.float32), "model/0.b": np.zeros(4, np.float32)})),
     "it has members that nothing in it refers to|cannot be used"),
    ("model-not-sequential", _edit_at(lambda m: m["architecture"], "class", "Residual"),
     f"{ARCH}: the saved model is a 'Residual', not a Sequential"),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in ARCHITECTURE_CASES], ids=[c[0] for c in ARCHITECTURE_CASES])
def test_an_inconsistent_architecture_is_refused_before_anything_is_built(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    path = edited(base, tmp_path / "bad.npz", edit)
    tracemalloc.start()
    try:
        refused(path, match)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"{peak / 2**20:.0f} MiB traced while refusing the file"


def opt(m: dict[str, Any]) -> dict[str, Any]:
    return m["optimizer"]


def _del_member(name: str) -> Callable[..., None]:
    return lambda m, a: a.pop(name)


def _set_member(name: str, value: Any) -> Callable[..., None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        a[name] = np.asarray(value)

    return edit


def _empty_state(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
    m["optimizer"]["scalars"] = {}
    for name in [n for n in a if n.startswith("optimizer/")]:
        del a[name]


def _empty_state_flagged(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
    _empty_state(m, a)
    m["optimizer"].pop("empty_state")


OPT = "its optimizer cannot be used"
OPTIMIZER_CASES: list[tuple[str, Callable[..., Any], str]] = [
    ("state-empty", _empty_state_flagged, f"{OPT}: its state is empty, but Adam keeps exp_avg, exp_avg_sq, step"),
    ("state-empty-claimed-stepped", lambda m, a: (_empty_state(m, a), opt(m).update(empty_state=False)),
     f"{OPT}: its state is empty"),
    ("state-claimed-empty", _edit_at(opt, "empty_state", True), f"{OPT}: the file says its state is empty"),
    ("empty-state-string", _edit_at(opt, "empty_state", "yes"), OPT),
    ("step-missing", _drop_at(lambda m: opt(m)["scalars"], "3.step"), rf"{OPT}: the state of parameter 3 .*lacks step"),
    ("step-negative", _edit_at(lambda m: opt(m)["scalars"], "0.step", -1), rf"{OPT}: .*'0.step'\] is -1"),
    ("step-zero", _edit_at(lambda m: opt(m)["scalars"], "0.step", 0), rf"{OPT}: .*'0.step'\] is 0"),
    ("step-float", _edit_at(lambda m: opt(m)["scalars"], "0.step", 1.5), OPT),
    ("step-string", _edit_at(lambda m: opt(m)["scalars"], "0.step", "6"), OPT),
    ("step-bool", _edit_at(lambda m: opt(m)["scalars"], "0.step", True), OPT),
    ("step-huge", _edit_at(lambda m: opt(m)["scalars"], "0.step", 10**30), OPT),
    ("step-array-ref", _edit_at(lambda m: opt(m)["scalars"], "0.step", {"__ndarray__": "extra/0"}), OPT),
    ("step-index-out-of-range", _edit_at(lambda m: opt(m)["scalars"], "10.step", 6),
     rf"{OPT}: it has state 10.step but it updates 10 parameters"),
    ("scalar-unknown", _edit_at(lambda m: opt(m)["scalars"], "0.velocity", 1.0),
     rf"{OPT}: it has state 0.velocity, but Adam keeps"),
    ("scalar-bad-key", _edit_at(lambda m: opt(m)["scalars"], "zero.step", 1), OPT),
    ("scalars-list", _edit_at(opt, "scalars", [6]), OPT),
    ("exp-avg-missing", _del_member("optimizer/2.exp_avg"), rf"{OPT}: the state of parameter 2 .*lacks exp_avg"),
    ("exp-avg-sq-missing", _del_member("optimizer/9.exp_avg_sq"), f"{OPT}: the state of parameter 9"),
    ("exp-avg-sq-negative", lambda m, a: a["optimizer/0.exp_avg_sq"].__setitem__((0, 0), -1e-3),
     r"its optimizer cannot be used: member 'optimizer/0.exp_avg_sq' holds -0.001 at \(0, 0\); .*cannot be negative"),
    ("exp-avg-nan", lambda m, a: a["optimizer/1.exp_avg"].__setitem__(2, np.nan), "holds nan at \\(2,\\)"),
    ("exp-avg-inf", lambda m, a: a["optimizer/1.exp_avg"].__setitem__(2, -np.inf), "holds -inf"),
    ("exp-avg-shape", _set_member("optimizer/0.exp_avg", np.zeros((6, 4), np.float32)),
     rf"{OPT}: member 'optimizer/0.exp_avg' has shape \(6, 4\) but parameter '0.W' needs \(4, 6\)"),
    ("exp-avg-float64", _set_member("optimizer/0.exp_avg", np.zeros((4, 6))), f"{OPT}: member .* is float64"),
    ("exp-avg-int", _set_member("optimizer/0.exp_avg", np.zeros((4, 6), np.int32)), "is int32"),
    ("exp-avg-bool", _set_member("optimizer/0.exp_avg", np.zeros((4, 6), bool)), "is bool"),
    ("exp-avg-complex", _set_member("optimizer/0.exp_avg", np.zeros((4, 6), np.complex64)), "is complex64"),
    ("exp-avg-string", _set_member("optimizer/0.exp_avg", np.full((4, 6), "x")), "is <U1"),
    ("state-unknown-array", _set_member("optimizer/0.velocity", np.zeros((4, 6), np.float32)),
     f"{OPT}: it has state 0.velocity"),
    ("state-array-out-of-range", _set_member("optimizer/12.exp_avg", np.zeros(3, np.float32)),
     f"{OPT}: it has state 12.exp_avg but it updates 10 parameters"),
    ("state-array-bad-name", _set_member("optimizer/first.exp_avg", np.zeros(3, np.float32)), OPT),
    ("state-both-scalar-and-array", _edit_at(lambda m: opt(m)["scalars"], "0.exp_avg", 1.0),
     f"{OPT}: state '0.exp_avg' is both a scalar and an array member"),
    ("step-as-array", lambda m, a: (opt(m)["scalars"].pop("0.step"), a.update({"optimizer/0.step": np.ones(1)})),
     OPT),
    ("params-unknown", _edit_at(lambda m: opt(m)["params"], 0, "9.W"),
     rf"{OPT}: it updates parameters \['9.W'\] that the model does not have"),
    ("params-running-mean", _edit_at(lambda m: opt(m)["params"], 2, "1.running_mean"),
     rf"{OPT}: it updates parameters \['1.running_mean'\] that are not trainable"),
    ("params-duplicate", _edit_at(lambda m: opt(m)["params"], 1, "0.W"), r"is '0.W' a second time"),
    ("params-empty", _edit_at(opt, "params", []), OPT),
    ("params-string", _edit_at(opt, "params", "0.W"), OPT),
    ("params-bad-form", _edit_at(lambda m: opt(m)["params"], 0, "../../W"), OPT),
    ("params-fewer", lambda m, a: opt(m).update(params=PARAMS[:9]), f"{OPT}: it has state 9"),
    ("type-unknown", _edit_at(opt, "type", "Lion"), r"unknown optimizer type 'Lion' \(this backprop .* has .*Adam"),
    ("type-number", _edit_at(opt, "type", 3), OPT),
    ("type-other-optimizer", _edit_at(opt, "type", "SGD"), OPT),
    ("lr-negative", _edit_at(lambda m: opt(m)["hyperparameters"], "lr", -0.1), rf"{OPT}: .*'lr'\] is -0.1"),
    ("lr-nan", _edit_at(lambda m: opt(m)["hyperparameters"], "lr", float("nan")), OPT),
    ("lr-inf", _edit_at(lambda m: opt(m)["hyperparameters"], "lr", float("inf")), OPT),
    ("lr-string", _edit_at(lambda m: opt(m)["hyperparameters"], "lr", "0.01"), OPT),
    ("lr-missing", _drop_at(lambda m: opt(m)["hyperparameters"], "lr"), rf"{OPT}: .*has no entry 'lr'"),
    ("betas-one", _edit_at(lambda m: opt(m)["hyperparameters"], "betas", [0.9]), OPT),
    ("betas-above-one", _edit_at(lambda m: opt(m)["hyperparameters"], "betas", [0.9, 1.5]), OPT),
    ("betas-string", _edit_at(lambda m: opt(m)["hyperparameters"], "betas", "0.9,0.999"), OPT),
    ("hp-unknown", _edit_at(lambda m: opt(m)["hyperparameters"], "amsgrad", True), OPT),
    ("hp-list", _edit_at(opt, "hyperparameters", [0.01]), OPT),
    ("initial-lr-negative", _edit_at(opt, "initial_lr", -1.0), OPT),
    ("initial-lr-string", _edit_at(opt, "initial_lr", "0.01"), OPT),
    ("initial-lr-missing", _drop_at(opt, "initial_lr"), rf"{OPT}: optimizer has no entry 'initial_lr'"),
    ("optimizer-extra-key", _edit_at(opt, "momentum", 0.9), OPT),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in OPTIMIZER_CASES], ids=[c[0] for c in OPTIMIZER_CASES])
def test_an_incomplete_or_inconsistent_optimizer_state_is_refused(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    refused(edited(base, tmp_path / "bad.npz", edit), match)


OTHER_OPTIMIZER_CASES = [
    ("sgd", "nesterov-string", _edit_at(lambda m: opt(m)["hyperparameters"], "nesterov", "no"),
     rf"{OPT}: .*'nesterov'\] is 'no'; it must be true or false"),
    ("sgd", "buffer-missing", _del_member("optimizer/4.momentum_buffer"), f"{OPT}: the state of parameter 4"),
    ("sgd", "dampening-above-one", _edit_at(lambda m: opt(m)["hyperparameters"], "dampening", 2), OPT),
    ("sgd", "momentum-zero-with-buffers", _edit_at(lambda m: opt(m)["hyperparameters"], "momentum", 0.0),
     "SGD keeps no state"),
    ("sgd", "step-added", _edit_at(lambda m: opt(m)["scalars"], "0.step", 3), "SGD keeps momentum_buffer"),
    ("rmsprop", "square-avg-negative", lambda m, a: a["optimizer/0.square_avg"].__setitem__((1, 1), -1.0),
     "cannot be negative"),
    ("rmsprop", "grad-avg-missing", _del_member("optimizer/5.grad_avg"), "lacks grad_avg"),
    ("rmsprop", "centered-string", _edit_at(lambda m: opt(m)["hyperparameters"], "centered", "yes"), OPT),
    ("rmsprop", "not-centered-with-grad-avg", _edit_at(lambda m: opt(m)["hyperparameters"], "centered", False),
     "RMSprop keeps square_avg, momentum_buffer"),
    ("adagrad", "sum-negative", lambda m, a: a["optimizer/9.sum"].__setitem__(0, -2.0), "cannot be negative"),
    ("adagrad", "step-missing", _drop_at(lambda m: opt(m)["scalars"], "0.step"), "lacks step"),
    ("adagrad", "lr-decay-negative", _edit_at(lambda m: opt(m)["hyperparameters"], "lr_decay", -1), OPT),
]


@pytest.mark.parametrize(("kind", "edit", "match"), [(c[0], *c[2:]) for c in OTHER_OPTIMIZER_CASES],
                         ids=[f"{c[0]}-{c[1]}" for c in OTHER_OPTIMIZER_CASES])
def test_every_optimizers_state_rules(kind: str, edit: Callable[..., Any], match: str, bases: dict[str, Path],
                                      tmp_path: Path) -> None:
    refused(edited(bases[kind], tmp_path / "bad.npz", edit), match)


def rng(m: dict[str, Any]) -> dict[str, Any]:
    return m["rng"]


RNG = "its random generators' states cannot be (used|read)"
RNG_CASES: list[tuple[str, Callable[..., Any], str]] = [
    ("shuffle-missing", _drop_at(rng, "shuffle"), f"{RNG}: rng has no entry 'shuffle'"),
    ("noise-missing", _drop_at(rng, "noise"), RNG),
    ("state-negative", _edit_at(lambda m: rng(m)["shuffle"]["state"], "state", -1), rf"{RNG}: .*'state'\] is -1"),
    ("inc-negative", _edit_at(lambda m: rng(m)["noise"]["state"], "inc", -5), RNG),
    ("state-too-big", _edit_at(lambda m: rng(m)["shuffle"]["state"], "state", 2**200), RNG),
    ("state-float", _edit_at(lambda m: rng(m)["shuffle"]["state"], "state", 1.5), RNG),
    ("state-string", _edit_at(lambda m: rng(m)["shuffle"]["state"], "state", "12"), RNG),
    ("state-missing", _drop_at(lambda m: rng(m)["shuffle"]["state"], "inc"), RNG),
    ("has-uint32-two", _edit_at(lambda m: rng(m)["shuffle"], "has_uint32", 2), RNG),
    ("has-uint32-negative", _edit_at(lambda m: rng(m)["shuffle"], "has_uint32", -1), RNG),
    ("uinteger-negative", _edit_at(lambda m: rng(m)["shuffle"], "uinteger", -1), RNG),
    ("uinteger-huge", _edit_at(lambda m: rng(m)["shuffle"], "uinteger", 2**40), RNG),
    ("bit-generator-unknown", _edit_at(lambda m: rng(m)["shuffle"], "bit_generator", "Evil"), RNG),
    ("bit-generator-code", _edit_at(lambda m: rng(m)["shuffle"], "bit_generator", "__import__('os')"), RNG),
    ("bit-generator-mt", _edit_at(lambda m: rng(m)["shuffle"], "bit_generator", "MT19937"), RNG),
    ("state-list", _edit_at(rng, "shuffle", [1, 2]), RNG),
    ("layer-unknown", _edit_at(rng, "9:_rng", {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1},
                                               "has_uint32": 0, "uinteger": 0}),
     f"{RNG}: the entry '9:_rng' is for a layer '9' its architecture does not have"),
    ("layer-mt19937-bad", _edit_at(rng, "3.block.3:_device_rng", {"bit_generator": "MT19937",
                                                                  "state": {"key": [1, 2], "pos": 3}}),
     f"{RNG}: the state of '3.block.3:_device_rng' is not a valid MT19937 state"),
    ("streams-negative", _edit_at(rng, "3.block.3:streams", {"spawned": -1}), RNG),
    ("streams-string", _edit_at(rng, "3.block.3:streams", {"spawned": "2"}), RNG),
    ("key-bad-form", _edit_at(rng, "shuffle ", {}), RNG),
    ("extra-generator-field", _edit_at(lambda m: rng(m)["shuffle"], "seed", 3), RNG),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in RNG_CASES], ids=[c[0] for c in RNG_CASES])
def test_invalid_random_generator_states_are_refused(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    refused(edited(base, tmp_path / "bad.npz", edit), match)


def hist(m: dict[str, Any]) -> dict[str, Any]:
    return m["history"]


HISTORY = "its history cannot be used"
SCHEDULER = "its scheduler state cannot be used"
EXTRA = "its extra values cannot be used"
OTHER_CASES: list[tuple[str, Callable[..., Any], str]] = [
    ("history-ragged", lambda m, a: hist(m)["history"]["loss"].append(0.5), rf"{HISTORY}: .*has 3 values for 2"),
    ("history-epochs-decreasing", _edit_at(hist, "epochs", [2, 1]), rf"{HISTORY}: .*epochs must increase"),
    ("history-epochs-repeated", _edit_at(hist, "epochs", [1, 1]), HISTORY),
    ("history-epochs-zero", _edit_at(hist, "epochs", [0, 1]), HISTORY),
    ("history-epochs-negative", _edit_at(hist, "epochs", [-2, 1]), HISTORY),
    ("history-epochs-strings", _edit_at(hist, "epochs", ["1", "2"]), HISTORY),
    ("history-value-string", lambda m, a: hist(m)["history"]["loss"].__setitem__(0, "0.5"), HISTORY),
    ("history-value-bool", lambda m, a: hist(m)["history"]["loss"].__setitem__(0, True), HISTORY),
    ("history-value-list", lambda m, a: hist(m)["history"]["loss"].__setitem__(0, [0.5]), HISTORY),
    ("history-series-dict", _edit_at(lambda m: hist(m)["history"], "loss", {"1": 0.5}), HISTORY),
    ("history-series-ref", _edit_at(lambda m: hist(m)["history"], "loss", {"__ndarray__": "extra/0"}), HISTORY),
    ("history-extra-key", _edit_at(hist, "best", 1), HISTORY),
    ("scheduler-type-mismatch", _edit_at(lambda m: m["scheduler"]["state"], "type", "StepLR"), SCHEDULER),
    ("scheduler-last-epoch-negative", _edit_at(lambda m: m["scheduler"]["state"], "last_epoch", -3), SCHEDULER),
    ("scheduler-base-lr-nan", _edit_at(lambda m: m["scheduler"]["state"], "base_lr", float("nan")), SCHEDULER),
    ("scheduler-last-lr-string", _edit_at(lambda m: m["scheduler"]["state"], "last_lr", "0.1"), SCHEDULER),
    ("scheduler-base-lr-missing", _drop_at(lambda m: m["scheduler"]["state"], "base_lr"), SCHEDULER),
    ("scheduler-state-list", _edit_at(lambda m: m["scheduler"], "state", [1]), SCHEDULER),
    ("extra-ref-missing", _edit_at(lambda m: m["extra"], "mean", {"__ndarray__": "extra/7"}),
     rf"{EXTRA}: array member 'extra/7', referenced by the metadata, is missing"),
    ("extra-ref-to-weights", _edit_at(lambda m: m["extra"], "mean", {"__ndarray__": "model/0.W"}), EXTRA),
    ("extra-ref-twice", _edit_at(lambda m: m["extra"], "again", {"__ndarray__": "extra/0"}),
     f"{EXTRA}: array member 'extra/0' is referenced twice"),
    ("extra-ref-number", _edit_at(lambda m: m["extra"], "mean", {"__ndarray__": 0}), EXTRA),
    ("extra-ref-with-other-keys", _edit_at(lambda m: m["extra"], "mean", {"__ndarray__": "extra/0", "x": 1}), EXTRA),
    ("extra-unreferenced", _drop_at(lambda m: m["extra"], "mean"),
     "it has members that nothing in it refers to \\('extra/0'\\)"),
    ("rng-ref-elsewhere", _edit_at(lambda m: rng(m)["shuffle"], "state", {"__ndarray__": "extra/0"}), RNG),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES])
def test_history_scheduler_and_references_are_checked(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    refused(edited(base, tmp_path / "bad.npz", edit), match)


# ---------------------------------------------------------------------------------- members
def _retype(name: str, dtype: Any) -> Callable[..., None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        a[name] = a[name].astype(dtype)

    return edit


def _poke(name: str, value: float, index: Any = 0) -> Callable[..., None]:
    def edit(m: dict[str, Any], a: dict[str, np.ndarray]) -> None:
        a[name] = a[name].astype(np.float64) if abs(value) > 3e38 and not math.isinf(value) else a[name]
        a[name].reshape(-1)[index] = value

    return edit


WEIGHT_NAMES = ["0.W", "0.b", "1.gamma", "1.beta", "1.running_mean", "1.running_var", "3.block.0.W", "3.block.0.b",
                "3.block.1.gamma", "3.block.1.beta", "4.W", "4.b"]
MEMBER_CASES: list[tuple[str, Callable[..., Any], str]] = [
    *[(f"missing-{n}", _del_member(f"model/{n}"), rf"{WEIGHTS}: the file is missing '{n}'") for n in WEIGHT_NAMES],
    *[(f"{dtype}-{n}", _retype(f"model/{n}", dtype), rf"{WEIGHTS}: member 'model/{n}' is {dtype}")
      for n in ("0.W", "1.running_var", "4.b") for dtype in ("float64", "float16", "int64", "bool", "complex64",
                                                              "uint8")],
    *[(f"nan-{n}", _poke(f"model/{n}", np.nan), rf"{WEIGHTS}: member 'model/{n}' holds nan")
      for n in WEIGHT_NAMES],
    *[(f"inf-{n}", _poke(f"model/{n}", -np.inf, -1), rf"member 'model/{n}' holds -inf") for n in WEIGHT_NAMES[::3]],
    ("running-var-negative", _poke("model/1.running_var", -0.5), "member 'model/1.running_var' holds -0.5.*negative"),
    ("reshaped", _set_member("model/4.W", np.zeros((3, 6), np.float32)),
     rf"{WEIGHTS}: member 'model/4.W' has shape \(3, 6\) but Dense\(6, 3\) needs \(6, 3\)"),
    ("flattened", lambda m, a: a.update({"model/0.W": a["model/0.W"].reshape(-1)}), "has shape \\(24,\\)"),
    ("scalar", _set_member("model/0.b", np.float32(1)), "has shape \\(\\)"),
    ("empty", _set_member("model/0.b", np.zeros(0, np.float32)), "has shape \\(0,\\)"),
    ("unexpected-weight", _set_member("model/2.W", np.zeros((6, 6), np.float32)),
     "it has members that nothing in it refers to \\('model/2.W'\\)"),
    ("unexpected-member", _set_member("payload", np.zeros(3)), "nothing in it refers to \\('payload'\\)"),
    ("unexpected-rng-member", _set_member("rng/0", np.zeros(3)), "nothing in it refers to \\('rng/0'\\)"),
    ("metadata-float", lambda m, a: [("metadata.npy", npy(np.zeros(5)), zipfile.ZIP_STORED)],
     "its metadata member is float64 of shape \\(5,\\), not UTF-8 JSON bytes"),
    ("metadata-2d", lambda m, a: [("metadata.npy", npy(np.zeros((2, 2), np.uint8)), zipfile.ZIP_STORED)],
     "its metadata member is uint8 of shape \\(2, 2\\)"),
    ("object-member", lambda m, a: [*entries(m, a), ("model/x.npy", npy(np.array([{"a": 1}], dtype=object)), 0)],
     "member 'model/x' holds pickled Python objects.*refused"),
    ("object-metadata", lambda m, a: [("metadata.npy", npy(np.array([{"a": 1}], dtype=object)), 0)],
     "member 'metadata' holds pickled"),
    ("structured-member", lambda m, a: [*entries(m, a), ("model/x.npy", npy(np.zeros(2, "i4,f4")), 0)],
     "member 'model/x' has dtype"),
    ("datetime-member", lambda m, a: [*entries(m, a), ("extra/9.npy", npy(np.zeros(2, "M8[s]")), 0)], "dtype"),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in MEMBER_CASES], ids=[c[0] for c in MEMBER_CASES])
def test_members_that_are_missing_retyped_reshaped_or_not_finite_are_refused(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    refused(edited(base, tmp_path / "bad.npz", edit), match)


def test_weights_that_overflow_the_target_dtype_are_refused(tmp_path: Path) -> None:
    model = bp.Sequential(bp.Dense(2, 2), dtype="float64", seed=0)
    model.layers[0].W.data[0, 0] = 1e39
    path = tmp_path / "wide.npz"
    save_checkpoint(path, model)
    assert load_checkpoint(path).model.dtype == "float64"  # fits its own dtype
    refused(path, "member 'model/0.W' holds 1e\\+39, which does not fit float32", dtype="float32")
    with pytest.raises(CheckpointError, match="does not fit float32"):
        load_weights(bp.Sequential(bp.Dense(2, 2), seed=0), path)


DIRECTORY_CASES: list[tuple[str, Callable[..., Any], str]] = [
    ("duplicate-weight-same", lambda m, a: [*entries(m, a), ("model/0.W.npy", npy(a["model/0.W"]), 0)],
     "member 'model/0.W' appears twice in the archive's directory"),
    ("duplicate-weight-other", lambda m, a: [*entries(m, a), ("model/0.W.npy", npy(a["model/0.W"] * 9), 0)],
     "appears twice"),
    ("duplicate-metadata", lambda m, a: [*entries(m, a), entries({**m, "epoch": 99}, {})[0]],
     "member 'metadata' appears twice"),
    ("not-npy", lambda m, a: [*entries(m, a), ("notes.txt", b"hello", 0)], "member 'notes.txt' is not a .npy array"),
    ("directory-entry", lambda m, a: [*entries(m, a), ("model/", b"", 0)], "is not a .npy array"),
    ("bzip2", lambda m, a: [(n, d, zipfile.ZIP_BZIP2) for n, d, _ in entries(m, a)],
     "compressed with zip method 12"),
    ("deflated-is-fine-when-small", lambda m, a: [*entries(m, a)[:-1], ("extra/0.npy", npy(np.zeros(1)), 8),
                                                  ("bomb.npy", npy(np.zeros(1)), 0)],
     "nothing in it refers to \\('bomb'\\)"),
    ("header-10-to-11", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((10**11,), "<f8"), 0)],
     r"member 'extra/1' declares float64 data of shape \(100000000000,\) \(800 GB\) but holds 0 bytes"),
    ("header-10-to-11-weight", lambda m, a: [e for e in entries(m, a) if e[0] != "model/0.W.npy"]
     + [("model/0.W.npy", npy_header((10**6, 10**5), "<f4", data=b"\0" * 96), 0)], "declares float32 data"),
    ("header-negative-shape", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((-1, 5), "<f8"), 0)],
     "impossible shape"),
    ("header-too-many-dims", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((1,) * 40, "<f8", data=b"\0" * 8),
                                                            0)], "impossible shape|damaged"),
    ("header-version-3", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((1,), "<f8", version=(3, 0),
                                                                                  data=b"\0" * 8), 0)],
     "member 'extra/1' is damaged or not a NumPy array \\(.npy format version 3.0"),
    ("header-version-9", lambda m, a: [*entries(m, a), ("extra/1.npy", b"\x93NUMPY\x09\x00" + b"\0" * 100, 0)],
     "member 'extra/1'"),
    ("header-garbage", lambda m, a: [*entries(m, a), ("extra/1.npy", b"\x93NUMPY\x01\x00\x20\x00{'descr': os.system}"
                                                      + b" " * 8, 0)], "member 'extra/1'"),
    ("header-not-npy", lambda m, a: [*entries(m, a), ("extra/1.npy", b"PK\x03\x04 not an array at all", 0)],
     "member 'extra/1'"),
    ("header-void", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((4,), "|V8", data=b"\0" * 32), 0)],
     "has dtype"),
    ("header-zero-itemsize", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((10**15,), "|S0"), 0)],
     "member 'extra/1'"),
    ("data-longer-than-declared", lambda m, a: [*entries(m, a), ("extra/1.npy", npy_header((1,), "<f8",
                                                                                          data=b"\0" * 16), 0)],
     "declares float64 data of shape \\(1,\\) \\(8 bytes\\) but holds 16 bytes"),
    ("metadata-too-big", lambda m, a: [("metadata.npy", npy(np.zeros(65 << 20, np.uint8)), 0)],
     "its metadata is 68.2 MB; a checkpoint reader accepts at most 67.1 MB"),
]


@pytest.mark.parametrize(("edit", "match"), [c[1:] for c in DIRECTORY_CASES], ids=[c[0] for c in DIRECTORY_CASES])
def test_crafted_directories_and_headers_are_refused_from_the_directory(
    edit: Callable[..., Any], match: str, base: Path, tmp_path: Path
) -> None:
    path = edited(base, tmp_path / "bad.npz", edit)
    tracemalloc.start()
    try:
        refused(path, match)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"{peak / 2**20:.0f} MiB traced while refusing the file"


def _bomb(tmp_path: Path, base: Path, name: str, size: int) -> Path:
    metadata, arrays = parts(base)
    members = [e for e in entries(metadata, arrays) if e[0] != f"{name}.npy"]
    members.append((f"{name}.npy", npy_header((size // 4,), "<f4", data=bytes(size)), zipfile.ZIP_DEFLATED))
    path = tmp_path / "bomb.npz"
    write_zip(path, members)
    return path


@pytest.mark.parametrize("name", ["model/4.b", "unreferenced", "extra/0"])
def test_compression_bombs_are_refused_from_the_directory(name: str, base: Path, tmp_path: Path) -> None:
    path = _bomb(tmp_path, base, name, 64 << 20)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        refused(path, rf"member '{name}' would expand from .* to 67.1 MB \([\d,]+ times; a compression bomb\)")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB traced while refusing the bomb"


def test_a_total_size_beyond_the_limit_or_the_memory_is_refused(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match="the limit given is 100 bytes"):
        bp.checkpoint.read_checkpoint(base, bp.Sequential, limits=Limits(max_total_bytes=100))
    monkeypatch.setattr(archive, "available_host_memory", lambda: 1000)
    refused(base, "the memory available to this process is 1 kB")


def test_a_model_too_large_to_build_is_refused_before_reading(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backprop.checkpoint import load as load_module  # noqa: PLC0415 - the module, not the function

    monkeypatch.setattr(load_module, "available_host_memory", lambda: 1000)
    refused(base, r"loading it needs about .* of memory .* but this process has .* available")


def _end_record(tmp_path: Path, base: Path, entries_count: int, directory_size: int) -> Path:
    raw = bytearray(base.read_bytes())
    at = raw.rfind(b"PK\x05\x06")
    raw[at + 8 : at + 16] = struct.pack("<HHL", min(entries_count, 0xFFFF), min(entries_count, 0xFFFF),
                                        min(directory_size, 0xFFFFFFFF))
    path = tmp_path / "crafted.npz"
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("count", "size", "match"), [
    (65_000, 100, "its directory lists 65,000 members; a checkpoint reader accepts at most 10,000"),
    (3, 4_000_000_000, "its directory claims 4 GB in a file of"),
    (3, 10, "truncated or damaged"),
])
def test_a_crafted_end_record_is_refused_before_the_directory_is_read(
    count: int, size: int, match: str, base: Path, tmp_path: Path
) -> None:
    path = _end_record(tmp_path, base, count, size)
    with pytest.raises(CheckpointError, match=match):
        bp.checkpoint.read_checkpoint(path, bp.Sequential, limits=Limits(max_members=10_000))


def test_every_truncation_is_refused(base: Path, tmp_path: Path) -> None:
    raw = base.read_bytes()
    path = tmp_path / "cut.npz"
    for end in sorted({*range(0, len(raw), max(1, len(raw) // 60)), len(raw) - 1, len(raw) - 22, 4, 5}):
        path.write_bytes(raw[:end])
        with pytest.raises(CheckpointError, match="cannot load checkpoint"):
            load_checkpoint(path)


def test_flipped_bytes_are_refused_or_harmless(base: Path, tmp_path: Path) -> None:
    raw = base.read_bytes()
    path = tmp_path / "flipped.npz"
    for at in range(0, len(raw), max(1, len(raw) // 150)):
        spoiled = bytearray(raw)
        spoiled[at] ^= 0x55
        path.write_bytes(bytes(spoiled))
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc)


# ---------------------------------------------------------------------------------- JSON
JSON_CASES = [
    ("duplicate-key", lambda m: json.dumps(m)[:-1].encode() + b',"epoch":-5}', "the key 'epoch' appears twice"),
    ("deep-100000", lambda m: b'{"format":"backprop.checkpoint","format_version":1,"x":' + b"[" * 100_000
     + b"]" * 100_000 + b"}", "its metadata is not valid JSON \\(it is nested too deeply\\)"),
    ("deep-100", lambda m: json.dumps({**m, "x": json.loads("[" * 100 + "]" * 100)}).encode(),
     "nested more than 64 levels"),
    ("huge-int", lambda m: json.dumps(m).replace('"epoch": 2', '"epoch": ' + "9" * 5000).encode(),
     "its metadata is not valid JSON"),
    ("bad-utf8", lambda m: json.dumps(m).encode()[:-1] + b',"x":"\xff\xfe"}', "its metadata is not valid JSON"),
    ("not-object", lambda m: b"[1, 2, 3]", "its 'metadata' member was not written by backprop"),
    ("format-other", lambda m: json.dumps({**m, "format": "keras"}).encode(), "not written by backprop"),
    ("version-zero", lambda m: json.dumps({**m, "format_version": 0}).encode(), "invalid format version 0"),
    ("version-float", lambda m: json.dumps({**m, "format_version": 1.0}).encode(), "invalid format version"),
    ("version-huge", lambda m: json.dumps({**m, "format_version": 10**400}).encode(), "format 1000"),
    ("empty", lambda m: b"", "its metadata is not valid JSON"),
    ("nan-epoch", lambda m: json.dumps(m).replace('"epoch": 2', '"epoch": NaN').encode(), "its epoch"),
    ("infinity-seed", lambda m: json.dumps(m).replace('"seed": 0', '"seed": Infinity').encode(), "its seed"),
]


@pytest.mark.parametrize(("make", "match"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_crafted_metadata_json_is_refused(make: Callable[[dict[str, Any]], bytes], match: str, base: Path,
                                          tmp_path: Path) -> None:
    path = edited(base, tmp_path / "bad.npz", lambda m, a: make(m))
    refused(path, match)


# ---------------------------------------------------------------------------------- not files
def test_things_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    refused(tmp_path / "none.npz", "there is no such file")
    refused(tmp_path, "it is a directory")
    if os.path.exists("/dev/zero"):
        refused(Path("/dev/zero"), "it is not a regular file")
    fifo = tmp_path / "fifo.npz"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        done = threading.Event()

        def load() -> None:  # a FIFO without a writer would block an open() forever
            with pytest.raises(CheckpointError, match="not a regular file"):
                load_checkpoint(fifo)
            done.set()

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        thread.join(10)
        assert done.is_set(), "reading a FIFO blocked"
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    refused(loop, "cannot be opened")


# ---------------------------------------------------------------------------------- saving
def test_a_killed_save_leaves_debris_that_the_next_save_removes(base: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of a save: its temporary file stays; the next save to the same
    path removes it (and those of other killed saves), but never a running save's file."""
    target = tmp_path / "run.npz"
    script = (
        "import os, sys, numpy as np\n"
        "from backprop.atomic import atomic_write\n"
        "def write(fh):\n"
        "    fh.write(b'x' * 100000); fh.flush(); print('writing', flush=True); sys.stdin.readline()\n"
        f"atomic_write({str(target)!r}, write)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    killed = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
              for _ in range(3)]  # three saves at once: none removes another's file, all are locked
    for child in killed:
        assert child.stdout is not None and child.stdout.readline() == b"writing\n"
    assert len(temp_files(target)) == 3
    for child in killed:
        child.kill()
        child.wait()
        assert child.stdout is not None and child.stdin is not None
        child.stdout.close()
        child.stdin.close()
    running = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert running.stdout is not None and running.stdout.readline() == b"writing\n"
    try:
        shutil.copy(base, tmp_path / "other.npz")
        save_checkpoint(target, bp.Sequential(bp.Dense(2, 2), seed=0))
        left = temp_files(target)
        assert len(left) == 1, left  # the running save's file, untouched
        assert load_checkpoint(target).model.seed == 0
    finally:
        assert running.stdin is not None
        running.stdin.write(b"\n")
        running.stdin.close()
        assert running.wait(30) == 0
        assert running.stdout is not None
        running.stdout.close()
    assert temp_files(target) == [] and target.read_bytes() == b"x" * 100000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz", "run.npz"]


def test_stale_temporary_files_of_other_targets_and_other_files_are_left_alone(tmp_path: Path) -> None:
    names = [".run.npz.0123456789ab.tmp", ".run.npz.0123456789ab.tmp.keep", ".other.npz.0123456789ab.tmp",
             ".run.npz.XYZ.tmp", "run.npz.0123456789ab.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".run.npz.fedcba987654.tmp").symlink_to(tmp_path / ".other.npz.0123456789ab.tmp")
    assert remove_stale_temps(tmp_path / "run.npz") == [str(tmp_path / ".run.npz.0123456789ab.tmp")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[1:], ".run.npz.fedcba987654.tmp"])


def test_a_failing_write_of_several_files_changes_none(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_bytes(b"old")

    def fail(fh: Any) -> None:
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write_all([(first, lambda fh: fh.write(b"new")), (second, fail)])
    assert first.read_bytes() == b"old" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    with pytest.raises(ValueError, match="the same file is to be written twice"):
        atomic_write_all([(first, lambda fh: None), (tmp_path / "." / "a.csv", lambda fh: None)])
    atomic_write(second, lambda fh: fh.write(b"ok"))
    assert second.read_bytes() == b"ok"


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_fails_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError):
            save_checkpoint(folder / "x.npz", bp.Sequential(bp.Dense(2, 2), seed=0))
    finally:
        folder.chmod(stat.S_IRWXU)
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------------------------- fuzzing
def test_fuzzing_the_reader_under_a_memory_limit() -> None:
    """Hypothesis mutates the bytes, the structure and the metadata of valid files; every
    file either loads or raises `CheckpointError`, in a process whose address space is capped
    (a reader that allocated what a file declares would die of MemoryError)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(HERE / "fuzz_checkpoints.py"), "--examples", "250"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert "fuzzed" in done.stdout


def test_a_model_file_that_loads_is_the_model_that_was_saved(base: Path) -> None:
    """No hostile case above may be a silently different model: the base loads bit for bit."""
    model, *_ = base_model()
    loaded = load_checkpoint(base).model
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)
