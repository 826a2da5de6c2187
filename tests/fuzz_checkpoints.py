"""Fuzz the checkpoint reader with hypothesis, in a process whose memory is capped.

``python tests/fuzz_checkpoints.py [--examples N] [--limit-mb M]`` builds valid checkpoints,
caps this process's address space (``RLIMIT_AS``) at what it uses plus ``M`` MiB, and lets
hypothesis mutate them: raw bytes (flips, overwrites, truncation, insertion, splices of
another file), the zip structure (members dropped, duplicated, recompressed, their headers
rewritten, with valid CRCs, so the reader gets past the checksum) and the metadata (any value
anywhere replaced by any JSON value). Every file must load or raise `CheckpointError`; any
other exception (MemoryError included) fails the run, which prints the falsifying example.
`tests/test_hostile_checkpoints.py` runs it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import backprop as bp  # noqa: E402 - after the path is set
from backprop.checkpoint import CheckpointError  # noqa: E402
from hostile_files import base_checkpoint, entries, npy_header, parts, write_zip  # noqa: E402

FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-checkpoints-"))
BASES = [base_checkpoint(FOLDER / "adam.npz"), base_checkpoint(FOLDER / "rmsprop.npz", "rmsprop")]
RAW = [path.read_bytes() for path in BASES]
PARTS = [parts(path) for path in BASES]
TARGET = FOLDER / "fuzzed.npz"
COUNT = {"loaded": 0, "refused": 0}


def load(data: bytes) -> None:
    TARGET.write_bytes(data)
    try:
        bp.load_checkpoint(TARGET)
    except CheckpointError as exc:
        assert "\n" not in str(exc), str(exc)
        assert str(exc).startswith("cannot load checkpoint"), str(exc)
        COUNT["refused"] += 1
    else:
        COUNT["loaded"] += 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(["PCG64", "Adam", "Dense", "float32", "0.W", "extra/0", "__ndarray__", "model/0.W"])
    | st.builds(lambda n: {"__ndarray__": n}, st.sampled_from(["extra/0", "extra/1", "rng/0", "model/0.W", 3])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def metadata_mutation(draw: st.DrawFn) -> bytes:
    which = draw(st.integers(0, len(PARTS) - 1))
    metadata, arrays = copy.deepcopy(PARTS[which][0]), dict(PARTS[which][1])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(metadata)
        path = draw(st.sampled_from(paths[1:]))
        parent = metadata
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(arrays)))
        choice = draw(st.sampled_from(["drop", "retype", "reshape", "poke"]))
        value = arrays[name]
        if choice == "drop":
            del arrays[name]
        elif choice == "retype":
            arrays[name] = value.astype(draw(st.sampled_from(["f8", "f2", "i4", "?", "c8", "u1", "U2"])))
        elif choice == "reshape":
            arrays[name] = np.zeros(draw(st.lists(st.integers(0, 5), max_size=3)), value.dtype)
        elif value.size and value.dtype.kind == "f":
            value = value.copy()
            value.reshape(-1)[draw(st.integers(0, value.size - 1))] = draw(st.floats(allow_nan=True, width=32))
            arrays[name] = value
    raw = json.dumps(metadata, allow_nan=True).encode()
    members = entries(raw, arrays)
    if draw(st.booleans()):
        members.append(draw(st.sampled_from(members)))  # a duplicate
    if draw(st.booleans()):
        shape = tuple(draw(st.lists(st.integers(-2, 10**12), max_size=3)))
        dtype = draw(st.sampled_from(["<f4", "<f8", "|O", "|V4", "<U3", "|S0", ">f4", "<i8"]))
        name = draw(st.sampled_from(["model/0.W", "extra/0", "optimizer/0.exp_avg", "metadata", "x"]))
        members = [m for m in members if m[0] != f"{name}.npy"] + [
            (f"{name}.npy", npy_header(shape, dtype, data=b"\0" * draw(st.integers(0, 64))), 0)
        ]
    if draw(st.booleans()):
        members = [(n, d, zipfile.ZIP_DEFLATED) for n, d, _ in members]
    write_zip(TARGET, members)
    return TARGET.read_bytes()


@st.composite
def byte_mutation(draw: st.DrawFn) -> bytes:
    data = bytearray(RAW[draw(st.integers(0, len(RAW) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "delete", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f", b"PK\x05\x06", b"PK\x01\x02"]))
            data[at : at + len(chunk)] = chunk
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=32))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            other = RAW[draw(st.integers(0, len(RAW) - 1))]
            start = draw(st.integers(0, len(other) - 1))
            data[at : at + 200] = other[start : start + 200]
    return bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=250)
    parser.add_argument("--limit-mb", type=int, default=768)
    parser.add_argument("--random", action="store_true", help="new examples each run (default: the same ones)")
    args = parser.parse_args()
    if sys.platform.startswith("linux"):
        import resource  # noqa: PLC0415 - POSIX only

        with open("/proc/self/status", encoding="ascii") as fh:
            used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        limit = used + (args.limit_mb << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    config = settings(max_examples=args.examples, deadline=None, database=None, derandomize=not args.random,
                      suppress_health_check=list(HealthCheck))

    @config
    @given(data=byte_mutation())
    def bytes_are_refused_or_loaded(data: bytes) -> None:
        load(data)

    @config
    @given(data=metadata_mutation())
    def structures_are_refused_or_loaded(data: bytes) -> None:
        load(data)

    bytes_are_refused_or_loaded()
    structures_are_refused_or_loaded()
    print(f"fuzzed {sum(COUNT.values())} files: {COUNT['refused']} refused, {COUNT['loaded']} loaded")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for path in FOLDER.iterdir():
            path.unlink()
        os.rmdir(FOLDER)
