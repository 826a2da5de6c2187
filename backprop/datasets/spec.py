"""`load`: a data set from a short text spec, as a command line's ``--data`` gives it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .csv_file import TASK_CHOICES, load_csv
from .dataset import Dataset
from .digits import digits
from .errors import DataError
from .synthetic import sine
from .xor import xor

__all__ = ["SPEC_FORMS", "load", "parse_csv_spec"]

#: The spellings `load` accepts, for help texts.
SPEC_FORMS = ("xor", "digits", "sine", "csv:PATH", "csv:PATH:label=COLUMN")

_OPTIONS = "label=COLUMN, task=" + "|".join(TASK_CHOICES) + ", header=yes|no"
_OPTION = re.compile(r"^\s*([A-Za-z_]+)\s*=(.*)$")
_HEADER = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False, "auto": None}


def load(
    spec: str, test_size: float = 0.2, seed: int | None = 0, *, task: str | None = None, delimiter: str | None = None
) -> Dataset:
    """The data set a spec names, split with ``test_size`` and ``seed``.

    - ``"xor"``: `xor` (4 samples, no held-out set: the test arrays are copies of the training
      arrays, ``test_is_train=True``; ``test_size`` and ``seed`` do not apply).
    - ``"digits"``: `digits`, the bundled 8x8 handwritten digits.
    - ``"sine"``: `sine`, a small synthetic regression set.
    - ``"csv:PATH"``: `load_csv` on ``PATH`` (label = last column), followed by optional
      ``:label=COLUMN`` (a name or 0-based index), ``:task=classification|regression|auto``
      and ``:header=yes|no``, e.g. ``"csv:data/iris.csv:label=species"``. ``PATH`` may itself
      contain ``:`` (``csv:C:/data/x.csv``); options are read from the end.

    ``task`` (``"auto"``, ``"classification"``, ``"regression"``) and ``delimiter`` (one
    character, or ``"auto"`` to sniff it) are passed to `load_csv` where the spec gives no
    ``task=`` of its own (one that disagrees is an error); a built-in set's task is fixed, so
    there only its own task (or ``"auto"``) is accepted, and no delimiter.

    Names are case-insensitive. Raises `DataError` listing the valid forms for anything else.
    """
    if not isinstance(spec, str):
        raise DataError(f"a data spec is a string such as 'digits' or 'csv:data.csv'; got {spec!r}")
    text = spec.strip()
    key = text.lower()
    if task is not None and task not in TASK_CHOICES:
        raise DataError(f"task must be one of {', '.join(TASK_CHOICES)}; got {task!r}")
    if key.startswith("csv:"):
        path, options = parse_csv_spec(text[4:])
        if task not in (None, "auto"):
            if options.get("task", task) != task:
                raise DataError(f"data spec {spec!r} says task={options['task']} but task {task} was asked for: "
                                "give one")
            options["task"] = task
        if delimiter is not None:
            options["delimiter"] = delimiter
        return load_csv(path, test_size=test_size, seed=seed, **options)
    built_in = {"xor": xor, "digits": lambda: digits(test_size=test_size, seed=seed),
                "sine": lambda: sine(test_size=test_size, seed=seed)}.get(key)
    if built_in is not None:
        if delimiter is not None:
            raise DataError(f"a delimiter applies to CSV files, not to the built-in data set {key!r}")
        dataset = built_in()
        if task not in (None, "auto", dataset.task):
            raise DataError(f"{key} is a {dataset.task} data set; task={task} applies to CSV files (csv:PATH)")
        return dataset
    hint = f" (a CSV file? write csv:{text})" if key.endswith((".csv", ".csv.gz")) or Path(text).is_file() else ""
    raise DataError(
        f"unknown data set {spec!r}{hint}: use one of {', '.join(SPEC_FORMS)} "
        f"(options after a CSV path: {_OPTIONS})"
    )


def parse_csv_spec(rest: str) -> tuple[str, dict[str, Any]]:
    """Split ``PATH[:label=COLUMN][:task=...][:header=...]`` (the part after ``csv:``) into the
    path and `load_csv` keyword arguments."""
    parts = rest.split(":")
    options: dict[str, Any] = {}
    while len(parts) > 1 and (match := _OPTION.match(parts[-1])):
        key, value = match.group(1).lower(), match.group(2).strip()
        if key in options:
            raise DataError(f"data spec 'csv:{rest}' gives {key}= twice: keep one")
        options[key] = _option(key, value, rest)
        parts.pop()
    path = ":".join(parts).strip()
    if not path:
        raise DataError(f"data spec 'csv:{rest}' has no file path: write csv:PATH, e.g. csv:data.csv:label=y")
    return path, options


def _option(key: str, value: str, rest: str) -> Any:
    if key == "label":
        if not value:
            raise DataError(f"data spec 'csv:{rest}' has an empty label=: name the label column or give its index")
        return value
    if key == "task":
        if value.lower() not in TASK_CHOICES:
            raise DataError(f"data spec 'csv:{rest}': task must be one of {', '.join(TASK_CHOICES)}; got {value!r}")
        return value.lower()
    if key == "header":
        if value.lower() not in _HEADER:
            raise DataError(f"data spec 'csv:{rest}': header must be yes or no; got {value!r}")
        return _HEADER[value.lower()]
    raise DataError(f"data spec 'csv:{rest}' has an unknown option {key!r}: the options are {_OPTIONS}")
