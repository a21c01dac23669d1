"""One shared, cheap scan of the process table for all ``process`` checks.

Every process check needs the same facts about every process (name, command line, user, memory,
CPU). Through psutil, a scan of ~100 processes costs about 11 ms of CPU; the seven process checks
of a Bitrix box would pay that seven times per interval. :class:`ProcessTable` is psutil-like for
the process check (``process_iter(attrs)`` yielding objects with an ``.info`` dict), but:

- it scans once and serves that snapshot to every caller for ``max_age`` seconds (checks falling
  due together share it);
- it reads ``/proc`` itself (``proc_root``, injectable for tests, like prometheus-client's
  ProcessCollector): pid and name for every process (about 2 ms per scan), and the rest lazily,
  once per snapshot, only when a check asks: ``cmdline`` (for ``cmdline_regex`` checks),
  ``username`` (for ``user`` filters), ``memory_info``/``cpu_times`` (only for matched processes).

Names follow psutil: the kernel's ``comm``, extended from the command line when the kernel
truncated it to 15 characters. A process that exits mid-scan is skipped; an attribute that cannot
be read is ``None`` (as with psutil). Thread-safe: checks run in parallel threads.
"""

from __future__ import annotations

import os
import pwd
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

LAZY_ATTRS = ("cmdline", "username", "memory_info", "cpu_times")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone, or not ours to read
        return None


class _LazyInfo(dict[str, Any]):
    """``info`` of one process; LAZY_ATTRS are read from /proc on first access, then kept."""

    def __init__(self, proc_dir: str, pid: int, name: str) -> None:
        super().__init__(pid=pid, name=name)
        self._dir = proc_dir

    def _load(self, key: str) -> Any:
        value: Any = None
        if key == "cmdline":
            raw = _read(f"{self._dir}/cmdline")
            value = [] if raw is None else [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        elif key == "username":
            raw = _read(f"{self._dir}/status")
            uid = _status_uid(raw) if raw is not None else None
            if uid is not None:
                try:
                    value = pwd.getpwuid(uid).pw_name
                except KeyError:
                    value = str(uid)
        elif key == "memory_info":
            raw = _read(f"{self._dir}/statm")
            if raw is not None and len(raw.split()) > 1:
                value = SimpleNamespace(rss=int(raw.split()[1]) * PAGE_SIZE)
        elif key == "cpu_times":
            raw = _read(f"{self._dir}/stat")
            if raw is not None:
                fields = raw.rsplit(b")", 1)[-1].split()
                if len(fields) > 12:
                    user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
                    value = SimpleNamespace(user=user, system=system)
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key in LAZY_ATTRS and not dict.__contains__(self, key):
            return self._load(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        if key in LAZY_ATTRS and not dict.__contains__(self, key):
            return self._load(key)
        return super().__getitem__(key)


def _status_uid(status: bytes) -> int | None:
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            parts = line.split()
            return int(parts[1]) if len(parts) > 1 else None  # the real uid, as psutil's username()
    return None


class _Snapshot:
    __slots__ = ("info",)

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info


class ProcessTable:
    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = str(proc_root)
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: list[_Snapshot] = []
        self._taken: float | None = None
        self.scans = 0

    def process_iter(self, attrs: list[str] | None = None) -> Iterable[_Snapshot]:
        with self._lock:
            now = self._clock()
            if self._taken is None or now - self._taken >= self._max_age:
                self._snapshot = self._scan()
                self._taken = now
                self.scans += 1
            return list(self._snapshot)

    def _scan(self) -> list[_Snapshot]:
        snapshot = []
        try:
            entries = os.listdir(self._root)
        except OSError:
            return []
        for entry in entries:
            if not entry.isdigit():
                continue
            proc_dir = f"{self._root}/{entry}"
            comm = _read(f"{proc_dir}/comm")
            if comm is None:
                continue  # exited during the scan
            name = comm.rstrip(b"\n").decode(errors="replace")
            info = _LazyInfo(proc_dir, int(entry), name)
            if len(name) >= 15:  # the kernel truncates comm: psutil extends it from the cmdline
                cmdline = info.get("cmdline")
                if cmdline:
                    full = os.path.basename(cmdline[0])
                    if full.startswith(name):
                        info["name"] = full
            snapshot.append(_Snapshot(info))
        return snapshot
