"""The documentation's pages and their code blocks, for the tests that run and check them.

A page is the README or a Markdown file under ``docs/``. A code block is a fenced block that
starts at the beginning of a line (```` ```python ````, ```` ```bash ````, ...). A page may
name the optional packages its Python examples import in a comment of its own,
``<!-- examples need: sklearn, matplotlib -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "PAGES", "ROOT", "Block", "code_blocks", "needs", "page_name"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", flags=re.M | re.S)
_NEEDS = re.compile(r"<!--\s*examples need:\s*([^>]*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (``""`` for none), its text, and the line of the page
    its first line of code is on (1-based)."""

    language: str
    code: str
    line: int


def code_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start(2)) + 1) for m in _FENCE.finditer(text)
    ]


def needs(page: Path) -> list[str]:
    """The optional modules ``page``'s examples import (its ``<!-- examples need: ... -->``)."""
    found = _NEEDS.search(page.read_text(encoding="utf-8"))
    return [name.strip() for name in found.group(1).split(",") if name.strip()] if found else []


def page_name(page: Path) -> str:
    """``README.md``, ``docs/training.md``: how tests and tracebacks name a page."""
    return page.relative_to(ROOT).as_posix()
