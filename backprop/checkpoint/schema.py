"""A small declarative validator for JSON values: what a checkpoint's metadata must look like.

A schema is a tree of `Spec` objects (`Int`, `Number`, `Str`, `Bool`, `Nullable`, `ListOf`,
`Record`, `MapOf`, `JSON`, `ArrayRef`, `Check`); ``spec.check(value, where)`` walks the value
iteratively where it can and raises `SchemaError` naming the first entry that is wrong
(``optimizer['scalars']['0.step']``), what it is and what it should be. No code runs for a
value but the checks written here: a schema never builds objects from the data it checks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "ARRAY_MARKER",
    "JSON",
    "ArrayRef",
    "Bool",
    "Check",
    "Int",
    "ListOf",
    "MapOf",
    "Nullable",
    "Number",
    "Record",
    "SchemaError",
    "Spec",
    "Str",
    "describe",
    "json_depth",
    "references",
]

ARRAY_MARKER = "__ndarray__"


class SchemaError(ValueError):
    """A value does not fit its schema: ``where`` names the entry, ``problem`` says why."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where} {problem}" if where else problem)
        self.where, self.problem = where, problem


def describe(value: Any, limit: int = 60) -> str:
    """A short description of a JSON value for messages: ``-3``, ``'no'``, ``a list of 7``."""
    if isinstance(value, dict):
        if set(value) == {ARRAY_MARKER}:
            return f"an array reference ({_short(repr(value[ARRAY_MARKER]), limit)})"
        return f"a dict of {len(value)} entries" if value else "an empty dict"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _short(repr(value), limit)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sub(where: str, key: str | int) -> str:
    """``where[key]`` as messages write it."""
    return f"{where}[{key!r}]"


class Spec:
    """One node of a schema."""

    expected = "a value"

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError

    def wrong(self, value: Any, where: str, expected: str | None = None) -> SchemaError:
        return SchemaError(where, f"is {describe(value)}; it must be {expected or self.expected}")


class Int(Spec):
    """A JSON integer (not a boolean, not ``1.0``) in ``[low, high]``."""

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high
        bounds = []
        if low is not None:
            bounds.append(f">= {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        self.expected = "a whole number" + (" " + " and ".join(bounds) if bounds else "")

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(value, where)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.wrong(value, where)


class Number(Spec):
    """A JSON number (integers included, booleans not); finite unless ``finite=False``; in
    ``[low, high]`` where given."""

    def __init__(self, low: float | None = None, high: float | None = None, *, finite: bool = True):
        self.low, self.high, self.finite = low, high, finite
        bounds = []
        if low is not None:
            bounds.append(f">= {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        self.expected = ("a finite number" if finite else "a number") + (" " + " and ".join(bounds) if bounds else "")

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong(value, where)
        if isinstance(value, int):
            value = float(value) if abs(value) < 2**1000 else math.copysign(math.inf, value)
        if math.isnan(value):
            if self.finite or self.low is not None or self.high is not None:
                raise self.wrong(value, where)
            return
        if self.finite and math.isinf(value):
            raise self.wrong(value, where)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.wrong(value, where)


class Str(Spec):
    """A string of at most ``max_length`` characters, one of ``choices`` or matching
    ``pattern`` (a full match) where given."""

    def __init__(self, *, choices: tuple[str, ...] | None = None, pattern: str | None = None, max_length: int = 4096):
        self.choices, self.max_length = choices, max_length
        self.pattern = None if pattern is None else re.compile(pattern)
        if choices is not None:
            self.expected = "one of " + ", ".join(map(repr, choices))
        elif pattern is not None:
            self.expected = f"a string of the form {pattern}"
        else:
            self.expected = f"a string of at most {max_length} characters"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, str) or len(value) > self.max_length:
            raise self.wrong(value, where)
        if self.choices is not None and value not in self.choices:
            raise self.wrong(value, where)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.wrong(value, where)


class Bool(Spec):
    """``true`` or ``false``, nothing else (not ``"no"``, not ``0``)."""

    expected = "true or false"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            raise self.wrong(value, where)


class Nullable(Spec):
    """``null`` or what ``spec`` accepts."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.expected = f"null or {spec.expected}"

    def check(self, value: Any, where: str) -> None:
        if value is not None:
            self.spec.check(value, where)


class ListOf(Spec):
    """A list of ``min_length`` to ``max_length`` items, each accepted by ``item``; with
    ``unique``, no item twice."""

    def __init__(self, item: Spec, *, min_length: int = 0, max_length: int = 10**7, unique: bool = False):
        self.item, self.min_length, self.max_length, self.unique = item, min_length, max_length, unique
        self.expected = f"a list of {item.expected}" + (f" (at least {min_length})" if min_length else "")

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise self.wrong(value, where)
        if not self.min_length <= len(value) <= self.max_length:
            raise SchemaError(
                where, f"has {len(value)} entries; it must have {self.min_length} to {self.max_length}"
            )
        for i, item in enumerate(value):
            self.item.check(item, sub(where, i))
        if self.unique:
            seen: set[Any] = set()
            for i, item in enumerate(value):
                if item in seen:
                    raise SchemaError(sub(where, i), f"is {describe(item)} a second time; each may appear once")
                seen.add(item)


class Record(Spec):
    """A dict with the ``required`` keys and any of the ``optional`` ones, each value checked
    by its spec; other keys are refused unless ``others`` is given (a spec for their values)."""

    def __init__(
        self,
        required: dict[str, Spec],
        optional: dict[str, Spec] | None = None,
        *,
        others: Spec | None = None,
        expected: str = "a dict",
    ):
        self.required, self.optional, self.others = required, optional or {}, others
        self.expected = expected

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or set(value) == {ARRAY_MARKER}:
            raise self.wrong(value, where)
        for key, spec in self.required.items():
            if key not in value:
                raise SchemaError(where, f"has no entry {key!r}")
            spec.check(value[key], sub(where, key))
        for key, item in value.items():
            if key in self.required:
                continue
            other = self.optional.get(key, self.others)
            if other is None:
                known = ", ".join(map(repr, [*self.required, *self.optional]))
                raise SchemaError(sub(where, key), f"is not an entry this format has (it has {known})")
            other.check(item, sub(where, key))


class MapOf(Spec):
    """A dict of at most ``max_length`` entries whose keys ``key`` accepts and whose values
    ``value`` accepts."""

    def __init__(self, key: Str, value: Spec, *, max_length: int = 10**6):
        self.key, self.value, self.max_length = key, value, max_length
        self.expected = f"a dict of {value.expected}"

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or set(value) == {ARRAY_MARKER}:
            raise self.wrong(value, where)
        if len(value) > self.max_length:
            raise SchemaError(where, f"has {len(value)} entries; at most {self.max_length} are allowed")
        for key, item in value.items():
            try:
                self.key.check(key, "")
            except SchemaError:
                problem = f"is a key of the wrong form; keys must be {self.key.expected}"
                raise SchemaError(sub(where, key), problem) from None
            self.value.check(item, sub(where, key))


class ArrayRef(Spec):
    """``{"__ndarray__": "<prefix>/<n>"}``: a reference to an archive member."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix
        self.expected = "an array reference" + (f" to a member '{prefix}/<n>'" if prefix else "")

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, dict) or set(value) != {ARRAY_MARKER} or not isinstance(value[ARRAY_MARKER], str):
            raise self.wrong(value, where)
        name = value[ARRAY_MARKER]
        if self.prefix is not None and not re.fullmatch(rf"{re.escape(self.prefix)}/\d{{1,9}}", name):
            raise self.wrong(value, where)


class JSON(Spec):
    """Any JSON value; array references in it must name members ``<prefix>/<n>`` (none may
    appear where ``prefix`` is ``None``)."""

    expected = "JSON values"

    def __init__(self, prefix: str | None):
        self.prefix = prefix
        self.ref = None if prefix is None else ArrayRef(prefix)

    def check(self, value: Any, where: str) -> None:
        for path, item in _walk(value, where):
            if isinstance(item, dict) and ARRAY_MARKER in item:
                if self.ref is None:
                    raise SchemaError(path, "is an array reference, which this entry cannot hold")
                self.ref.check(item, path)


class Check(Spec):
    """``spec`` and then ``test(value, where)``, a function that raises `SchemaError`."""

    def __init__(self, spec: Spec, test: Callable[[Any, str], None]):
        self.spec, self.test = spec, test
        self.expected = spec.expected

    def check(self, value: Any, where: str) -> None:
        self.spec.check(value, where)
        self.test(value, where)


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every value inside ``value`` with its path, depth first, without recursion."""
    stack = [(where, value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((sub(path, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((sub(path, i), v) for i, v in enumerate(item))


def json_depth(value: Any, limit: int) -> int:
    """The nesting depth of a JSON value (a scalar is 0, ``[1]`` is 1), counted without
    recursion and only up to ``limit + 1``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def references(value: Any) -> Iterator[str]:
    """The member names of every array reference inside ``value``."""
    for _, item in _walk(value, ""):
        if isinstance(item, dict) and set(item) == {ARRAY_MARKER} and isinstance(item[ARRAY_MARKER], str):
            yield item[ARRAY_MARKER]
