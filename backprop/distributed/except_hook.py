"""A failing rank ends the whole job: the global exception hook (as ChainerMN's).

When one rank raises and exits, the others wait forever in their next collective: MPI cannot
tell a dead peer from a slow one, and ``mpiexec`` keeps the job alive while any rank runs.
The hook installed here runs on an exception nobody caught (in the main thread or any other):
it prints the traceback as Python would, names the rank, and calls ``MPI_Abort``, which makes
the launcher kill every rank of the job at once. `backprop.distributed.init` installs it when
the world has more than one rank; `remove_except_hook` restores what was there before.
(``python -m mpi4py script.py`` aborts the same way; the hook makes plain ``python`` and the
``backprop`` command behave alike.)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["except_hook_installed", "install_except_hook", "remove_except_hook"]

#: how long the hook waits, after printing, before it aborts
FORWARD_SECONDS = 0.5

_saved: tuple[Any, Any] | None = None  # (sys.excepthook, threading.excepthook) before ours


def install_except_hook(abort: Callable[[int], Any], rank: int, size: int) -> None:
    """Make an uncaught exception print its traceback and then call ``abort(1)`` (``MPI_Abort``
    on the world communicator). Installing twice keeps the first hook."""
    global _saved
    if _saved is not None:
        return
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def announce_and_abort() -> None:
        try:
            with contextlib.suppress(Exception):
                sys.stdout.flush()  # what the rank printed before it failed (block-buffered in a pipe)
            sys.stderr.write(
                f"\nbackprop.distributed: uncaught exception on rank {rank} of {size}; aborting the whole job "
                "(MPI_Abort) so that no rank waits for it forever\n"
            )
            sys.stderr.flush()
            # the launcher forwards our output through a pipe, and MPI_Abort kills the process that
            # reads it: give it a moment, or the traceback is cut off mid-line
            time.sleep(FORWARD_SECONDS)
        finally:
            abort(1)

    def sys_hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        try:
            previous_sys(kind, value, tb)
        finally:
            announce_and_abort()

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        try:
            previous_thread(args)
        finally:
            if args.exc_type is not SystemExit:
                announce_and_abort()

    _saved = (previous_sys, previous_thread)
    sys.excepthook = sys_hook
    threading.excepthook = thread_hook


def remove_except_hook() -> None:
    """Restore the hooks that were there before `install_except_hook` (nothing if not installed)."""
    global _saved
    if _saved is None:
        return
    sys.excepthook, threading.excepthook = _saved
    _saved = None


def except_hook_installed() -> bool:
    """Whether the aborting hook is in place."""
    return _saved is not None
