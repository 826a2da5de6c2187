"""`read_table`: a CSV file as checked rows of text fields, with line numbers and column names."""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..memory import available_host_memory, format_bytes
from .errors import DataError

__all__ = ["DELIMITERS", "MAX_BYTES", "MAX_LINE", "MISSING", "Table", "is_missing", "parse_number", "read_table",
           "sniff_delimiter"]

#: The delimiters ``delimiter="auto"`` chooses from, in order of preference.
DELIMITERS = (",", ";", "\t", "|")
#: Lines ``delimiter="auto"`` looks at.
_SNIFF_LINES = 50

#: Field texts (compared lower-case, after stripping spaces) that mean "no value".
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})

#: The largest CSV text read (after decompression), in bytes: ``max_bytes=`` or the
#: environment variable ``BACKPROP_CSV_MAX_BYTES`` raise it.
MAX_BYTES = 256 << 20
#: The longest line, in characters: ``max_line=`` or ``BACKPROP_CSV_MAX_LINE`` raise it.
MAX_LINE = 1 << 20
#: Memory the parsed rows take per byte of text (Python strings in lists), for the check
#: against the memory available before parsing.
_MEMORY_PER_BYTE = 12


@dataclass(frozen=True)
class Table:
    """The data rows of a CSV file as stripped strings, all of the same length."""

    path: Path
    names: tuple[str, ...]
    has_header: bool
    rows: list[list[str]]
    lines: list[int]

    @property
    def where(self) -> str:
        """The file, as error messages name it."""
        return str(self.path)

    def columns_listing(self, limit: int = 30) -> str:
        """``'a' (0), 'b' (1), ...``: the columns with their indices, for error messages."""
        shown = [f"{name!r} ({i})" for i, name in enumerate(self.names[:limit])]
        more = f", ... ({len(self.names)} in all)" if len(self.names) > limit else ""
        return ", ".join(shown) + more


def is_missing(text: str) -> bool:
    """Whether a (stripped) field means "no value": empty, NA, N/A, NaN, null, None or ``?``."""
    return text.lower() in MISSING


def parse_number(text: str) -> float | None:
    """The number a field holds (``inf`` included), or ``None`` if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def read_table(
    path: str | Path,
    *,
    header: bool | None = None,
    delimiter: str = ",",
    max_bytes: int | None = None,
    max_line: int | None = None,
) -> Table:
    """Read a CSV file (UTF-8, optionally gzip-compressed as ``.gz``) into a `Table`.

    Blank lines are skipped. ``header=None`` detects a header row: the first row is one when
    it has a text field in a column where the second row holds a number (or, in a one-row file,
    any text field). ``True``/``False`` say so explicitly. Without a header, columns are named
    ``"column 0"``, ``"column 1"``, ... Raises `DataError` for a missing, unreadable or empty
    file, duplicate column names, and rows whose number of fields differs from the first row's.

    Only regular files are read (not devices such as ``/dev/zero``, FIFOs or directories), of
    at most ``max_bytes`` bytes of text (default `MAX_BYTES`, 256 MiB, after decompression) with
    lines of at most ``max_line`` characters (default `MAX_LINE`, 1 Mi), and only when parsing
    them fits in the memory available; the environment variables ``BACKPROP_CSV_MAX_BYTES`` and
    ``BACKPROP_CSV_MAX_LINE`` change the defaults (for the command line).

    ``delimiter`` is one character, or ``"auto"``: `sniff_delimiter` picks one of
    `DELIMITERS` from the first lines.
    """
    if not isinstance(delimiter, str) or (len(delimiter) != 1 and delimiter != "auto"):
        raise DataError(f"delimiter must be one character such as ',' or ';' or '\\t', or 'auto'; got {delimiter!r}")
    if header not in (None, True, False):
        raise DataError(f"header must be True, False or None (detect); got {header!r}")
    file = Path(path)
    limit = _limit(max_bytes, "max_bytes", "BACKPROP_CSV_MAX_BYTES", MAX_BYTES)
    text = _read_text(file, limit, _limit(max_line, "max_line", "BACKPROP_CSV_MAX_LINE", MAX_LINE))
    if delimiter == "auto":
        delimiter = sniff_delimiter(text)
    rows, lines = _rows(text, file, delimiter)
    if not rows:
        raise DataError(f"{file} is empty: a CSV data set needs rows of numbers, optionally under one header row")
    has_header = _detect_header(rows) if header is None else header
    width = len(rows[0])
    if has_header:
        names = tuple(name or f"column {i}" for i, name in enumerate(rows[0]))
        _check_unique(names, file)
        rows, lines, first = rows[1:], lines[1:], f"the header (line {lines[0]})"
        if not rows:
            raise DataError(f"{file} has a header row but no data rows: add rows of values below it")
    else:
        names = tuple(f"column {i}" for i in range(width))
        first = f"line {lines[0]}"
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            hint = " (a trailing delimiter?)" if len(row) == width + 1 and row[-1] == "" else ""
            raise DataError(
                f"{file}: line {line} has {len(row)} values but {first} has {width}{hint}: "
                "every row needs the same number of columns"
            )
    return Table(path=file, names=names, has_header=has_header, rows=rows, lines=lines)


def sniff_delimiter(text: str) -> str:
    """The delimiter of CSV ``text``: of `DELIMITERS`, the one that splits the first
    `_SNIFF_LINES` non-blank lines into the same number (more than one) of fields with the most
    numbers among them; the first of equals (``","``), and ``","`` when none splits them."""
    head = [line for line in text.splitlines()[: 4 * _SNIFF_LINES] if line.strip()][:_SNIFF_LINES]
    best, best_score = ",", (0.0, 0)
    for candidate in DELIMITERS:
        try:
            rows = list(csv.reader(head, delimiter=candidate))
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(widths) != 1 or widths == {1}:
            continue
        fields = [field.strip() for row in rows[1:] or rows for field in row]
        numbers = sum(parse_number(field) is not None for field in fields) / max(len(fields), 1)
        score = (numbers, len(rows[0]))
        if score > best_score:
            best, best_score = candidate, score
    return best


def _limit(given: int | None, name: str, variable: str, default: int) -> int:
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise DataError(f"{name} must be a whole number >= 1; got {given!r}")
        return given
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"the environment variable {variable} must be a whole number >= 1; got {text!r}")
    return value


def _read_text(file: Path, limit: int, max_line: int) -> str:
    try:
        info = os.stat(file)
    except FileNotFoundError:
        raise DataError(f"CSV file not found: {file} (looked in {file.resolve().parent}): check the path") from None
    except OSError as exc:
        raise DataError(f"cannot read {file}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{file} is a directory: pass the path of a CSV file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            f"{file} is not a regular file (a device, pipe or socket, which could stream without end): save the "
            "data to a file and pass its path"
        )
    compressed = file.suffix == ".gz"
    if not compressed and info.st_size > limit:
        raise DataError(_too_large(file, f"is {format_bytes(info.st_size)}, more than", limit))
    try:
        with open(file, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise DataError(f"{file} is not a regular file")
            if compressed:
                with gzip.GzipFile(fileobj=fh) as unzipped:
                    raw = unzipped.read(limit + 1)
            else:
                raw = fh.read(limit + 1)
        if len(raw) > limit:
            raise DataError(_too_large(file, "holds more" + (", once decompressed," if compressed else "") + " than",
                                       limit))
        _check_lines(raw, file, max_line)
        _check_memory(file, len(raw))
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as a UTF-8 CSV file"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {file}: {exc}") from None


def _too_large(file: Path, what: str, limit: int) -> str:
    return (f"{file} {what} the {format_bytes(limit)} a CSV file may hold here: pass max_bytes= (or set "
            "BACKPROP_CSV_MAX_BYTES) to read larger files, or use a .npy file")


def _check_memory(file: Path, size: int) -> None:
    available = available_host_memory()
    needed = size * _MEMORY_PER_BYTE
    if available is not None and needed > available:
        raise DataError(
            f"{file} ({format_bytes(size)}) needs about {format_bytes(needed)} of memory to parse but this process "
            f"has {format_bytes(available)} available: use a smaller file or a .npy file"
        )


def _check_lines(raw: bytes, file: Path, limit: int) -> None:
    """Refuse a line longer than ``limit`` bytes, naming it (found with NumPy, not a loop)."""
    if len(raw) <= limit:
        return
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero((data == 10) | (data == 13))
    bounds = np.concatenate(([-1], ends, [len(data)]))
    lengths = np.diff(bounds) - 1
    longest = int(np.argmax(lengths))
    if lengths[longest] > limit:
        line = raw.count(b"\n", 0, int(bounds[longest]) + 1) + 1
        raise DataError(
            f"{file}: line {line} is longer than {limit:,} bytes (is it a CSV file?): pass max_line= (or set "
            "BACKPROP_CSV_MAX_LINE) to read longer lines"
        )


def _rows(text: str, file: Path, delimiter: str) -> tuple[list[list[str]], list[int]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            rows.append([field.strip() for field in row])
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{file}: line {reader.line_num} is not valid CSV ({exc})") from None
    return rows, lines


def _is_text(field: str) -> bool:
    return not is_missing(field) and parse_number(field) is None


def _detect_header(rows: list[list[str]]) -> bool:
    first = rows[0]
    if len(rows) == 1:
        return any(_is_text(f) for f in first)
    second = rows[1]
    return any(
        _is_text(f) and i < len(second) and _is_finite_number(second[i]) for i, f in enumerate(first)
    )


def _is_finite_number(field: str) -> bool:
    value = parse_number(field)
    return value is not None and math.isfinite(value)


def _check_unique(names: tuple[str, ...], file: Path) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(
                f"{file}: the header names column {name!r} twice (columns {seen[name]} and {i}): rename one"
            )
        seen[name] = i
