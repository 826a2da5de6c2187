"""Draw the README's speed chart from the measured tables of docs/speed.md.

The chart is made from the documentation's own tables, so the two cannot disagree: the first
table under "## On a CPU" and the first under "## On a GPU" (columns ``config | variant | median
ms/step | ...``, as ``benchmarks/run.py`` prints them), each with the ``**Machine:**`` line above
it. Every training-step variant is drawn as its speed relative to PyTorch's eager step on the
same machine and configuration: one over the table's ``÷ torch eager`` column (a ratio taken
within each run, so higher is faster), labelled with its median ms per step. The rows timing
matrix products alone (``GEMMs``) are no training step and are left out.

    python scripts/speed_chart.py                      # writes docs/images/speed.png
    python scripts/speed_chart.py --out /tmp/speed.png
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"CPU": "## On a CPU", "GPU": "## On a GPU"}
BASELINE = "torch eager"  # the variant every other is compared with ("torch eager, fused Adam" on a GPU)
RATIO = "÷ torch eager"  # the column of each variant's time over the baseline's

__all__ = ["Measured", "main", "measured"]


@dataclass
class Measured:
    """One section's table: the machine it ran on, ``{config: {variant: median ms}}`` and
    ``{config: {variant: speed relative to torch eager}}``."""

    machine: str
    medians: dict[str, dict[str, float]]
    speeds: dict[str, dict[str, float]]


def measured(page: str) -> dict[str, Measured]:
    """The CPU and GPU tables of ``page`` (the text of docs/speed.md), by section."""
    found = {}
    for kind, heading in SECTIONS.items():
        start = page.find("\n" + heading + "\n")
        if start < 0:
            raise ValueError(f"docs/speed.md has no section {heading!r}")
        following = page.find("\n## ", start + len(heading) + 1)
        section = page[start : following if following >= 0 else len(page)]
        found[kind] = _table(section, heading)
    return found


def _table(section: str, heading: str) -> Measured:
    machine = re.search(r"\*\*Machine:\*\*\s*(.*?);", section, flags=re.S)
    if machine is None:
        raise ValueError(f"section {heading!r} has no '**Machine:** ...;' line")
    lines = section[section.find("| config | variant | median ms/step"):].splitlines()
    if not lines or not lines[0].startswith("| config"):
        raise ValueError(f"section {heading!r} has no table with the columns 'config | variant | median ms/step'")
    header = _cells(lines[0])
    if RATIO not in header:
        raise ValueError(f"the table of section {heading!r} has no column {RATIO!r}")
    ratio = header.index(RATIO)
    medians: dict[str, dict[str, float]] = {}
    speeds: dict[str, dict[str, float]] = {}
    config = ""
    for line in lines[2:]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        cells = _cells(line)
        config = cells[0] or config  # an empty first cell continues the configuration above
        if "GEMMs" not in cells[1]:
            medians.setdefault(config, {})[cells[1]] = float(cells[2])
            # "0.177 (5.6 times faster ...)": the ratio is the leading number
            speeds.setdefault(config, {})[cells[1]] = 1.0 / float(cells[ratio].split()[0])
    return Measured(_short(" ".join(machine.group(1).split())), medians, speeds)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _short(machine: str) -> str:
    """``AMD EPYC (2 cores, avx2+fma+avx)`` -> ``AMD EPYC (2 cores)``: the first detail only."""
    return re.sub(r"\(([^,()]*),[^()]*\)", r"(\1)", machine)


def draw(tables: dict[str, Measured], out: Path) -> None:
    """One panel per machine: per configuration, a bar per variant, labelled with its median."""
    # matplotlib is needed by this script only (the library's plot extra)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(11.0, 4.2), layout="constrained")
    colours = {"backprop": "tab:blue", "backprop graph": "tab:blue", "backprop, eager": "tab:cyan",
               "backprop, NumPy's kernels": "tab:cyan", "torch graph": "tab:red"}
    for index, (kind, table) in enumerate(tables.items()):
        ax = figure.add_subplot(1, len(tables), index + 1)
        width = 0.8 / max(len(v) for v in table.medians.values())
        order = list(dict.fromkeys(v for variants in table.medians.values() for v in variants))  # first seen
        labels = []
        for i, (config, variants) in enumerate(table.medians.items()):
            for j, variant in enumerate(sorted(variants, key=order.index)):  # the same order in every group
                ms = variants[variant]
                colour = "tab:orange" if variant.startswith(BASELINE) else colours.get(variant, "tab:gray")
                x = i + (j - (len(variants) - 1) / 2) * width
                bar = ax.bar(x, table.speeds[config][variant], width * 0.92, color=colour, label=variant)
                ax.bar_label(bar, [f"{ms:g} ms"], fontsize=6.5, rotation=90, padding=2)
            name, _, details = config.partition(" (")
            labels.append(name + ("\n" + textwrap.fill("(" + details, 26) if details else ""))
        ax.set_xticks(range(len(labels)), labels, fontsize=7.5)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_ylabel("speed relative to PyTorch eager (higher is faster)", fontsize=8)
        ax.set_title(f"{kind}: {table.machine}", fontsize=9)
        ax.margins(y=0.18)
        handles = {h.get_label(): h for h in ax.get_legend_handles_labels()[0]}
        ax.legend(handles.values(), handles.keys(), fontsize=7, loc="upper right")
        ax.grid(True, axis="y", alpha=0.3)
    figure.suptitle("A training step's speed relative to PyTorch's eager step (bars) and its median time (labels), "
                    "from docs/speed.md", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "speed.md")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "speed.png")
    args = parser.parse_args(argv)
    tables = measured(args.page.read_text(encoding="utf-8"))
    draw(tables, args.out)
    for kind, table in tables.items():
        speeds = {config: {v: round(x, 2) for v, x in vs.items()} for config, vs in table.speeds.items()}
        print(f"{kind} ({table.machine}), speed relative to {BASELINE}: {speeds}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
