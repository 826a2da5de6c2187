"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if "import backprop as bp" in b]


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write files (checkpoints)
    if "sklearn" in python_blocks()[index]:  # the scikit-learn section needs the optional extra
        pytest.importorskip("sklearn")
    if "TensorBoard" in python_blocks()[index]:  # so does the TensorBoard callback
        pytest.importorskip("tensorboardX")
    exec(compile(python_blocks()[index], f"README block {index}", "exec"), {})
    assert capsys.readouterr().out  # every example prints something
