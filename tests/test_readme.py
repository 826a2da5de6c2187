"""The README's and the documentation pages' examples run as written.

Every ```` ```python ```` block of a page runs, in order, in one namespace (a block may use what
an earlier block of the same page defined), in a temporary directory, and must print something.
There is no way to leave a Python block out: what cannot run everywhere is written as text or
made to run everywhere (``device = "cuda" if ... else "cpu"``). A page whose examples import an
optional package says so (``<!-- examples need: sklearn -->``) and is skipped, visibly, where it
is missing; CI installs them all. Every ``backprop ...`` command line of the shell blocks is
parsed by the command line's own parser, so that no page shows an option that does not exist.
"""

from __future__ import annotations

import contextlib
import io
import shlex

import pytest

from backprop.cli.parser import build_parser
from backprop.registry import LAYERS, LOSSES, OPTIMIZERS, SCHEDULES
from doc_pages import PAGES, Block, code_blocks, needs, page_name

# fences a page may use: ```python runs; the others are shown, not run (a backprop command line
# in a shell or plain block is parsed)
LANGUAGES = {"python", "bash", "text", "toml", "json", ""}
SHELL = {"bash", ""}
LAUNCHERS = ("mpiexec", "mpirun", "srun")

PAGES_WITH_EXAMPLES = [page for page in PAGES if any(b.language == "python" for b in code_blocks(page))]


def test_every_page_with_python_examples_is_found() -> None:
    names = [page_name(page) for page in PAGES_WITH_EXAMPLES]
    assert "README.md" in names and "docs/training.md" in names and "docs/getting-started.md" in names


@pytest.mark.parametrize("page", PAGES, ids=page_name)
def test_code_blocks_are_fenced_as_the_tests_expect(page) -> None:  # type: ignore[no-untyped-def]
    """A Python example written as ```py (or indented under a list item) would never run."""
    for block in code_blocks(page):
        assert block.language in LANGUAGES, (
            f"{page_name(page)}:{block.line - 1}: a ```{block.language} block; use ```python for code that "
            f"runs (it is executed by this test) or one of {sorted(LANGUAGES - {''})} for code shown only"
        )
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        assert not line.startswith((" ", "\t")) or "```" not in line, (
            f"{page_name(page)}:{number}: an indented code fence; start fences at the beginning of the line"
        )


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=page_name)
def test_page_examples_run(page, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for module in needs(page):
        pytest.importorskip(module, reason=f"{page_name(page)}'s examples need {module}")
    monkeypatch.chdir(tmp_path)  # examples may write files (checkpoints, plots, CSV files)
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES):  # classes an example registers stay in this test
        monkeypatch.setattr(registry, "_classes", dict(registry._classes))
        monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
        monkeypatch.setattr(registry, "_given", list(registry._given))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in (b for b in code_blocks(page) if b.language == "python"):
        # padded so that a traceback names the page's own line numbers
        code = compile("\n" * (block.line - 1) + block.code, page_name(page), "exec")
        exec(code, namespace)
        assert capsys.readouterr().out.strip(), (
            f"{page_name(page)}:{block.line}: the example prints nothing; show the reader its result"
        )


def command_lines(block: Block) -> list[tuple[int, list[str]]]:
    """``(line, arguments after 'backprop')`` for each command line of a shell block that runs
    ``backprop``, also behind a launcher (``mpiexec -n 2 backprop train``)."""
    found = []
    for offset, line in enumerate(block.code.splitlines()):
        if line.split(maxsplit=1)[:1] not in (["backprop"], *([launcher] for launcher in LAUNCHERS)):
            continue  # not a command line (a file tree, another program)
        words = shlex.split(line, comments=True)
        if "backprop" in words:
            found.append((block.line + offset, words[words.index("backprop") + 1 :]))
    return found


CLI_LINES = [
    pytest.param(arguments, id=f"{page_name(page)}:{line}")
    for page in PAGES
    for block in code_blocks(page)
    if block.language in SHELL
    for line, arguments in command_lines(block)
]


def test_command_lines_are_found() -> None:
    where = [param.id for param in CLI_LINES]
    assert sum(w.startswith("docs/cli.md:") for w in where) >= 9  # the command-line page's list
    assert sum(w.startswith("docs/distributed.md:") for w in where) >= 6  # behind mpiexec, mpirun, srun


@pytest.mark.parametrize("arguments", CLI_LINES)
def test_command_lines_parse(arguments: list[str]) -> None:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parsed = build_parser().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"`backprop {shlex.join(arguments)}` is refused by the command line: {stderr.getvalue().strip()}")
    assert parsed.command == arguments[0]
