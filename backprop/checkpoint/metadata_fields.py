"""The metadata's schema table: `FIELDS` gives every top-level field of a checkpoint's metadata
its spec (type, range, nesting) and the words messages name it by, with the consistency checks
a field needs beyond its form (epochs that increase, a history no longer than its epochs, a
scheduler state of the scheduler's type, random generators' states); `metadata_schema` checks
a metadata dict against it."""

from __future__ import annotations

from typing import Any

from ..labels import check_classes
from ..precision import PRECISIONS
from ..registry import SCHEDULES
from .errors import checkpoint_error
from .schema import (
    JSON,
    Bool,
    Check,
    Int,
    ListOf,
    MapOf,
    Nullable,
    Number,
    Record,
    SchemaError,
    Spec,
    Str,
    describe,
)

__all__ = ["DESCRIPTION", "FIELDS", "MAX_LAYERS", "NAME", "metadata_schema"]

MAX_LAYERS = 100_000
NAME = r"[A-Za-z_][A-Za-z0-9_]{0,99}"
_PARAMETER = rf"(?:\d{{1,9}}|block)(?:\.(?:\d{{1,9}}|block))*\.{NAME}"
_PCG = ("PCG64", "PCG64DXSM")
_BIT_GENERATORS = (*_PCG, "MT19937", "Philox", "SFC64")


def _bit_generator_state(prefix: str) -> Spec:
    """A NumPy bit generator's ``state`` dict: PCG64's checked field by field; the others'
    arrays are references, checked by setting them on a generator of that type later."""
    u128, u32 = Int(0, 2**128 - 1), Int(0, 2**32 - 1)

    def fields(value: dict[str, Any], where: str) -> None:
        if value["bit_generator"] in _PCG:
            Record(
                {"bit_generator": Str(), "state": Record({"state": u128, "inc": u128}),
                 "has_uint32": Int(0, 1), "uinteger": u32},
            ).check(value, where)

    return Check(Record({"bit_generator": Str(choices=_BIT_GENERATORS)}, others=JSON(prefix)), fields)


def _history_consistent(value: dict[str, Any], where: str) -> None:
    epochs = value["epochs"]
    for i in range(1, len(epochs)):
        if epochs[i] <= epochs[i - 1]:
            raise SchemaError(f"{where}['epochs'][{i}]", f"is {epochs[i]} after {epochs[i - 1]}; epochs must increase")
    for key, series in value["history"].items():
        if len(series) > len(epochs):
            raise SchemaError(
                f"{where}['history'][{key!r}]",
                f"has {len(series)} values for {len(epochs)} epochs; a history has at most one value per epoch",
            )


def _scheduler_consistent(value: dict[str, Any], where: str) -> None:
    state = value["state"]
    kind = state.get("type")
    if kind is None:
        return  # a schedule of the user's own: any state_dict()
    if kind != value["type"]:
        raise SchemaError(
            f"{where}['state']['type']", f"is {describe(kind)} but the scheduler is {describe(value['type'])}"
        )
    if isinstance(kind, str) and kind in SCHEDULES:
        Record(
            {"type": Str(), "hyperparameters": MapOf(Str(), JSON("scheduler")), "base_lr": Number(low=0),
             "last_epoch": Int(0, 2**53), "last_lr": Number(low=0)},
            others=JSON("scheduler"),
        ).check(state, f"{where}['state']")


#: One layer's description: its registered name and its configuration (JSON, no arrays).
DESCRIPTION = Record({"class": Str(max_length=200)}, {"config": MapOf(Str(), JSON(None))})

#: The top-level fields: how messages name each, and its spec.
FIELDS: dict[str, tuple[str, Spec]] = {
    "architecture": (
        "its architecture",
        Record({"class": Str(), "config": Record({"layers": ListOf(DESCRIPTION, max_length=MAX_LAYERS)})}),
    ),
    "dtype": ("its dtype", Str(choices=("float32", "float64"))),
    "seed": ("its seed", Int(0, 2**63 - 1)),
    "training": ("its training mode", Bool()),
    "rng": (
        "its random generators' states",
        Check(
            MapOf(Str(pattern=rf"shuffle|noise|[0-9A-Za-z_.]{{1,1000}}:{NAME}"), JSON("rng"), max_length=MAX_LAYERS),
            lambda value, where: _rng_entries(value, where),
        ),
    ),
    "optimizer": (
        "its optimizer",
        Nullable(Record(
            {
                "type": Str(max_length=200),
                "hyperparameters": MapOf(Str(pattern=NAME), JSON("optimizer_hp"), max_length=100),
                "params": ListOf(Str(pattern=_PARAMETER), min_length=1, max_length=10 * MAX_LAYERS, unique=True),
                "scalars": MapOf(Str(pattern=rf"\d{{1,9}}\.{NAME}"), JSON("optimizer_scalars")),
                "initial_lr": Nullable(Number(low=0)),
            },
            {"empty_state": Bool()},
        )),
    ),
    "scheduler": (
        "its scheduler state",
        Nullable(Check(Record({"type": Str(max_length=200), "state": MapOf(Str(), JSON("scheduler"))}),
                       _scheduler_consistent)),
    ),
    "epoch": ("its epoch", Int(0, 2**53)),
    "history": (
        "its history",
        Nullable(Check(
            Record({"epochs": ListOf(Int(1, 2**53)),
                    "history": MapOf(Str(max_length=200), ListOf(Number(finite=False)), max_length=10_000)},
                   {"warnings": ListOf(Record({"epoch": Int(1, 2**53), "message": Str(max_length=10_000)}),
                                       max_length=10_000)}),
            _history_consistent,
        )),
    ),
    "extra": ("its extra values", MapOf(Str(max_length=10_000), JSON("extra"))),
    "classes": (
        "its class labels",
        Nullable(Check(ListOf(JSON(None), min_length=1, max_length=10**6), lambda value, where: _labels(value, where))),
    ),
    "threshold": ("its label threshold", Nullable(Number())),
    "library_version": ("its library version", Str(max_length=100)),
    "device": ("its device", Str(max_length=100)),
    # both absent from files older than mixed precision: those models computed in fp32
    "precision": ("its precision", Str(choices=tuple(PRECISIONS))),
    "loss_scaler": (
        "its loss scaler",
        Nullable(Record({
            "init_scale": Number(low=0), "growth_factor": Number(low=1), "backoff_factor": Number(low=0, high=1),
            "growth_interval": Int(1, 2**53), "scale": Number(low=0), "growth_tracker": Int(0, 2**53),
            "skipped": Int(0, 2**53),
        })),
    ),
}
# absent from older files: labels (then none), precision and loss scaler (then fp32)
_OPTIONAL = ("library_version", "device", "classes", "threshold", "precision", "loss_scaler")


def _labels(value: list[Any], where: str) -> None:
    try:
        check_classes(value)
    except (ValueError, TypeError) as exc:
        raise SchemaError(where, str(exc).replace("classes must be", "must be")) from None


def _rng_entries(value: dict[str, Any], where: str) -> None:
    for key in ("shuffle", "noise"):
        if key not in value:
            raise SchemaError(where, f"has no entry {key!r}")
    for key, state in value.items():
        if key.endswith(":streams"):
            Record({"spawned": Int(0, 2**32)}).check(state, f"{where}[{key!r}]")
        else:
            _bit_generator_state("rng").check(state, f"{where}[{key!r}]")
    for key in ("shuffle", "noise"):
        if value[key]["bit_generator"] != "PCG64":
            raise SchemaError(f"{where}[{key!r}]['bit_generator']", f"is {describe(value[key]['bit_generator'])}; a "
                              "model's own generators are PCG64")


def metadata_schema(path: Any, metadata: dict[str, Any]) -> None:
    """Check every top-level field of ``metadata`` against `FIELDS`."""
    for key, (what, spec) in FIELDS.items():
        if key not in metadata:
            if key in _OPTIONAL:
                continue
            raise checkpoint_error(path, f"{what} cannot be read: the entry {key!r} is missing")
        try:
            spec.check(metadata[key], key)
        except SchemaError as exc:
            raise checkpoint_error(path, f"{what} cannot be used: {exc}") from None
