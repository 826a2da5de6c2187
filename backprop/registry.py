"""Registries: the classes a saved file or a command line may name, by name.

Checkpoints store a model's architecture, its optimizer and its schedule as names and
configurations (`get_config`), and rebuild them with `from_config` from the class registered
under that name; the CLI looks options up the same way. A name read from a file is only ever
looked up here, never imported: only classes registered on purpose can be built from a file.
The library registers its own classes; users register theirs with the decorators
``@bp.register_layer``, ``@bp.register_optimizer``, ``@bp.register_schedule`` and
``@bp.register_loss`` (Keras' ``register_keras_serializable``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = [
    "LAYERS",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Registry",
    "register_layer",
    "register_loss",
    "register_optimizer",
    "register_schedule",
]

C = TypeVar("C", bound=type)


class Registry(Generic[C]):
    """Classes of one kind by name, plus lower-case aliases for people typing them (``"adam"``,
    ``"cross-entropy"``). A class is saved under its registered name and rebuilt from it."""

    def __init__(self, kind: str, decorator: str):
        self.kind, self._decorator = kind, decorator
        self._classes: dict[str, C] = {}
        self._aliases: dict[str, str] = {}
        self._given: list[str] = []

    def register(self, cls: C | None = None, *, name: str | None = None, aliases: tuple[str, ...] = ()) -> Any:
        """Register ``cls`` under ``name`` (default: its class name), as a decorator or a call.
        Registering another class under a taken name is refused; the same class again is fine."""

        def add(cls: C) -> C:
            key = name or cls.__name__
            held = self._classes.get(key)
            if held is not None and held is not cls:
                raise ValueError(
                    f"a {self.kind} named {key!r} is registered already ({held.__module__}.{held.__qualname__}); "
                    f"register {cls.__qualname__} under another name: @{self._decorator}(name='...')"
                )
            self._classes[key] = cls
            for alias in (key, *aliases):
                self._aliases[_normal(alias)] = key
            self._given += [a for a in aliases if a not in self._given]
            return cls

        return add if cls is None else add(cls)

    def __getitem__(self, name: str) -> C:
        """The class registered as ``name`` (or an alias of it, in any case, ``-`` for ``_``)."""
        if isinstance(name, str):
            key = name if name in self._classes else self._aliases.get(_normal(name))
            if key is not None:
                return self._classes[key]
        raise ValueError(
            f"unknown {self.kind} {name!r}: known {self.kind}s are {', '.join(sorted(self._classes))}. "
            f"A class of your own must be registered before it is named: @{self._decorator}"
        )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._classes or _normal(name) in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))

    def aliases(self) -> list[str]:
        """The lower-case names classes were registered with (``"adam"``, ``"cross_entropy"``)."""
        return sorted(self._given)

    def name_of(self, obj: Any) -> str:
        """The name ``obj``'s class is registered under (the class itself, not a subclass)."""
        cls = obj if isinstance(obj, type) else type(obj)
        for key, held in self._classes.items():
            if held is cls:
                return key
        raise TypeError(
            f"{cls.__qualname__} is not a registered {self.kind}, so it cannot be saved by name: "
            f"decorate it with @{self._decorator}"
        )


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")


LAYERS: Registry[type] = Registry("layer", "bp.register_layer")
OPTIMIZERS: Registry[type] = Registry("optimizer", "bp.register_optimizer")
SCHEDULES: Registry[type] = Registry("schedule", "bp.register_schedule")
LOSSES: Registry[type] = Registry("loss", "bp.register_loss")

register_layer: Callable[..., Any] = LAYERS.register
register_optimizer: Callable[..., Any] = OPTIMIZERS.register
register_schedule: Callable[..., Any] = SCHEDULES.register
register_loss: Callable[..., Any] = LOSSES.register
