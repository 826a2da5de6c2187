"""`--layers`: a model described by its layer sizes (``128,10``) or by a small JSON/TOML file,
and the `Sequential` built from that description.

A file holds a table with ``layers`` (required) and optional defaults for the hidden layers:

    # model.toml                       # model.json
    activation = "tanh"                {"activation": "tanh", "dropout": 0.1,
    dropout = 0.1                       "layers": [64, {"units": 32, "activation": "gelu"}, 10]}
    layers = [64, 32, 10]

Each entry of ``layers`` is a size or a table ``{units, activation, dropout, init}``; the last
entry is the output layer (its size must match the data, its activation follows from the
loss). A file's settings win over ``--activation``/``--dropout``, which fill in what it leaves
out. TOML is read by ``tomllib`` (Python 3.11+) or, on 3.10, by ``tomli`` (a dependency there).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import layers as bp_layers
from ..datasets import Standardizer
from ..init import get_initializer
from ..model import Sequential
from .errors import UsageError

__all__ = ["LayerSpec", "ModelSpec", "parse_layers"]

_SIZES = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")
#: Bounds on what a description may ask for before the memory estimate has its say: a model
#: file is read only up to this size, nested no deeper, with at most this many layers.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8
MAX_LAYERS = 10_000
MAX_UNITS = 10**12
_MODEL_KEYS = ("layers", "activation", "dropout", "init")
_LAYER_KEYS = ("units", "activation", "dropout", "init")
_RELU_LIKE = ("relu", "leaky_relu", "gelu")


@dataclass(frozen=True)
class LayerSpec:
    """One Dense layer: its size and, where set, its own activation, dropout and initialiser."""

    units: int
    activation: str | None = None
    dropout: float | None = None
    init: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Hidden layers then the output layer, with defaults for the hidden layers."""

    layers: tuple[LayerSpec, ...]
    activation: str | None = None
    dropout: float | None = None
    init: str | None = None
    source: str = "--layers"

    @property
    def out_features(self) -> int:
        """The output layer's size."""
        return self.layers[-1].units

    @property
    def sizes(self) -> list[int]:
        """Every layer's size, the output's last."""
        return [layer.units for layer in self.layers]

    def build(
        self,
        in_features: int,
        *,
        activation: str,
        dropout: float,
        output_activation: str | None,
        device: str,
        dtype: str,
        seed: int,
        standardize: Standardizer | None = None,
        precision: str = "fp32",
    ) -> Sequential:
        """The model: for each hidden layer ``Dense -> activation [-> Dropout]``, then the output
        ``Dense`` (followed by ``output_activation``, e.g. ``"sigmoid"`` for the BCE loss on
        probabilities; ``None`` gives raw outputs: logits or regression values). ``activation``
        and ``dropout`` apply where this description sets none. Hidden layers of ReLU-like
        activations start from He initialisation, others (and the output) from Xavier.
        ``standardize``: the training features' statistics, which a `bp.Standardize` layer in
        front applies to every input, so that the model takes the features as they come."""
        layers: list[bp_layers.Layer] = []
        if standardize is not None:
            layers.append(bp_layers.Standardize(mean=standardize.mean, std=standardize.scale))
        features = in_features
        for spec in self.layers[:-1]:
            act = spec.activation or self.activation or activation
            init = spec.init or self.init or ("he" if act in _RELU_LIKE else "xavier")
            layers += [bp_layers.Dense(features, spec.units, init=init), bp_layers.get_activation(act)]
            rate = _first(spec.dropout, self.dropout, dropout)
            if rate:
                layers.append(bp_layers.Dropout(rate))
            features = spec.units
        out = self.layers[-1]
        layers.append(bp_layers.Dense(features, out.units, init=out.init or "xavier"))
        if output_activation:
            layers.append(bp_layers.get_activation(output_activation))
        return Sequential(*layers, device=device, dtype=dtype, seed=seed, precision=precision)


def parse_layers(text: str) -> ModelSpec:
    """``"128,64,10"`` (hidden sizes, then the output size) or the path of a ``.json`` or
    ``.toml`` model file; raises `UsageError` saying what is wrong."""
    if _SIZES.match(text):
        parts = [part.strip() for part in text.split(",")]
        if len(parts) > MAX_LAYERS:
            raise UsageError(f"--layers: {len(parts):,} layers; at most {MAX_LAYERS:,} are allowed")
        if any(len(part.lstrip("0")) > 13 for part in parts):
            raise UsageError(f"--layers {text[:40]}...: a layer size has more than 13 digits; sizes are at most "
                             f"{MAX_UNITS:,}")
        sizes = [int(part) for part in parts]
        if any(size < 1 for size in sizes):
            raise UsageError(f"--layers {text}: every layer size must be at least 1")
        if any(size > MAX_UNITS for size in sizes):
            raise UsageError(f"--layers {text}: a layer size is at most {MAX_UNITS:,}")
        return ModelSpec(tuple(LayerSpec(size) for size in sizes), source=f"--layers {text}")
    path = Path(text)
    if path.suffix.lower() not in (".json", ".toml"):
        raise UsageError(
            f"--layers {text!r} is neither a list of sizes such as 128,10 (hidden sizes, then the output size) "
            "nor a .json or .toml model file"
        )
    if path.exists() and not path.is_file():
        raise UsageError(f"--layers: {text!r} is not a regular file (a folder, device or pipe); give a model file")
    if not path.is_file():
        raise UsageError(f"--layers: model file {text!r} not found (looked in {path.resolve().parent})")
    return _from_table(_read(path), str(path))


def _read(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise UsageError(f"--layers: model file {str(path)!r} is larger than {MAX_FILE_BYTES:,} bytes; a model "
                             "description is a few lines")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--layers: cannot read model file {str(path)!r}: {exc}") from None
    deep = f"--layers: {str(path)!r} is nested too deeply (a model file is at most {MAX_DEPTH} levels deep)"
    if _depth_of_text(text) > MAX_DEPTH:
        raise UsageError(deep)
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, and integers of too many digits
            raise UsageError(f"--layers: {str(path)!r} is not valid JSON: {exc}") from None
    toml = _toml_module()
    try:
        return toml.loads(text)
    except (toml.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"--layers: {str(path)!r} is not valid TOML: {exc}") from None


def _depth_of_text(text: str) -> int:
    """An upper bound on the nesting of JSON or TOML text: the deepest run of opening
    brackets and braces not yet closed (strings included, so it never undercounts)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _toml_module(python: tuple[int, ...] | None = None) -> Any:
    """The TOML parser: ``tomllib`` on Python 3.11+, else ``tomli`` (a dependency there, declared
    ``tomli; python_version < "3.11"``), imported only when a TOML file is read. ``python`` is
    the version to act for (default: this one), so that tests can take the 3.10 path."""
    if sys.version_info >= (3, 11) and (python is None or python >= (3, 11)):  # type checkers skip tomllib on 3.10
        try:
            import tomllib  # noqa: PLC0415 - only TOML model files need a TOML parser
        except ImportError:  # only where it is blocked, as the tests do to play Python 3.10
            pass
        else:
            return tomllib
    try:
        import tomli  # noqa: PLC0415 - optional: the same parser, installable on Python 3.10

        return tomli
    except ImportError:
        raise UsageError(
            "--layers: reading a TOML model file needs Python 3.11+ (tomllib) or, on Python 3.10, tomli, which "
            "backprop-nn depends on there but is missing: pip install tomli; or write the model as a .json file "
            "with the same keys"
        ) from None


def _from_table(data: Any, source: str) -> ModelSpec:
    where = f"model file {source!r}"
    if not isinstance(data, dict):
        raise UsageError(f"{where} must hold a table with a 'layers' list, e.g. {{\"layers\": [128, 10]}}")
    _check_keys(data, _MODEL_KEYS, where)
    entries = data.get("layers")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{where} needs 'layers': a non-empty list of sizes or tables, the output layer last")
    if len(entries) > MAX_LAYERS:
        raise UsageError(f"{where} has {len(entries):,} layers; at most {MAX_LAYERS:,} are allowed")
    specs = tuple(_layer(entry, f"{where}, layer {i}") for i, entry in enumerate(entries))
    last = specs[-1]
    if last.activation is not None or last.dropout is not None:
        raise UsageError(
            f"{where}: the last layer is the output layer; its activation follows from the loss and it takes no "
            "dropout: remove 'activation'/'dropout' from it"
        )
    return ModelSpec(
        specs,
        activation=_activation(data.get("activation"), where),
        dropout=_dropout(data.get("dropout"), where),
        init=_init(data.get("init"), where),
        source=source,
    )


def _layer(entry: Any, where: str) -> LayerSpec:
    if isinstance(entry, dict):
        _check_keys(entry, _LAYER_KEYS, where)
        if "units" not in entry:
            raise UsageError(f"{where} needs 'units', its size")
        return LayerSpec(
            _units(entry["units"], where),
            _activation(entry.get("activation"), where),
            _dropout(entry.get("dropout"), where),
            _init(entry.get("init"), where),
        )
    return LayerSpec(_units(entry, where))


def _check_keys(table: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    unknown = [key for key in table if key not in valid]
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}: the keys are {', '.join(valid)}")


def _units(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UNITS:
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        raise UsageError(f"{where}: a layer size must be a whole number from 1 to {MAX_UNITS:,}; got {shown}")
    return value


def _activation(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        bp_layers.get_activation(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return str(value).lower().replace("-", "_")


def _dropout(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UsageError(f"{where}: dropout must be a probability from 0 up to, not including, 1; got {value!r}")
    return float(value)


def _init(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: init must be a name such as 'he' or 'xavier'; got {value!r}")
    try:
        get_initializer(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return value.lower()


def _first(*values: float | None) -> float:
    return next((float(v) for v in values if v is not None), 0.0)
