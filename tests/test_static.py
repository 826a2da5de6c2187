"""Static checks, configured in pyproject.toml: mypy on the package and ruff on the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_mypy_passes() -> None:
    pytest.importorskip("mypy")
    result = run_tool("mypy")  # the files and settings come from [tool.mypy]
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"


def test_ruff_passes() -> None:
    pytest.importorskip("ruff")
    result = run_tool("ruff", "check", "--output-format=concise", ".")
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"
