"""The two kinds of expected error a command reports without a traceback."""

from __future__ import annotations

__all__ = ["CliError", "Interrupted", "UsageError"]


class CliError(Exception):
    """The command could not do its job (exit status 1): CUDA unusable, a file that cannot be
    read or written, training that diverged. The message is one paragraph saying what to do."""

    exit_code = 1


class UsageError(CliError):
    """The arguments do not make sense (exit status 2, like argparse's own errors); the message
    names the option and, where there is a fixed set, lists the valid values."""

    exit_code = 2


class Interrupted(CliError):
    """Ctrl-C during training (exit status 130, as a shell reports SIGINT); the message says
    which epoch is saved and how to resume."""

    exit_code = 130
