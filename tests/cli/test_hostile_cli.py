"""The command line against hostile and careless input: every failure is one paragraph on
stderr with exit status 1 (2 for arguments that make no sense), never a traceback; nothing is
allocated before it is known to fit; no output file is left truncated or half-written and no
temporary file is left behind.

Most cases call `backprop.cli.main` in-process; a few run ``python -m backprop`` to check the
real process (a closed pipe, memory errors).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.checkpoint import archive
from backprop.cli import main
from hostile_files import base_checkpoint, edited, entries

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, expected_code: int, prog: str, match: str | None = None) -> None:
    """Exit status ``expected_code``, one paragraph naming the command, no traceback."""
    assert code == expected_code, err
    assert err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    if match is not None:
        assert re.search(match, err), err


def no_debris(folder: Path) -> None:
    """No temporary file of an atomic write anywhere under ``folder``."""
    left = [str(p) for p in folder.rglob(".*.tmp")]
    assert left == [], left


def python_m(*argv: str, cwd: Path, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "backprop", *argv], capture_output=True, cwd=cwd, check=False,
                          env={**os.environ, "PYTHONPATH": path, **(env or {})}, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small digits checkpoint written by backprop train."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    assert main(["train", "--epochs", "1", "--layers", "16,10", "--checkpoint", str(path), "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("samples") / "x.npy"
    np.save(path, np.zeros((5, 64)))
    return path


# ---------------------------------------------------------------------------------- arguments
USAGE = [
    ["train", "--epochs", "-1"], ["train", "--epochs", "0"], ["train", "--epochs", "1e3"], ["train", "--epochs", "x"],
    ["train", "--lr", "nan"], ["train", "--lr", "inf"], ["train", "--lr", "-1"], ["train", "--lr", "0"],
    ["train", "--lr", ""], ["train", "--batch-size", "0"], ["train", "--batch-size", "-5"],
    ["train", "--batch-size", "1.5"], ["train", "--dropout", "1"], ["train", "--dropout", "-0.1"],
    ["train", "--dropout", "nan"], ["train", "--test-size", "0"], ["train", "--test-size", "1"],
    ["train", "--test-size", "1.5"], ["train", "--val-split", "1"], ["train", "--seed", "-1"],
    ["train", "--device", "tpu"], ["train", "--device", "cuda:x"], ["train", "--dtype", "float16"],
    ["train", "--optimizer", "lion"], ["train", "--activation", "swish"], ["train", "--loss", "hinge"],
    ["train", "--data", "nope"], ["train", "--data", "csv:"], ["train", "--data", "csv:x.csv:label="],
    ["train", "--data", "csv:x.csv:foo=1"], ["train", "--data", "csv:x.csv:task=guess"],
    ["train", "--metrics", "bogus", "--epochs", "1"], ["train", "--layers", ""], ["train", "--layers", "a,b"],
    ["train", "--layers", "10,0"], ["train", "--layers", "1,,2"], ["train", "--layers", "12345678901234567,10"],
    ["train", "--layers", "1" * 5000 + ",10"], ["train", "--layers", ",".join(["4"] * 10_001)],
    ["train", "--layers", "64,3"], ["train", "--layers", "model.yaml"], ["train", "--layers", "missing.json"],
    ["train", "--bogus"], ["train", "--epochs"], ["predict", "--checkpoint", "x.npz", "--input", "x.npy"],
    ["predict", "--checkpoint", "x.npz", "--input", "x.npy", "--output", "y.txt"],
    ["predict", "--checkpoint", "x.npz", "--input", "x.npy", "--output", "y.csv", "--probabilities", "p.json"],
    ["predict", "--checkpoint", "x.npz", "--input", "x.npy", "--output", "y.csv", "--batch-size", "0"],
    ["evaluate"], ["evaluate", "--checkpoint", "x.npz", "--part", "some"], ["gradcheck", "--features", "0"],
    ["gradcheck", "--eps", "0"], ["gradcheck", "--rtol", "-1"], ["gradcheck", "--layers", "16,1"],
    ["gradcheck", "--batch", "-3"], ["devices", "--all"], ["fit"], [], ["--versions"],
    ["train", "--momentum", "0.9", "--optimizer", "adam", "--epochs", "1"],
]


@pytest.mark.parametrize("argv", USAGE, ids=[" ".join(a)[:50] or "nothing" for a in USAGE])
def test_arguments_that_make_no_sense_exit_2_in_one_paragraph(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    command = f"backprop {argv[0]}" if argv and argv[0] in ("train", "evaluate", "predict", "gradcheck", "devices") \
        else "backprop"
    prog = command if err.startswith(command) else "backprop"  # argparse's top level reports unknown options
    assert_refused(code, err, 2, prog)
    no_debris(tmp_path)
    assert sorted(os.listdir(tmp_path)) == []


# ---------------------------------------------------------------------------------- memory
@pytest.mark.parametrize(("argv", "match"), [
    (["train", "--layers", "1000000000,10"], r"needs about [\d.]+ [kMGTP]B of memory but this machine has"),
    (["train", "--layers", "100000,100000,10"], "needs about"),
    (["train", "--layers", "999999999999,10"], "needs about"),
    (["gradcheck", "--features", "1000000000000"], "needs about"),
    (["gradcheck", "--layers", "1000000000,3"], "needs about"),
    (["gradcheck", "--batch", "1000000000000"], "needs about"),
])
def test_a_model_or_batch_that_cannot_fit_is_refused_before_allocation(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert_refused(code, err, 1, f"backprop {argv[0]}", match)
    assert "--layers" in err or "--batch" in err or "--features" in err


@pytest.mark.parametrize("source", ["sizes", "json", "toml"])
def test_the_estimate_counts_weights_gradients_optimizer_and_activations(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """[30000, 30000, 10] fits 22 GB but not 1 GB: the refusal gives both numbers."""
    monkeypatch.setattr("backprop.cli.memory.available_host_memory", lambda: 10**9)
    layers = "30000,30000,10"
    if source != "sizes":
        layers = str(tmp_path / f"model.{source}")
        Path(layers).write_text(json.dumps({"layers": [30000, 30000, 10]}) if source == "json"
                                else "layers = [30000, 30000, 10]\n")
    code, _, err = run_cli(capsys, "train", "--layers", layers, "--epochs", "1")
    assert_refused(code, err, 1, "backprop train",
                   r"training this model \(90\d,\d{3},\d{3} parameters, batches of 32\) needs about 14\.\d GB of "
                   r"memory but this machine has 1 GB available")


def test_a_resumed_model_and_predict_batches_are_estimated_too(
    run: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backprop.cli.memory.available_host_memory", lambda: 1000)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(run), "--input", str(samples), "--output",
                           str(tmp_path / "y.csv"))
    assert_refused(code, err, 1, "backprop predict", "running this model .* needs about .* has 1 kB available")
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--epochs", "2", "--checkpoint",
                           str(tmp_path / "r.npz"))
    assert_refused(code, err, 1, "backprop train", "the resumed model is too large")
    assert sorted(os.listdir(tmp_path)) == []


# ---------------------------------------------------------------------------------- data files
def _csv(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


GOOD = "a,b,y\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40))
DATA_CASES: list[tuple[str, Callable[[Path], str], str]] = [
    ("dev-zero", lambda p: "/dev/zero", "not a regular file"),
    ("dev-null", lambda p: "/dev/null", "not a regular file"),
    ("directory", lambda p: str(p), "is a directory"),
    ("missing", lambda p: str(p / "none.csv"), "CSV file not found"),
    ("long-line", lambda p: _csv(p, "a,b,y\n" + "1" * (2 << 20) + ",2,0\n1,2,1\n"),
     r"line 2 is longer than 1,048,576 bytes"),
    ("no-newline-garbage", lambda p: _csv(p, os.urandom(3 << 20)), "longer than|not UTF-8"),
    ("overflow-float32", lambda p: _csv(p, GOOD + "1e39,2,1\n"),
     r"line 42, column 'a': '1e39' is too large for float32"),
    ("overflow-negative", lambda p: _csv(p, GOOD.replace("3,3,1", "3,-4e38,1")), r"column 'b': '-4e38' is too large"),
    ("overflow-target", lambda p: _csv(p, "a,b,y\n" + "".join(f"{i},{i},{i * 0.5}\n" for i in range(30))
                                       + "1,2,5e38\n"), "label column 'y'|too large"),
    ("infinity", lambda p: _csv(p, GOOD + "inf,2,1\n"), "'inf' is not a finite number"),
    ("nan", lambda p: _csv(p, GOOD + "nan,2,1\n"), "missing value"),
    ("not-utf8", lambda p: _csv(p, b"a,b,y\n\xff\xfe,1,0\n"), "not UTF-8"),
    ("nul-bytes", lambda p: _csv(p, b"a,b,y\n1,\x00,0\n2,3,1\n" * 10), "NUL|not a number|not valid CSV"),
    ("empty", lambda p: _csv(p, ""), "is empty"),
    ("huge-field", lambda p: _csv(p, 'a,b,y\n"' + "x" * 200_000 + '",1,0\n'), "not valid CSV|field"),
    ("gzip-bomb", lambda p: _gzip(p, b"1,2,0\n" * (60 << 20)), "holds more, once decompressed, than"),
    ("gzip-broken", lambda p: _csv(p, b"\x1f\x8b\x08\x00garbage", "data.csv.gz"), "cannot read"),
    ("ragged", lambda p: _csv(p, "a,b,y\n1,2,0\n1,2\n"), "line 3 has 2 values"),
]


def _gzip(tmp_path: Path, payload: bytes) -> str:
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(payload, compresslevel=1))
    return str(path)


@pytest.mark.parametrize(("make", "match"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_hostile_data_files_are_refused_in_one_paragraph(
    make: Callable[[Path], str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKPROP_CSV_MAX_BYTES", str(200 << 20))
    path = make(tmp_path)
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{path}", "--epochs", "1", "--layers", "4,2")
    assert_refused(code, err, 1, "backprop train", match)
    no_debris(tmp_path)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(["train", "--data", f"csv:{fifo}"])), daemon=True)
    thread.start()
    thread.join(20)
    assert result == [1], "reading a FIFO blocked or succeeded"
    assert "not a regular file" in capsys.readouterr().err


def test_csv_limits_can_be_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = _csv(tmp_path, GOOD)
    monkeypatch.setenv("BACKPROP_CSV_MAX_BYTES", "100")
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{path}", "--epochs", "1")
    assert_refused(code, err, 1, "backprop train", r"is 2\d\d bytes, more than the 100 bytes a CSV file may hold here: "
                   r"pass max_bytes= \(or set BACKPROP_CSV_MAX_BYTES\)")
    monkeypatch.setenv("BACKPROP_CSV_MAX_BYTES", "lots")
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{path}", "--epochs", "1")
    assert_refused(code, err, 1, "backprop train", "BACKPROP_CSV_MAX_BYTES must be a whole number")
    monkeypatch.setenv("BACKPROP_CSV_MAX_BYTES", "1000000")
    monkeypatch.setenv("BACKPROP_CSV_MAX_LINE", "4")
    code, _, err = run_cli(capsys, "train", "--data", f"csv:{path}", "--epochs", "1")
    assert_refused(code, err, 1, "backprop train", "line 1 is longer than 4 bytes")
    monkeypatch.delenv("BACKPROP_CSV_MAX_LINE")
    assert bp.datasets.load_csv(path, max_bytes=10**6, max_line=10).n_features == 2
    with pytest.raises(bp.datasets.DataError, match="max_line must be a whole number"):
        bp.datasets.load_csv(path, max_line=0)


def test_the_csv_memory_check_says_both_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backprop.datasets.csv_table.available_host_memory", lambda: 1000)
    with pytest.raises(bp.datasets.DataError, match=r"needs about 2.95 kB of memory to parse but this process has "
                                                    r"1 kB available"):
        bp.datasets.load_csv(_csv(tmp_path, GOOD))


# ---------------------------------------------------------------------------------- model files
MODEL_FILES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("deep-json", "model.json", lambda p: p.write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     "nested too deeply"),
    ("deep-toml", "model.toml", lambda p: p.write_text("layers = " + "[" * 100_000 + "]" * 100_000 + "\n"),
     "nested too deeply"),
    ("deep-9", "model.json", lambda p: p.write_text('{"layers": [[[[[[[[[10]]]]]]]]]}'), "nested too deeply"),
    ("large", "model.json", lambda p: p.write_text('{"layers": [10], "x": "' + "a" * (2 << 20) + '"}'),
     "larger than 1,048,576 bytes"),
    ("huge-int", "model.json", lambda p: p.write_text('{"layers": [' + "9" * 5000 + ", 10]}"), "not valid JSON"),
    ("huge-units", "model.json", lambda p: p.write_text('{"layers": [10000000000000, 10]}'),
     "a layer size must be a whole number from 1"),
    ("float-units", "model.json", lambda p: p.write_text('{"layers": [16.5, 10]}'), "a layer size"),
    ("string-units", "model.json", lambda p: p.write_text('{"layers": ["16", 10]}'), "a layer size"),
    ("bool-units", "model.json", lambda p: p.write_text('{"layers": [true, 10]}'), "a layer size"),
    ("too-many-layers", "model.json", lambda p: p.write_text(json.dumps({"layers": [4] * 10_001})), "at most 10,000"),
    ("not-a-table", "model.json", lambda p: p.write_text("[16, 10]"), "must hold a table"),
    ("no-layers", "model.json", lambda p: p.write_text("{}"), "needs 'layers'"),
    ("bad-json", "model.json", lambda p: p.write_text("{layers: [16]}"), "not valid JSON"),
    ("bad-utf8", "model.json", lambda p: p.write_bytes(b'{"layers": [16, 10], "x": "\xff"}'), "cannot read"),
    ("bad-toml", "model.toml", lambda p: p.write_text("layers = [16, 10"), "not valid TOML"),
    ("activation-list", "model.json", lambda p: p.write_text('{"layers": [16, 10], "activation": ["relu"]}'),
     "activation|unknown"),
    ("dropout-nan", "model.json", lambda p: p.write_text('{"layers": [16, 10], "dropout": NaN}'), "dropout"),
    ("init-number", "model.json", lambda p: p.write_text('{"layers": [16, 10], "init": 3}'), "init"),
    ("directory", "model.json", lambda p: p.mkdir(), "not a regular file"),
    ("dev-zero-link", "model.json", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    ("fifo", "model.json", lambda p: os.mkfifo(p), "not a regular file"),
]


@pytest.mark.parametrize(("name", "make", "match"), [c[1:] for c in MODEL_FILES], ids=[c[0] for c in MODEL_FILES])
def test_hostile_model_files_are_usage_errors(
    name: str, make: Callable[[Path], None], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    make(path)
    for command in ("train", "gradcheck"):
        code, _, err = run_cli(capsys, command, "--layers", str(path))
        assert_refused(code, err, 2, f"backprop {command}", match)


# ---------------------------------------------------------------------------------- checkpoints
def _bad_checkpoint(kind: str, run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bad.npz"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "truncated":
        target.write_bytes(run.read_bytes()[:-100])
    elif kind == "bomb":
        import zipfile  # noqa: PLC0415

        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("metadata.npy", b"\0" * (40 << 20))
    else:
        edits: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], Any]] = {
            "negative-epoch": lambda m, a: m.update(epoch=-1),
            "training-no": lambda m, a: m.update(training="no"),
            "empty-optimizer": lambda m, a: (m["optimizer"].update(scalars={}, empty_state=False),
                                             [a.pop(k) for k in list(a) if k.startswith("optimizer/")]),
            "nan-weight": lambda m, a: a["model/1.W"].__setitem__((0, 0), np.nan),  # 0: the Standardize layer
            "in-features": lambda m, a: m["architecture"]["config"]["layers"][1]["config"].update(
                in_features=50_000_000),
            "duplicate": lambda m, a: [*entries(m, a), entries(m, a)[1]],
            "classes-number": lambda m, a: m["extra"].update(classes=5),
            "classes-too-few": lambda m, a: m["extra"].update(classes=[0, 1]),
            "features-string": lambda m, a: m["extra"].update(feature_names="abc"),
            "task-unknown": lambda m, a: m["extra"].update(task="clustering"),
            "loss-unknown": lambda m, a: m["extra"].update(loss="hinge"),
            "loss-missing": lambda m, a: m["extra"].pop("loss"),
            "standardizer-broken": lambda m, a: m["extra"].update(standardizer={"mean": 3}),
            "args-batch-size": lambda m, a: m["extra"]["args"].update(batch_size="x"),
            "args-epochs": lambda m, a: m["extra"]["args"].update(epochs=-3),
            "args-optimizer": lambda m, a: m["extra"]["args"].update(optimizer="lion"),
            "args-data": lambda m, a: m["extra"]["args"].update(data="/etc/passwd"),
            "args-lr-nan": lambda m, a: m["extra"]["args"].update(lr=float("nan")),
            "args-list": lambda m, a: m["extra"].update(args=[1, 2]),
            "scheduler-garbage": lambda m, a: m["scheduler"]["state"].update(last_epoch=-4),
        }
        edited(run, target, edits[kind])
    return target


CHECKPOINT_KINDS = ["fifo", "directory", "truncated", "bomb", "negative-epoch", "training-no", "empty-optimizer",
                    "nan-weight", "in-features", "duplicate", "classes-number", "features-string", "task-unknown",
                    "loss-unknown", "loss-missing", "standardizer-broken", "args-batch-size", "args-epochs",
                    "args-optimizer", "args-data", "args-lr-nan", "args-list", "scheduler-garbage"]


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_hostile_checkpoints_exit_1_in_every_command(
    kind: str, run: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_checkpoint(kind, run, tmp_path)
    out_file = tmp_path / "y.csv"
    commands = [
        ["evaluate", "--checkpoint", str(bad)],
        ["predict", "--checkpoint", str(bad), "--input", str(samples), "--output", str(out_file)],
        ["train", "--resume", str(bad), "--epochs", "2", "--checkpoint", str(tmp_path / "next.npz")],
        ["gradcheck", "--checkpoint", str(bad)],
    ]
    if kind.startswith(("classes", "features", "task", "standardizer", "loss")):
        commands = commands[:2]  # what only predict and evaluate read
    if kind.startswith(("args", "scheduler")):
        commands = commands[2:3]  # what only a resumed run reads
    for argv in commands:
        code, _, err = run_cli(capsys, *argv)
        assert_refused(code, err, 1, f"backprop {argv[0]}")
    assert not out_file.exists() and not (tmp_path / "next.npz").exists()
    no_debris(tmp_path)


def test_a_checkpoint_with_the_wrong_number_of_classes_is_refused(
    run: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _bad_checkpoint("classes-too-few", run, tmp_path)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(bad), "--input", str(samples), "--output",
                           str(tmp_path / "y.csv"))
    assert_refused(code, err, 1, "backprop predict", "records 2 class labels but its model has 10 outputs")


# ---------------------------------------------------------------------------------- inputs and outputs
def _npy_header(path: Path, shape: tuple[int, ...], dtype: str = "<f8") -> None:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * ((64 - (len(header) + 11) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64)


INPUTS: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("header-10-to-11", "x.npy", lambda p: _npy_header(p, (10**11, 64)), "declares shape .* truncated or damaged"),
    ("header-negative", "x.npy", lambda p: _npy_header(p, (-5, 64)), "truncated or damaged|not a readable"),
    ("object", "x.npy", lambda p: np.save(p, np.array([[{}]] * 2, dtype=object), allow_pickle=True), "holds object"),
    ("strings", "x.npy", lambda p: np.save(p, np.full((2, 64), "x")), "holds <U1 values"),
    ("complex", "x.npy", lambda p: np.save(p, np.zeros((2, 64), complex)), "holds complex128"),
    ("three-d", "x.npy", lambda p: np.save(p, np.zeros((2, 64, 1))), "needs a 2-D array"),
    ("nan", "x.npy", lambda p: np.save(p, np.full((2, 64), np.nan)), "NaN or Inf"),
    ("overflow-float32", "x.npy", lambda p: np.save(p, np.full((2, 64), 1e39)),
     r"sample 1, feature 1 is .* too large for the model's float32"),
    ("overflow-after-scaling", "x.npy", lambda p: np.save(p, np.full((2, 64), 3e38)), "too large for the model"),
    ("overflow-csv", "x.csv", lambda p: p.write_text(",".join(["1e39"] + ["0"] * 63) + "\n"),
     r"line 1, column 'column 0': '1e39' is too large for the model's dtype"),
    ("garbage", "x.npy", lambda p: p.write_bytes(os.urandom(500)), "not a readable .npy"),
    ("empty", "x.npy", lambda p: p.write_bytes(b""), "not a readable .npy"),
    ("directory", "x.npy", lambda p: p.mkdir(), "not a regular file"),
    ("dev-zero", "x.npy", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    ("fifo-csv", "x.csv", lambda p: os.mkfifo(p), "not a regular file"),
    ("wrong-features", "x.npy", lambda p: np.save(p, np.zeros((3, 7))), "has 7 features per sample"),
    ("wrong-suffix", "x.txt", lambda p: p.write_text("1,2\n"), "use a .csv or .npy file"),
    ("missing", "none.npy", lambda p: None, "file not found"),
]


@pytest.mark.parametrize(("name", "make", "match"), [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_hostile_predict_inputs_write_nothing(
    name: str, make: Callable[[Path], None], match: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / name
    make(source)
    outputs = [tmp_path / "y.csv", tmp_path / "p.npy"]
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(run), "--input", str(source), "--output",
                           str(outputs[0]), "--probabilities", str(outputs[1]))
    assert_refused(code, err, 1, "backprop predict", match)
    assert not any(p.exists() for p in outputs)
    no_debris(tmp_path)


@pytest.mark.parametrize(("extra", "code", "match"), [
    (["--output", "{d}/missing/y.csv"], 1, "does not exist; create it first"),
    (["--output", "{d}"], 2, "that is a folder|must end in"),
    (["--output", "{d}/out.csv", "--probabilities", "{d}/out.csv"], 2, "are the same file"),
    (["--output", "{run}"], 2, "must end in|is the --checkpoint file"),
    (["--output", "{d}/x.npy", "--input-is-output"], 2, "is the --input file"),
    (["--output", "{d}/y.npy", "--probabilities", "{d}/sub/../y.npy"], 2, "are the same file"),
])
def test_outputs_that_would_destroy_inputs_or_cannot_be_written_are_refused_first(
    extra: list[str], code: int, match: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((3, 64)))
    before = inputs.read_bytes()
    argv = [a.format(d=tmp_path, run=run) for a in extra if a != "--input-is-output"]
    got, _, err = run_cli(capsys, "predict", "--checkpoint", str(run), "--input", str(inputs), *argv)
    assert_refused(got, err, code, "backprop predict", match)
    assert inputs.read_bytes() == before and bp.load_checkpoint(run).epoch == 1
    no_debris(tmp_path)


@pytest.mark.parametrize("where", ["output", "probabilities", "fsync", "replace"])
def test_a_full_disk_leaves_no_output_and_no_temporary_file(
    where: str, run: Path, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "y.csv").write_text("old\n")
    import backprop.atomic as atomic  # noqa: PLC0415 - patched below

    if where in ("output", "probabilities"):
        from backprop.cli import outputs  # noqa: PLC0415

        real = outputs._writer

        def writer(kind: str, header: Any, array: np.ndarray) -> Callable[[Any], None]:
            inner = real(kind, header, array)
            failing = (kind == "csv") == (where == "output")

            def write(fh: Any) -> None:
                inner(fh)
                if failing:
                    raise OSError(28, "No space left on device")

            return write

        monkeypatch.setattr(outputs, "_writer", writer)
    elif where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left")))
    else:
        monkeypatch.setattr(atomic.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left")))
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(run), "--input", str(samples), "--output",
                           str(tmp_path / "y.csv"), "--probabilities", str(tmp_path / "p.npy"))
    assert_refused(code, err, 1, "backprop predict", "cannot write: No space left.*nothing was written")
    assert (tmp_path / "y.csv").read_text() == "old\n" and not (tmp_path / "p.npy").exists()
    no_debris(tmp_path)


def test_a_full_disk_while_saving_a_checkpoint_or_plot_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import backprop.atomic as atomic  # noqa: PLC0415

    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    code, _, err = run_cli(capsys, "train", "--data", "xor", "--layers", "4,1", "--epochs", "2", "--checkpoint",
                           str(tmp_path / "ck.npz"), "--quiet")
    assert_refused(code, err, 1, "backprop train", "No space left")
    assert sorted(os.listdir(tmp_path)) == []
    pytest.importorskip("matplotlib")
    code, _, err = run_cli(capsys, "train", "--data", "xor", "--layers", "4,1", "--epochs", "2", "--plot",
                           str(tmp_path / "curves.png"), "--quiet")
    assert_refused(code, err, 1, "backprop train", "--plot .*No space left")
    assert sorted(os.listdir(tmp_path)) == []


def test_plot_and_checkpoint_cannot_be_the_same_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "run.png")
    code, _, err = run_cli(capsys, "train", "--data", "xor", "--checkpoint", path, "--plot", path)
    assert_refused(code, err, 2, "backprop train", "is the checkpoint file")


def test_a_killed_training_leaves_debris_that_the_next_run_removes(tmp_path: Path) -> None:
    stale = tmp_path / ".ck.npz.0123456789ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    done = python_m("train", "--data", "xor", "--layers", "4,1", "--epochs", "2", "--checkpoint", "ck.npz",
                    "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]


# ---------------------------------------------------------------------------------- crashes
@pytest.mark.parametrize(("error", "match"), [
    (MemoryError(), "out of memory: .*--batch-size"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    (RuntimeError("boom"), r"unexpected RuntimeError: boom \(this is a bug in backprop"),
    (AssertionError(), "unexpected AssertionError"),
    (OSError(5, "Input/output error", "/some/file"), "cannot read or write '/some/file': Input/output error"),
    (ValueError("a\nmultiline\n\nmessage"), "unexpected ValueError: a multiline message"),
])
def test_unexpected_errors_are_one_paragraph_never_a_traceback(
    error: BaseException, match: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise error

    for command, target in (("train", "backprop.cli.train.set_up"), ("gradcheck", "backprop.cli.gradcheck.gradcheck")):
        with monkeypatch.context() as patch:
            patch.setattr(target, explode)
            code, _, err = run_cli(capsys, command, "--data", "xor") if command == "train" else \
                run_cli(capsys, command)
        assert_refused(code, err, 1, f"backprop {command}", match)


def test_memory_errors_in_a_real_process_are_one_paragraph(tmp_path: Path) -> None:
    """The process's address space capped: whatever runs out is reported, not traced."""
    script = (
        "import resource, sys\n"
        "from backprop.cli import main\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"
        "sys.exit(main(['train', '--layers', '20000,20000,10', '--epochs', '1']))\n"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "needs about" in done.stderr or "out of memory" in done.stderr


def test_a_closed_output_pipe_is_one_paragraph(run: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((20000, 64)))
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    writer = subprocess.run([sys.executable, "-m", "backprop", "predict", "--checkpoint", str(run), "--input",
                             str(tmp_path / "x.npy"), "--output", "-"], stdout=reader.stdin, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": path}, timeout=120, check=False)
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait()
    err = writer.stderr.decode()
    assert writer.returncode == 1 and "Traceback" not in err and "Exception ignored" not in err, err
    assert "the output pipe was closed" in err


def test_keyboard_interrupt_is_130_in_one_paragraph(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backprop.cli.gradcheck.gradcheck", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code, _, err = run_cli(capsys, "gradcheck")
    assert_refused(code, err, 130, "backprop gradcheck", "interrupted")


def test_checkpoint_members_stay_unread_when_the_cli_refuses(run: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's refusal of a big declared model comes from the reader, before any data."""
    target = edited(run, tmp_path / "big.npz", lambda m, a: m["architecture"]["config"]["layers"][1]["config"].update(
        in_features=10**9))  # layer 0 is the Standardize layer
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(target))
    assert_refused(code, err, 1, "backprop evaluate", "member 'model/1.W' has shape .* but Dense\\(1000000000, 16\\)")
    assert archive.DEFAULT_LIMITS.max_members == 100_000


def test_the_base_files_of_the_hostile_suite_work(tmp_path: Path) -> None:
    base_checkpoint(tmp_path / "b.npz")
    assert bp.load_checkpoint(tmp_path / "b.npz").epoch == 2


def test_available_memory_follows_the_address_space_limit() -> None:
    from backprop.memory import format_bytes  # noqa: PLC0415

    assert [format_bytes(n) for n in (17, 312_000, 1.5e9, 2e18)] == ["17 bytes", "312 kB", "1.5 GB", "2,000 PB"]
    script = (
        "import resource\n"
        "from backprop.memory import available_host_memory\n"
        "free = available_host_memory()\n"
        "used = int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize:'))) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + (300 << 20), resource.RLIM_INFINITY))\n"
        "capped = available_host_memory()\n"
        "print(free is None or capped <= free, 250 << 20 < capped <= 300 << 20)\n"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "PYTHONPATH": path})
    assert done.stdout.split() == ["True", "True"], done.stdout + done.stderr
