"""The runnable examples in ``examples/``: each runs end to end in a subprocess (CPU, with
warnings as errors) and prints what its docstring promises.

The numbers checked are the facts each example exists to show, parsed from its output:
the tutorial's XOR result, the vanishing first-layer gradient of the deep sigmoid network
next to its three cures, the digits test accuracy and the sine regression's MSE.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, *args: str) -> str:
    """Run ``examples/<name>`` on the CPU; returns its stdout, failing with stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name), "--device", "cpu", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"{name} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def number(pattern: str, text: str) -> float:
    """The number captured by ``pattern``'s first group in ``text``."""
    match = re.search(pattern, text)
    assert match, f"no match for {pattern!r} in:\n{text}"
    return float(match.group(1))


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"


def test_every_example_has_a_docstring_and_a_device_flag() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert {"xor.py", "vanishing_gradients.py", "digits.py", "regression.py"} <= set(scripts)
    for name in scripts:
        source = (EXAMPLES / name).read_text()
        assert source.startswith('"""'), f"{name} has no module docstring"
        assert f"python examples/{name}" in source.split('"""')[1], f"{name}'s docstring does not say how to run it"
        assert '"--device"' in source, f"{name} takes no --device"


def test_xor_reproduces_the_tutorial_and_plots_its_loss(tmp_path: Path) -> None:
    plain = run_example("xor.py")
    assert re.search(r"final loss 0\.04462\s+predictions \[0, 1, 1, 0\]", plain), plain
    assert "epoch     1  loss 0.6931" in plain

    png = tmp_path / "xor_loss.png"
    plotted = run_example("xor.py", "--plot", str(png))
    assert_png(png)
    # --plot adds one line and changes nothing else.
    assert plotted.splitlines()[:-1] == plain.splitlines()
    assert plotted.splitlines()[-1] == f"saved the loss curve to {png}"


def parse_vanishing(output: str) -> tuple[dict[str, dict[str, tuple[float, float]]], dict[str, dict[str, float]]]:
    """``(norms, summary)``: ``norms[variant][layer] = (epoch 1, last epoch)`` for the layers
    ``"1"``, ``"2"``, ..., ``"out"``; ``summary[variant]`` has ``loss`` and ``accuracy``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Gradient L2 norm"))
    variants = lines[start + 1].split()
    norms: dict[str, dict[str, tuple[float, float]]] = {v: {} for v in variants}
    for line in lines[start + 3 :]:
        if not line.startswith("Dense "):
            break
        layer, *values = line[len("Dense ") :].split()
        assert len(values) == 2 * len(variants), line
        for k, variant in enumerate(variants):
            norms[variant][layer] = (float(values[2 * k]), float(values[2 * k + 1]))
    summary = {}
    for line in lines:
        match = re.match(r"^(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.e+-]+)\s+[\d.]+s$", line)
        if match and match.group(1) in variants:
            summary[match.group(1)] = {"loss": float(match.group(2)), "accuracy": float(match.group(3))}
    assert set(summary) == set(variants), output
    return norms, summary


def test_vanishing_gradients_shows_the_sigmoid_net_stuck_and_every_cure_training(tmp_path: Path) -> None:
    output = run_example("vanishing_gradients.py", "--epochs", "10", "--plot", str(tmp_path))
    norms, summary = parse_vanishing(output)
    assert list(norms) == ["sigmoid", "relu+he", "sigmoid+bn", "sigmoid+res"]
    layers = list(norms["sigmoid"])
    assert layers == [str(i) for i in range(1, 13)] + ["out"], layers  # 12 hidden layers, then the output

    # The deep sigmoid net with small weights: its first layer gets practically no gradient,
    # while its output layer does, and it stays at chance level (loss ln 10, accuracy 0.1).
    sigmoid = norms["sigmoid"]
    assert sigmoid["1"][0] < 1e-12 * sigmoid["out"][0], sigmoid
    shrinking = all(sigmoid[a][0] < sigmoid[b][0] for a, b in itertools.pairwise(layers))
    assert shrinking, f"the gradient should shrink layer by layer, first to last: {sigmoid}"
    assert summary["sigmoid"]["loss"] > 2.25 and summary["sigmoid"]["accuracy"] < 0.2, summary

    for cure in ("relu+he", "sigmoid+bn", "sigmoid+res"):
        first, out = norms[cure]["1"][0], norms[cure]["out"][0]
        assert first > 1e-3 * out, (cure, norms[cure])
        assert first > 1e8 * sigmoid["1"][0], (cure, first, sigmoid["1"][0])
        assert summary[cure]["accuracy"] > 0.8 and summary[cure]["loss"] < 1.5, (cure, summary[cure])

    # one figure of the four variants (a panel each, one shared log scale), not a file per variant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vanishing_gradients.png"]
    assert_png(tmp_path / "vanishing_gradients.png")
    assert f"saved {tmp_path / 'vanishing_gradients.png'}" in output


def test_digits_reaches_high_test_accuracy_and_reloads_from_its_checkpoint(tmp_path: Path) -> None:
    checkpoint, png = tmp_path / "digits.npz", tmp_path / "digits.png"
    output = run_example("digits.py", "--checkpoint", str(checkpoint), "--plot", str(png))
    accuracy = number(r"test accuracy (\d\.\d+) on cpu", output)
    assert accuracy >= 0.96, output  # 0.975 with the default seed; one test image is 0.0028
    assert re.search(r"(early stopping after epoch \d+|ran all \d+ epochs); restored the weights of epoch \d+", output)
    assert checkpoint.is_file()
    assert number(r"reloaded model's test accuracy (\d\.\d+)", output) == accuracy
    assert_png(png)


def test_regression_fits_the_sine_curve(tmp_path: Path) -> None:
    png = tmp_path / "sine.png"
    output = run_example("regression.py", "--plot", str(png))
    floor = number(r"sin\(x\) itself scores (\d\.\d+)", output)  # the noise's share of the MSE
    assert number(r"train MSE (\d\.\d+)", output) < 0.02, output
    assert number(r"test MSE (\d\.\d+)", output) < max(0.02, 2 * floor), output
    row = re.compile(r"^\s*" + r"\s+".join([r"(-?\d+\.\d+)"] * 4) + "$")  # x, target, prediction, sin(x)
    rows = [match.groups() for match in map(row.match, output.splitlines()) if match]
    assert len(rows) == 7, output
    for x, _target, prediction, clean in rows:
        assert abs(float(prediction) - float(clean)) < 0.25, (x, prediction, clean)
    assert_png(png)


@pytest.mark.parametrize("name", ["xor.py", "vanishing_gradients.py", "digits.py", "regression.py"])
def test_examples_refuse_an_unknown_device(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--device", "tpu", "--epochs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode != 0
    assert "tpu" in proc.stderr
