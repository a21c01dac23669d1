"""The mount table, read again only when the kernel says it changed.

The filesystem collector needs the list of mounts at every scrape. ``psutil.disk_partitions``
reads and parses the whole table each time (and resolves ``/etc/mtab`` first): about 0.4 ms of CPU
per scrape with the caches cold on the benchmark VM, for a table that changes a few times a year
on a portal box. :class:`MountTable` keeps ``/proc/self/mounts`` open and asks the kernel with a
zero-timeout ``poll`` whether a mount or unmount happened since the last read (proc(5): the file
then reports ``POLLPRI``/``POLLERR``, as libmount's monitor uses it); only then, or after
``max_age`` seconds as a safety net, is the table read and parsed again.

:meth:`MountTable.disk_partitions` answers like ``psutil.disk_partitions(all=True)`` (``device``,
``mountpoint``, ``fstype``, ``opts``; a mount point with a space, tab, newline or backslash comes
unescaped, as ``getmntent`` gives it), and returns the *same* list object until the table
changes, so a caller may keep what it derived from it. :func:`open_mount_table` gives ``None``
where ``/proc/self/mounts`` cannot be opened (not Linux): use psutil there.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Optional

MOUNTS = "/proc/self/mounts"
#: Read the table again after this long even without a change event (a kernel without the event).
MAX_AGE_SECONDS = 300.0
_ESCAPE = re.compile(r"\\([0-7]{3})")


class Partition(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    opts: str


def _unescape(field: str) -> str:
    """``/mnt/a\\040b`` -> ``/mnt/a b`` (the kernel escapes space, tab, newline and backslash)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


def parse_mounts(text: str) -> list[Partition]:
    """The lines of a mounts file (``device mountpoint fstype opts freq passno``)."""
    parts: list[Partition] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) >= 4:
            parts.append(Partition(_unescape(fields[0]), _unescape(fields[1]), _unescape(fields[2]),
                                   _unescape(fields[3])))
    return parts


class MountTable:
    """psutil-like ``disk_partitions`` over a kept-open mounts file (thread-safe)."""

    def __init__(self, fd: int, *, path: str = MOUNTS, max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._fd = fd
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLPRI | select.POLLERR)  # novm
        self._parts: list[Partition] = []
        self._read_at: Optional[float] = None
        self.reads = 0  # times the table was read (tests, the benchmark)

    def disk_partitions(self, all: bool = True) -> list[Partition]:
        """Every mount (``all`` is accepted for psutil's signature; pseudo filesystems are the
        caller's to skip). The same list object until the table changes: do not modify it."""
        with self._lock:
            if self._fd < 0:  # closed (the agent stopping): what it had
                return self._parts
            now = self._clock()
            wanted = select.POLLPRI | select.POLLERR  # novm
            changed = any(events & wanted for _, events in self._poll.poll(0))
            if changed or self._read_at is None or now - self._read_at >= self._max_age:
                self._parts = parse_mounts(self._read())
                self._read_at = now
                self.reads += 1
            return self._parts

    def _read(self) -> str:
        chunks = []
        offset = 0
        while chunk := os.pread(self._fd, 65536, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks).decode(errors="replace")

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._poll.unregister(self._fd)
                os.close(self._fd)
                self._fd = -1


def open_mount_table(path: str = MOUNTS, *, max_age: float = MAX_AGE_SECONDS,
                     clock: Callable[[], float] = time.monotonic) -> Optional[MountTable]:
    """A :class:`MountTable` on ``path``, or None when it cannot be opened (no /proc)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # novm
    except OSError:
        return None
    return MountTable(fd, path=path, max_age=max_age, clock=clock)
