"""TOML model files on Python 3.10: ``tomli`` is a declared dependency there, imported only
when a TOML file is read, and its absence is a clear error."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

from backprop.cli import model_spec
from backprop.cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_declares_tomli_for_python_before_3_11() -> None:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    markers = [d for d in project["dependencies"] if d.replace(" ", "").startswith("tomli")]
    assert len(markers) == 1 and "python_version<'3.11'" in markers[0].replace(" ", "").replace('"', "'")


def test_python_3_10_reads_toml_with_tomli(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = types.ModuleType("tomli")
    stand_in.loads = lambda text: {"read by": "tomli", "text": text}  # type: ignore[attr-defined]
    stand_in.TOMLDecodeError = ValueError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tomli", stand_in)
    assert model_spec._toml_module((3, 10, 14)) is stand_in
    if sys.version_info >= (3, 11):
        tomllib = importlib.import_module("tomllib")
        assert model_spec._toml_module() is tomllib  # 3.11+ never needs tomli
        assert model_spec._toml_module((3, 11, 0)) is tomllib


def test_python_3_10_without_tomli_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomli", None)  # `import tomli` raises ImportError
    with pytest.raises(UsageError, match=r"Python 3\.10, tomli.*pip install tomli.*\.json"):
        model_spec._toml_module((3, 10, 14))


def test_import_backprop_cli_does_not_import_a_toml_parser() -> None:
    code = "import sys, backprop.cli; print(any(m in sys.modules for m in ('tomli', 'tomllib')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
