"""`plot_history` / `History.plot`: valid images, the right panels, no pyplot, a clear missing-matplotlib error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backprop.history import History
from backprop.plotting import INSTALL_HINT, history_figure, line_colors, panels, plot_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_history(epochs: int = 5, *, val: bool = True, metrics: bool = True, grads: bool = True) -> History:
    history = History()
    for epoch in range(1, epochs + 1):
        values = {"loss": 1.0 / epoch}
        if val:
            values["val_loss"] = 1.5 / epoch
        if metrics:
            values["accuracy"] = 1.0 - 1.0 / (epoch + 1)
            if val:
                values["val_accuracy"] = 1.0 - 1.2 / (epoch + 1)
        if grads:
            values.update({"grad_norm": 3.0 / epoch, "grad_norm/0.W": 2.0 / epoch, "grad_norm/0.b": 0.5 / epoch})
        history.append(epoch, values)
    return history


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_panels_pair_metrics_with_validation_and_put_grad_norms_last() -> None:
    keys = ["val_loss", "accuracy", "grad_norm/0.W", "loss", "val_accuracy", "grad_norm", "lr", "val_f1", "debug/x"]
    assert panels(keys) == [
        ("loss", ["loss", "val_loss"]),
        ("accuracy", ["accuracy", "val_accuracy"]),
        ("lr", ["lr"]),
        ("f1", ["val_f1"]),
        ("grad_norm", ["grad_norm", "grad_norm/0.W"]),
    ]
    assert panels(["loss"]) == [("loss", ["loss"])]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, [("loss", 2), ("accuracy", 2), ("gradient norm per parameter", 3)]),
        ({"val": False}, [("loss", 1), ("accuracy", 1), ("gradient norm per parameter", 3)]),
        ({"metrics": False, "grads": False}, [("loss", 2)]),
        ({"val": False, "metrics": False, "grads": False}, [("loss", 1)]),
        ({"metrics": False}, [("loss", 2), ("gradient norm per parameter", 3)]),
    ],
)
def test_figure_has_one_panel_per_quantity(options: dict[str, bool], expected: list[tuple[str, int]]) -> None:
    pytest.importorskip("matplotlib")
    figure = history_figure(make_history(**options), title="run 1")
    assert [(ax.get_title(), len(ax.get_lines())) for ax in figure.axes] == expected
    assert figure.get_suptitle() == "run 1"
    for ax in figure.axes:
        assert ax.get_yscale() == ("log" if ax.get_title().startswith("gradient") else "linear")
        assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5]


def test_plot_writes_a_png_and_returns_its_path(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    small = make_history(metrics=False, grads=False).plot(tmp_path / "small.png")
    full = make_history().plot(str(tmp_path / "deep" / "full.png"), title="all panels")
    assert small == tmp_path / "small.png" and full == tmp_path / "deep" / "full.png"
    (w1, h1), (w2, h2) = png_size(small), png_size(full)
    assert (w1, h1) == (500, 350)  # one 5 x 3.5 inch panel at 100 dpi
    assert (w2, h2) == (1000, 700)  # 2 x 2 grid for three panels


def test_other_formats_follow_the_suffix_and_unknown_ones_are_rejected(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    svg = make_history().plot(tmp_path / "h.svg")
    assert b"<svg" in svg.read_bytes()[:1000]
    assert png_size(make_history().plot(tmp_path / "no_suffix")) == (1000, 700)
    with pytest.raises(ValueError, match="unknown image format 'xyz'"):
        make_history().plot(tmp_path / "h.xyz")
    assert not (tmp_path / "h.xyz").exists()


def test_one_epoch_zero_grad_norms_and_a_plain_dict_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    history = History()
    history.append(1, {"loss": 0.7, "grad_norm/0.W": 0.0})
    figure = history_figure(history)
    assert figure.axes[1].get_yscale() == "linear"  # nothing positive to put on a log scale
    assert figure.axes[0].get_lines()[0].get_marker() == "o"  # a lone point stays visible
    assert png_size(history.plot(tmp_path / "one.png"))
    assert png_size(plot_history({"loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}, tmp_path / "dict.png"))


def test_empty_history_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="empty"):
        History().plot(tmp_path / "empty.png")


def test_plotting_never_imports_pyplot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    script = textwrap.dedent(
        f"""
        import sys
        import backprop
        history = backprop.History()
        for epoch in range(1, 4):
            history.append(epoch, {{"loss": 1 / epoch, "val_loss": 2 / epoch, "grad_norm/0.W": 1 / epoch}})
        path = history.plot({str(tmp_path / "h.png")!r})
        assert path.read_bytes()[:8] == {PNG_SIGNATURE!r}
        assert "matplotlib" in sys.modules
        print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no pyplot"


def test_import_backprop_does_not_import_matplotlib() -> None:
    code = "import sys, backprop, backprop.plotting; print(any(m.startswith('matplotlib') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # importing any of them raises ImportError
    with pytest.raises(ImportError, match=r'pip install "backprop-nn\[plot\]"') as info:
        make_history().plot(tmp_path / "h.png")
    assert str(info.value) == INSTALL_HINT and "matplotlib" in str(info.value)
    assert not (tmp_path / "h.png").exists()


def test_many_gradient_norms_get_distinct_colours_and_a_legend_beside_the_data() -> None:
    pytest.importorskip("matplotlib")
    history = History()
    for epoch in range(1, 4):
        history.append(epoch, {"loss": 1.0 / epoch, **{f"grad_norm/{i}.W": 10.0**-i / epoch for i in range(13)}})
    figure = history_figure(history)
    grads = figure.axes[-1]
    colours = [line.get_color() for line in grads.get_lines()]
    assert len(colours) == 13 and len({tuple(c) for c in colours}) == 13  # none reused
    figure.canvas.draw()
    legend, data = grads.get_legend().get_window_extent(), grads.get_window_extent()
    assert legend.x0 >= data.x1  # outside the axes: no line hidden under it
    assert len({tuple(c) for c in line_colors(40)}) == 40 and len(line_colors(3)) == 3
