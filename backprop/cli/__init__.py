"""The ``backprop`` command line: ``train``, ``evaluate``, ``predict``, ``gradcheck`` and
``devices`` (``backprop COMMAND --help`` for each).

`main` returns the exit status instead of exiting, so it can be called in-process:
0 success, 1 failure (a one-paragraph reason on stderr, no traceback), 2 invalid arguments
(argparse's own errors and the checks of values such as ``--activation``, which list the valid
values), 130 interrupted.

Nothing escapes `main` as a traceback: an expected failure is a `CliError`; running out of
memory, input nested too deeply to parse, a file that cannot be written, a closed output pipe
and any error nobody foresaw are each reported in one paragraph with exit status 1 (the last
kind names itself as a bug to report; ``BACKPROP_TRACEBACK=1`` prints its traceback too).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence

from .errors import CliError, UsageError
from .parser import PROG, build_parser

__all__ = ["CliError", "UsageError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    prog = PROG
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        prog = f"{PROG} {args.command}"
        return int(args.run(args))
    except CliError as exc:
        _error(prog, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 130
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        _error(prog, _unexpected(exc))
        if os.environ.get("BACKPROP_TRACEBACK"):
            traceback.print_exception(exc)
        return 1


def _unexpected(exc: BaseException) -> str:
    """The one paragraph for an exception no command turned into a `CliError`."""
    if isinstance(exc, MemoryError):
        return ("out of memory: the data, the model or a batch is larger than this machine can hold; use a smaller "
                "--batch-size, smaller --layers or a smaller data set")
    if isinstance(exc, RecursionError):
        return "an input is nested too deeply to be read (a crafted or damaged file?)"
    if isinstance(exc, BrokenPipeError):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # the pipe is gone: stop writing to it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return "the output pipe was closed before everything was written"
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if exc.filename else ""
        return f"cannot read or write{where}: {exc.strerror or exc}"
    text = " ".join(str(exc).split())[:500]
    return (f"unexpected {type(exc).__name__}{': ' + text if text else ''} (this is a bug in backprop: please report "
            "it with the command line; BACKPROP_TRACEBACK=1 shows where it happened)")


def _error(prog: str, message: str) -> None:
    """One paragraph on stderr: ``backprop train: error: ...``."""
    with contextlib.suppress(OSError, ValueError):  # a closed pipe: the message still goes to stderr
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
