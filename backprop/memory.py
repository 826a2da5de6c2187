"""How much memory this process may still allocate, and sizes in words.

`available_host_memory` is the least of what the machine has free (``MemAvailable``), what
this process's address-space and data limits leave (``RLIMIT_AS``, ``RLIMIT_DATA``, as a test
or a batch system sets them) and what its cgroup leaves (containers); ``None`` where none of
these can be read. A GPU's free memory is `backprop.backends.cuda.free_memory`'s to ask (only
the backends know CuPy). Code that is about to allocate something large (a checkpoint's members, a model
the command line builds) compares its estimate with these first and refuses with both numbers
instead of dying halfway. This module imports nothing of the library.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["available_host_memory", "format_bytes"]


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``312 kB``, ``17 bytes`` (powers of 1000, as disks and ``free -h --si``)."""
    n = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            if unit == "bytes":
                return f"{int(n)} bytes"
            return f"{n:,.0f} {unit}" if abs(n) >= 1000 else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"  # pragma: no cover - unreachable


def available_host_memory() -> int | None:
    """Bytes this process can still allocate on the host, by the tightest known limit."""
    limits = [v for v in (_meminfo_available(), _rlimit_room(), _cgroup_room()) if v is not None]
    return max(0, min(limits)) if limits else None


def _meminfo_available() -> int | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    return None


def _rlimit_room() -> int | None:
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows
        return None
    rooms = []
    for name, status_key in (("RLIMIT_AS", "VmSize:"), ("RLIMIT_DATA", "VmData:")):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            soft, _hard = resource.getrlimit(limit)
            if soft != resource.RLIM_INFINITY and soft > 0:
                rooms.append(soft - (_status_bytes(status_key) or 0))
    return min(rooms) if rooms else None


def _status_bytes(key: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """The cgroup's limit less its working set (its usage less the file cache it can drop,
    as container runtimes count it)."""
    for folder, limit_name, usage_name, cache_key in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),  # cgroup v2
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),  # v1
    ):
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(folder, limit_name), encoding="ascii") as fh:
                text = fh.read().strip()
            if text == "max":
                return None
            limit = int(text)
            if limit >= 1 << 60:  # v1's "no limit"
                return None
            with open(os.path.join(folder, usage_name), encoding="ascii") as fh:
                usage = int(fh.read().strip())
            return limit - max(usage - _stat_value(os.path.join(folder, "memory.stat"), cache_key), 0)
    return None


def _stat_value(path: str, key: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError), open(path, encoding="ascii") as fh:
        for line in fh:
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0
