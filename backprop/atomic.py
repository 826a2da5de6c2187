"""Atomic file writes: a file appears under its name complete and synced, or not at all, and
no temporary file outlives the save that made it, not even a killed one.

`atomic_write` (and `atomic_write_all` for several files that belong together) write to a
temporary file beside the target, ``.<name>.<12 hex digits>.tmp``, flush and fsync it, rename
it over the target and fsync the directory. Any failure (a full disk, Ctrl-C) removes the
temporary file and leaves what was at the target untouched. Checkpoints, the command line's
predictions and probabilities, and plots are written this way.

A process killed outright (``kill -9``, the OOM killer, a power cut) cannot clean up, so every
save first removes the debris of earlier saves to the same target. Telling debris from the
temporary file of a save that is running right now, in this or another process, is done with
an advisory lock (``flock``), not a guess from its age:

- a writer locks its temporary file as soon as it has created it and holds the lock until the
  file has been renamed over the target; the kernel drops the lock when the writer dies, however
  it dies;
- the cleaner removes only files that match this target's own pattern, are regular files (not
  links) owned by this user, and whose lock it can take without waiting: a file being written
  is locked, so a concurrent save is never disturbed;
- the one window, between a writer creating its file and locking it, is closed from the
  writer's side: a writer that cannot lock the file it just created (a cleaner took it) leaves
  it to the cleaner and starts another one.

Where advisory locks are not available (Windows, or a filesystem that refuses them), only
matching files older than `STALE_AGE_WITHOUT_LOCKS` are removed (on Windows a file another
process has open cannot be removed anyway). This module imports nothing of the library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Sequence
from typing import IO

try:  # POSIX advisory locks; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["STALE_AGE_WITHOUT_LOCKS", "atomic_write", "atomic_write_all", "remove_stale_temps", "temp_files"]

#: Where locks are unavailable, a matching temporary file older than this (seconds) is debris.
STALE_AGE_WITHOUT_LOCKS = 3600.0
_TOKEN = 12  # hex digits of the random part of a temporary file's name
_BASE = 150  # characters of the target's name kept in a temporary file's name (NAME_MAX is 255)

Writer = Callable[[IO[bytes]], None]


def atomic_write(path: str | os.PathLike[str], write: Writer) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, flush and fsync it, rename it
    over ``path`` and fsync the directory. On any failure the temporary file is removed and
    whatever was at ``path`` before is left untouched. Stale temporary files of earlier,
    killed saves to ``path`` are removed first (see the module's documentation)."""
    atomic_write_all([(path, write)])


def atomic_write_all(files: Sequence[tuple[str | os.PathLike[str], Writer]]) -> None:
    """`atomic_write` for files that belong together (predictions and their probabilities):
    every file is written and synced to its temporary file first, and only when all of them
    are complete are they renamed into place, so a failure leaves none of them changed."""
    targets = [_target(path) for path, _ in files]
    if len(set(targets)) != len(targets):
        raise ValueError(f"the same file is to be written twice: {', '.join(map(repr, targets))}")
    pending: list[tuple[str, str, int]] = []  # (temp, target, fd) with the fd locked and open
    try:
        for target, (_, write) in zip(targets, files):
            directory, base = os.path.split(target)
            remove_stale_temps(target)
            temp, fd = _create_temp(directory, base)
            pending.append((temp, target, fd))
            fh = os.fdopen(os.dup(fd), "wb")  # our own fd keeps the lock while fh is closed
            with fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        if os.name == "nt":  # pragma: no cover - Windows cannot rename a file that is open
            for i, (temp, target, fd) in enumerate(pending):
                os.close(fd)
                pending[i] = (temp, target, -1)
        for temp, target, _ in pending:
            os.replace(temp, target)  # still locked: no cleaner can take it before it is renamed
    except BaseException:
        for temp, _, fd in pending:
            with contextlib.suppress(OSError):
                os.remove(temp)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        raise
    for _, _, fd in pending:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    for directory in sorted({os.path.dirname(target) for target in targets}):
        _fsync_directory(directory)


def _target(path: str | os.PathLike[str]) -> str:
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {os.fspath(path)!r}: directory {directory!r} does not exist")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save {os.fspath(path)!r}: it is a directory")
    return target


def _pattern(base: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(base[:_BASE])}\.[0-9a-f]{{{_TOKEN}}}\.tmp$")


def temp_files(path: str | os.PathLike[str]) -> list[str]:
    """The temporary files of saves to ``path`` that exist now (running or killed ones)."""
    target = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(target)
    pattern = _pattern(base)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names if pattern.match(name))


def remove_stale_temps(path: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files that saves to ``path`` left behind when they were killed,
    leaving those of saves still running; returns the paths removed. Never raises for a file
    it cannot inspect or remove (it is left alone)."""
    removed = []
    for temp in temp_files(path):
        with contextlib.suppress(OSError):
            if _remove_if_stale(temp):
                removed.append(temp)
    return removed


def _remove_if_stale(temp: str) -> bool:
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return False
        if not _try_lock(fd) and (_locks_work(fd) or time.time() - info.st_mtime < STALE_AGE_WITHOUT_LOCKS):
            return False  # a save that is running holds it (or, without locks, it is recent)
        now = os.lstat(temp)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            return False  # renamed into place or replaced meanwhile: not ours to remove
        os.remove(temp)
        return True
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; ``False`` if someone holds one or
    locks are unavailable."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _locks_work(fd: int) -> bool:
    """Whether a failed lock means "held by someone" (``True``) rather than "this system or
    filesystem has no locks" (``False``)."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _create_temp(directory: str, base: str) -> tuple[str, int]:
    """A new file ``.<base>.<random>.tmp`` in ``directory`` (permissions follow the umask),
    locked; returns its path and open descriptor."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = os.path.join(directory, f".{base[:_BASE]}.{secrets.token_hex(_TOKEN // 2)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        if fcntl is None:  # pragma: no cover - Windows
            return temp, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)  # a cleaner took it between our open and our lock: it removes it
                continue
            return temp, fd  # a filesystem without locks: the age rule protects the file
        return temp, fd


def _fsync_directory(directory: str) -> None:
    """Make the rename durable. Windows cannot open directories (and needs no such step);
    a filesystem that refuses to fsync a directory is not an error: the file is in place."""
    if os.name == "nt":  # pragma: no cover - Windows
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
