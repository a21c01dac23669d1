"""``process`` check: are there between ``min_count`` and ``max_count`` matching processes?

A process matches when its name equals ``match`` (psutil's name: the executable's name, e.g.
``nginx``, ``mysqld``) and/or its command line (arguments joined by spaces) matches
``cmdline_regex`` (``re.search``), and, if ``user`` is given, it runs as that user. All of this is
readable from /proc without privileges. The agent's own process is never counted.

Perfdata: ``count``, ``rss`` (summed resident memory, bytes) and ``cpu`` (summed user+system CPU
time, seconds; it drops when a process exits) of the matching processes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.checks.base import CheckResult
from agent.config import CheckConfig
from agent.report import PerfValue, Status


class ProcessLike(Protocol):
    """A psutil.Process as ``process_iter(attrs)`` yields it: ``info`` holds the asked attributes."""

    @property
    def info(self) -> dict[str, Any]: ...


class PsutilLike(Protocol):
    """What the check needs of psutil: ``process_iter(attrs)`` yielding :class:`ProcessLike`.

    As with psutil, an attribute that could not be read (process gone, access denied) is ``None``.
    ``memory_info`` and ``cpu_times`` are taken from ``info`` when it has them (a shared process
    table, a fake), else read with the process' own methods, only for the matching processes.
    """

    def process_iter(self, attrs: list[str]) -> Iterable[ProcessLike]: ...


def _default_psutil() -> PsutilLike:
    import psutil

    return psutil


@dataclass(frozen=True)
class ProcessStats:
    count: int
    rss_bytes: int
    cpu_seconds: float
    pids: tuple[int, ...]


@dataclass(frozen=True)
class ProcessCheck:
    name: str
    match: str | None = None
    cmdline_regex: str | None = None
    user: str | None = None
    min_count: int = 1
    max_count: int | None = None
    type: str = "process"
    psutil: PsutilLike | None = None
    own_pid: int | None = None

    @classmethod
    def from_config(cls, cfg: CheckConfig, psutil: PsutilLike | None = None) -> ProcessCheck:
        o = cfg.options
        return cls(cfg.name, o["match"], o["cmdline_regex"], o["user"], o["min_count"], o["max_count"],
                   psutil=psutil)

    def describe(self) -> str:
        parts = []
        if self.match:
            parts.append(f"name {self.match!r}")
        if self.cmdline_regex:
            parts.append(f"cmdline ~ {self.cmdline_regex!r}")
        if self.user:
            parts.append(f"user {self.user!r}")
        return " and ".join(parts)

    @functools.cached_property
    def _search(self) -> Callable[[str], object] | None:
        """``cmdline_regex`` compiled once (not looked up in ``re``'s cache per process)."""
        return None if self.cmdline_regex is None else re.compile(self.cmdline_regex).search

    def matches(self, info: dict[str, Any]) -> bool:
        if self.match is not None and info.get("name") != self.match:
            return False
        search = self._search
        if search is not None and not search(" ".join(info.get("cmdline") or [])):
            return False
        return self.user is None or info.get("username") == self.user

    def collect(self) -> ProcessStats:
        ps = self.psutil if self.psutil is not None else _default_psutil()
        own = os.getpid() if self.own_pid is None else self.own_pid
        count, rss, cpu, pids = 0, 0, 0.0, []
        for proc in ps.process_iter(self.attrs()):
            info = proc.info
            if info.get("pid") == own or not self.matches(info):
                continue
            count += 1
            pids.append(int(info.get("pid") or 0))
            mem = _stat(proc, info, "memory_info")
            if mem is not None:
                rss += int(mem.rss)
            times = _stat(proc, info, "cpu_times")
            if times is not None:
                cpu += float(times.user) + float(times.system)
        return ProcessStats(count, rss, cpu, tuple(pids))

    def attrs(self) -> list[str]:
        """The attributes matching needs (each costs a /proc read per process)."""
        attrs = ["pid", "name"]
        if self.cmdline_regex is not None:
            attrs.append("cmdline")
        if self.user is not None:
            attrs.append("username")
        return attrs

    def run(self, timeout: float) -> CheckResult:
        stats = self.collect()
        wanted = f"at least {self.min_count}"
        if self.max_count is not None:
            wanted = f"{self.min_count}..{self.max_count}"
        status = Status.OK
        if stats.count < self.min_count or (self.max_count is not None and stats.count > self.max_count):
            status = Status.CRITICAL
        noun = "process" if stats.count == 1 else "processes"
        summary = f"{stats.count} {noun} with {self.describe()} (want {wanted})"
        if stats.count:
            summary += f", {_mib(stats.rss_bytes)} RSS"
        perf = (
            PerfValue("count", float(stats.count), "", min=0.0),
            PerfValue("rss", float(stats.rss_bytes), "B", min=0.0),
            PerfValue("cpu", round(stats.cpu_seconds, 3), "s", min=0.0),
        )
        details = "pids: " + " ".join(map(str, stats.pids[:50])) if stats.pids else ""
        return CheckResult(status, summary, perf, details)


def _stat(proc: ProcessLike, info: dict[str, Any], key: str) -> Any:
    """``info[key]``, else the process' own method (psutil), else None (gone, not readable)."""
    value = info.get(key)
    if value is None:
        method = getattr(proc, key, None)
        if callable(method):
            try:
                value = method()
            except Exception:  # psutil.Error: gone or not ours to read; counted without stats
                value = None
    return value


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
