"""The documentation site builds with every warning an error, documents the public API, and
the README's links and pictures point at what exists.

The site is built once per session with ``mkdocs build --strict`` (mkdocs.yml: the pages in
docs/, the API reference from the docstrings through mkdocstrings, links and anchors checked).
Without the ``docs`` extra installed those tests are skipped, saying so; CI installs it with the
``test`` extra. The examples on the pages are run by tests/test_readme.py.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import pytest

from doc_pages import DOCS, ROOT

# every public module, whose __all__ the API reference must cover
PUBLIC_MODULES = [
    "backprop", "backprop.layers", "backprop.init", "backprop.losses", "backprop.metrics", "backprop.optim",
    "backprop.optim.lr_scheduler", "backprop.callbacks", "backprop.training", "backprop.checkpoint",
    "backprop.datasets", "backprop.backends", "backprop.distributed", "backprop.sklearn", "backprop.registry",
]  # fmt: skip
DOCS_PACKAGES = {"mkdocs": "mkdocs", "mkdocstrings": "mkdocstrings", "mkdocstrings_handlers.python":
                 "mkdocstrings-python", "material": "mkdocs-material"}  # fmt: skip


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with ``mkdocs build --strict`` into a temporary folder."""
    for module, package in DOCS_PACKAGES.items():
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f'building the documentation needs {package}: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about MkDocs 2.0
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


def test_the_site_builds_with_warnings_as_errors(site: Path) -> None:
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    expected = {f"{p.relative_to(DOCS).with_suffix('').as_posix()}/index.html" for p in DOCS.rglob("*.md")}
    expected = {"index.html" if e == "index/index.html" else e.replace("/index/index.html", "/index.html")
                for e in expected}  # fmt: skip
    assert expected <= pages, f"pages missing from the site: {sorted(expected - pages)}"
    assert (site / "images" / "training-curve.png").is_file() and (site / "images" / "speed.png").is_file()


def inventory(site: Path) -> set[str]:
    """The names of every object the site documents (mkdocstrings' Sphinx-style objects.inv)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four lines of header, then zlib-compressed "name domain:role priority uri ..."
        header_end = raw.index(b"\n", header_end) + 1
    return {line.split(" ", 1)[0] for line in zlib.decompress(raw[header_end:]).decode().splitlines()}


def public_names() -> list[tuple[str, str, object]]:
    """``(module, name, object)`` for every class, function and module in a public ``__all__``."""
    names = []
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:  # backprop.sklearn needs scikit-learn
            pytest.skip(f"{module_name} cannot be imported here ({err}); the check needs every public module")
        for name in module.__all__:
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) == "typing":  # a type alias (Array = Any): no object of ours
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
                names.append((module_name, name, obj))
    return names


def test_the_api_reference_covers_every_public_class_and_function(site: Path) -> None:
    documented = inventory(site)
    exported: dict[int, set[str]] = {}  # the same object may be documented under any module exporting it
    for module, name, obj in public_names():
        exported.setdefault(id(obj), set()).add(f"{module}.{name}")
        # or where it is defined (a function named as its module, bp.gradcheck, is documented there)
        exported[id(obj)].add(obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{obj.__qualname__}")
    missing = sorted(
        f"{module}.{name}" for module, name, obj in public_names() if not exported[id(obj)] & documented
    )
    assert not missing, f"public names the API reference does not document (add them to docs/api/): {missing}"
    assert "backprop.Sequential.fit" in documented and "backprop.layers.Dense" in documented


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


# pages the README links in another form: architecture.md includes ARCHITECTURE.md, which GitHub shows
SHOWN_AS = {"architecture.md": "ARCHITECTURE.md"}


def test_the_readme_links_and_pictures_point_at_what_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert {"docs/images/training-curve.png", "docs/images/speed.png", "docs/index.md"} <= set(local)
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"README links to {link}: no such heading there"
    for page in sorted(p.name for p in DOCS.glob("*.md")):
        linked = SHOWN_AS.get(page, f"docs/{page}")
        assert linked in local, f"the README's list of pages does not link {linked}"


def run_script(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_the_speed_chart_is_drawn_from_the_speed_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = run_script("speed_chart.py", "--out", str(tmp_path / "speed.png"))
    assert (tmp_path / "speed.png").read_bytes().startswith(b"\x89PNG")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        speed_chart = importlib.import_module("speed_chart")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    tables = speed_chart.measured((DOCS / "speed.md").read_text(encoding="utf-8"))
    assert [c.split(" (")[0] for c in tables["CPU"].medians] == ["xor", "mnist-small", "mnist-wide"]
    assert [c.split(" (")[0] for c in tables["GPU"].medians] == ["mnist-small", "mnist-wide", "deep-4096"]
    assert tables["CPU"].machine.startswith("AMD EPYC") and "H100" in tables["GPU"].machine
    small = tables["CPU"].speeds["mnist-small (784-256-256-10, Adam, batch 128)"]
    assert small["torch eager"] == 1.0 and small["backprop"] == pytest.approx(1 / 0.491)  # the table's ratio
    assert "speed relative to torch eager" in out


def test_the_training_curve_comes_from_a_real_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = run_script("training_curve.py", "--out", str(tmp_path / "curve.png"), "--epochs", "3")
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert "3 of 3 epochs" in out


def test_the_test_extra_installs_the_docs_extra() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["test"]), "CI installs .[test]: it must bring the docs extra too"
