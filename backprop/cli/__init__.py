"""The ``backprop`` command line: ``train``, ``evaluate``, ``predict``, ``gradcheck`` and
``devices`` (``backprop COMMAND --help`` for each).

`main` returns the exit status instead of exiting, so it can be called in-process:
0 success, 1 failure (a one-paragraph reason on stderr, no traceback), 2 invalid arguments
(argparse's own errors and the checks of values such as ``--activation``, which list the valid
values), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .errors import CliError, UsageError
from .parser import PROG, build_parser

__all__ = ["CliError", "UsageError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    prog = f"{PROG} {args.command}"
    try:
        return int(args.run(args))
    except CliError as exc:
        _error(prog, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 130


def _error(prog: str, message: str) -> None:
    """One paragraph on stderr: ``backprop train: error: ...``."""
    sys.stdout.flush()
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
