"""Fixed-width text for `backprop.progress`: numbers, rates, durations and the epoch table.

Every field has a fixed width, so a column never shifts from one epoch to the next, and the
table drops its least useful columns (never the validation values) until a line fits the
terminal::

                  loss  accuracy      lr  val_loss  val_accuracy  steps/s      time
    epoch  3/60 0.5860    0.8322  0.0005    0.3798        0.9167    10.1k      1.5s
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "NUMBER_WIDTH",
    "RATE_WIDTH",
    "Table",
    "format_duration",
    "format_number",
    "format_rate",
    "format_values",
    "layout",
]

#: characters of every value column: 4 significant digits for values in [0.1, 10)
NUMBER_WIDTH = 6
RATE_WIDTH = 6  # "812.3k"
TIME_WIDTH = 8  # "1h02m05s"
GAP = "  "
#: long metric names and their short forms, used when a line would not fit otherwise
ABBREVIATIONS = (("accuracy", "acc"), ("balanced_", "bal_"), ("mean_", ""), ("_error", "_err"))


def format_number(value: float, width: int = NUMBER_WIDTH) -> str:
    """``value`` in exactly ``width`` characters, right-aligned: fixed point with as many
    decimals as fit (``0.8206``, ``12.346``, ``123456``), scientific when that would show too
    few digits (``1.2e-5``, ``3.4e+8`` -> ``3.4e8``); ``nan``/``inf`` as such. Only a value
    that cannot be written in ``width`` characters at all comes out wider."""
    v = float(value)
    if not math.isfinite(v) or v == 0:
        return (str(v) if v != 0 else f"{0:.{max(0, width - 2)}f}").rjust(width)
    room = width - (v < 0)
    magnitude = abs(v)
    if 1e-3 <= magnitude < 10**room:
        digits = max(1, math.floor(math.log10(magnitude)) + 1)
        for decimals in (room - digits - 1, room - digits - 2):  # rounding may add a digit
            text = f"{v:.{max(0, decimals)}f}"
            if len(text) <= width:
                return text.rjust(width)
    text = ""
    for precision in range(room, -1, -1):
        mantissa, exponent = f"{v:.{precision}e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
        if len(text) <= width:
            break
    return text.rjust(width)


def format_rate(per_second: float) -> str:
    """A rate the way people read it, at most 6 characters: ``2.5``, ``812``, ``10.1k``,
    ``1.2M``."""
    r = float(per_second)
    if not math.isfinite(r):
        return str(r)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if r >= scale * 0.99995:  # 999.96 reads better as 1.0k than as 1000
            return f"{r / scale:.1f}{suffix}"
    return f"{r:.1f}" if r < 10 else f"{r:.0f}"


def format_duration(seconds: float) -> str:
    """``"4.2s"``, ``"2m05s"`` or ``"1h02m05s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_values(values: Mapping[str, float]) -> str:
    """``"loss 0.1235  accuracy 0.9877"``: each value in its fixed-width field."""
    return GAP.join(f"{k} {format_number(v).strip()}" for k, v in values.items())


@dataclass(frozen=True)
class Table:
    """The columns an epoch line shows: value ``keys`` under ``headers``, then optionally
    steps/s and the elapsed time. ``label_width`` is the width of ``"epoch  3/60"``."""

    label_width: int
    keys: tuple[str, ...]
    headers: tuple[str, ...]
    rate: bool = True
    time: bool = True

    def _widths(self) -> list[int]:
        widths = [max(NUMBER_WIDTH, len(h)) for h in self.headers]
        if self.rate:
            widths.append(max(RATE_WIDTH, len("steps/s")))
        if self.time:
            widths.append(TIME_WIDTH)
        return widths

    @property
    def width(self) -> int:
        """Characters in every line of this table."""
        return self.label_width + sum(len(GAP) + w for w in self._widths())

    def header(self) -> str:
        """The line of column names, aligned with `row`'s fields."""
        names = [*self.headers, *(["steps/s"] if self.rate else []), *(["time"] if self.time else [])]
        return " " * self.label_width + "".join(GAP + n.rjust(w) for n, w in zip(names, self._widths()))

    def row(self, label: str, values: Mapping[str, float], rate: float | None, elapsed: float) -> str:
        """One epoch: ``label`` then each value in its column (blank if missing)."""
        cells = [format_number(values[k]) if k in values else "" for k in self.keys]
        if self.rate:
            cells.append("" if rate is None else format_rate(rate))
        if self.time:
            cells.append(format_duration(elapsed))
        return label.ljust(self.label_width) + "".join(GAP + c.rjust(w) for c, w in zip(cells, self._widths()))


def layout(keys: Sequence[str], label_width: int, width: int) -> Table:
    """The widest table of ``keys`` that fits ``width`` characters. Columns are ordered
    training values, validation values (``val_*``), ``lr``; to fit, names are abbreviated
    (``accuracy`` -> ``acc``), then ``lr``, steps/s, the time and training metrics other than
    the loss are dropped, in that order. Validation values and the loss always stay."""
    train = [k for k in keys if not k.startswith("val_") and k != "lr"]
    ordered = [*train, *(k for k in keys if k.startswith("val_")), *(k for k in keys if k == "lr")]
    table = Table(label_width, tuple(ordered), tuple(ordered))
    if table.width <= width:
        return table
    table = Table(label_width, table.keys, tuple(_abbreviate(k) for k in table.keys))
    droppable = [k for k in ordered if k == "lr"] + ["steps/s", "time"] + [k for k in reversed(train) if k != "loss"]
    for victim in droppable:
        if table.width <= width:
            break
        if victim == "steps/s":
            table = Table(label_width, table.keys, table.headers, rate=False, time=table.time)
        elif victim == "time":
            table = Table(label_width, table.keys, table.headers, rate=table.rate, time=False)
        else:
            kept = [(k, h) for k, h in zip(table.keys, table.headers) if k != victim]
            table = Table(label_width, tuple(k for k, _ in kept), tuple(h for _, h in kept), table.rate, table.time)
    return table


def _abbreviate(name: str) -> str:
    for long, short in ABBREVIATIONS:
        name = name.replace(long, short)
    return name
