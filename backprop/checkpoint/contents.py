"""What a checkpoint must contain, checked before any member's data is read.

`plan` takes an `Archive` whose directory, headers and metadata JSON are already checked for
form (`archive.open_archive`) and checks the metadata against its schema (`metadata_schema`:
every field's type, range and nesting), then the consistency between its parts: the layers
the architecture names are registered and their configurations are what the layers read back;
the parameters the architecture implies (Dense in and out features, norm features) are exactly
the weight members, with the declared shapes and the checkpoint's dtype; the optimizer updates
parameters the model has and its state is complete for its type; every array reference names a
member under its field's prefix; and no member is there that nothing refers to. The `Plan` it
returns says what each member must hold, and `read_arrays` reads them and checks their values
(weights and optimizer state finite real floats that fit the target dtype, Adam's second
moments and running variances non-negative). Every refusal is a `CheckpointError` paragraph.

This module ties the checks together and holds those between the parts (references, rng
paths, weights, members nothing refers to) and the value checks; the schema table is in
`metadata_fields`, the architecture and `Plan` in `architecture`, the optimizer's checks in
`optimizer_state`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .architecture import MODEL, Plan, check_float_member, layer_variables, rebuild_layers
from .archive import Archive
from .errors import checkpoint_error
from .members import METADATA
from .metadata_fields import FIELDS, metadata_schema
from .optimizer_state import check_optimizer
from .schema import references

__all__ = ["FIELDS", "Plan", "metadata_schema", "plan", "read_arrays"]


def plan(path: Any, archive: Archive, dtype: str | None = None) -> Plan:
    """Check ``archive``'s metadata and members without reading their data (see the module's
    documentation); ``dtype`` is the dtype the model will be built in (default the saved one)."""
    metadata = archive.metadata
    metadata_schema(path, metadata)
    saved = np.dtype(metadata["dtype"])
    layers = rebuild_layers(path, metadata)
    variables, open_prefixes, layer_paths = layer_variables(layers)
    result = Plan(saved, np.dtype(dtype) if dtype else saved, layers, variables, open_prefixes, layer_paths)
    _check_rng_paths(path, metadata["rng"], layer_paths)
    _check_references(path, metadata, archive, result)
    _check_weights(path, archive, result)
    if metadata["optimizer"] is not None:
        check_optimizer(path, metadata["optimizer"], archive, result)
    unexpected = [
        name for name in archive.members
        if name != METADATA and name not in result.referenced and name not in result.optimizer_arrays
        and not (name.startswith(MODEL) and result.weight_shape(name[len(MODEL):]) is not None)
    ]
    if unexpected:
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        listed = ", ".join(map(repr, unexpected[:5])) + more
        raise checkpoint_error(
            path,
            f"it has members that nothing in it refers to ({listed}): neither the architecture's weights, the "
            "optimizer's state nor an array its metadata references; a file backprop writes has no such members "
            "(a tampered or badly merged file)",
        )
    return result


def _check_rng_paths(path: Any, states: dict[str, Any], layer_paths: set[str]) -> None:
    for key in states:
        if key in ("shuffle", "noise"):
            continue
        position = key.rpartition(":")[0]
        if position not in layer_paths:
            raise checkpoint_error(
                path,
                f"its random generators' states cannot be used: the entry {key!r} is for a layer {position!r} its "
                "architecture does not have",
            )


_PREFIXES = {
    "rng": "rng",
    "extra": "extra",
    "history": "history",
    "scheduler": "scheduler",
}


def _check_references(path: Any, metadata: dict[str, Any], archive: Archive, result: Plan) -> None:
    """Every array reference names an existing member under its field's prefix."""
    fields: list[tuple[str, Any]] = [(key, metadata[key]) for key in _PREFIXES]
    optimizer = metadata["optimizer"]
    if optimizer is not None:
        fields += [("optimizer", optimizer["hyperparameters"]), ("optimizer", optimizer["scalars"]),
                   ("optimizer", optimizer["initial_lr"])]
    for key, value in fields:
        for name in references(value):
            what = FIELDS[key][0]
            if name not in archive.members:
                raise checkpoint_error(
                    path, f"{what} cannot be used: array member {name!r}, referenced by the metadata, is missing"
                )
            if name in result.referenced:
                raise checkpoint_error(path, f"{what} cannot be used: array member {name!r} is referenced twice")
            result.referenced[name] = key


def _check_weights(path: Any, archive: Archive, result: Plan) -> None:
    present = {name[len(MODEL):]: member for name, member in archive.members.items() if name.startswith(MODEL)}
    missing = [name for name in result.variables if name not in present]
    if missing:
        name = missing[0]
        variable = result.variables[name]
        raise checkpoint_error(
            path,
            f"its weights cannot be used: the file is missing {name!r} (member '{MODEL}{name}', {variable.shape} for "
            f"{variable.layer}), which its architecture has"
            + (f"; {len(missing) - 1} more are missing" if len(missing) > 1 else ""),
        )
    for name, member in present.items():
        found = result.weight_shape(name)
        if found is not None:  # otherwise reported as a member nothing refers to
            check_float_member(path, member, result, "its weights", found.shape, found.layer)


# ---------------------------------------------------------------------------------- reading values
def read_arrays(path: Any, archive: Archive, result: Plan) -> dict[str, np.ndarray]:
    """Every member but the metadata, read and CRC-checked; weights and optimizer state are
    also checked to be finite, to fit ``result.target`` and, where it matters, non-negative,
    and come back in the native byte order."""
    arrays: dict[str, np.ndarray] = {}
    limit = float(np.finfo(result.target).max)
    for name in archive.members:
        if name == METADATA:
            continue
        value = archive.read(name)
        rule: tuple[str, bool] | None = None
        if name.startswith(MODEL):
            variable = result.weight_shape(name[len(MODEL):])
            rule = ("its weights", bool(variable and variable.non_negative))
        elif name in result.optimizer_arrays:
            rule = ("its optimizer", result.optimizer_arrays[name][1])
        if rule is not None:
            what, non_negative = rule
            if not value.dtype.isnative:
                value = value.astype(value.dtype.newbyteorder("="))
            _check_values(path, name, value, what, non_negative, limit, result.target)
        arrays[name] = value
    return arrays


def _check_values(path: Any, name: str, value: np.ndarray, what: str, non_negative: bool, limit: float,
                  target: np.dtype) -> None:
    if value.size == 0:
        return
    finite = np.isfinite(value)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise checkpoint_error(
            path, f"{what} cannot be used: member {name!r} holds {float(value[where])} at {where}; the values must be "
            "finite"
        )
    del finite
    largest = float(np.max(np.abs(value)))
    if largest > limit:
        raise checkpoint_error(
            path,
            f"{what} cannot be used: member {name!r} holds {largest:.4g}, which does not fit {target} (at most "
            f"{limit:.4g}): it would become infinite",
        )
    if non_negative and float(np.min(value)) < 0:
        where = tuple(int(i) for i in np.argwhere(value < 0)[0])
        raise checkpoint_error(
            path,
            f"{what} cannot be used: member {name!r} holds {float(value[where]):.4g} at {where}; it is a running "
            "average of squares (or a variance) and cannot be negative",
        )

