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
from typing import Any, Literal, Optional, Protocol

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.configtypes import Count, Regex, Text
from agent.errors import SpecError
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


class ProcessSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["process"] = "process"
    match: Optional[Text] = None
    cmdline_regex: Optional[Regex] = None
    user: Optional[Text] = None
    min_count: Count = Count(1)
    max_count: Optional[Count] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.match or self.cmdline_regex):
            raise SpecError("match", "a process name (match) or a cmdline_regex")
        if self.max_count is not None and self.max_count < self.min_count:
            raise SpecError("max_count", "a count not below min_count")


@dataclass(frozen=True)
class ProcessCheck(FromSpec):
    spec: ProcessSpec
    psutil: Optional[PsutilLike] = None
    own_pid: Optional[int] = None

    def describe(self) -> str:
        spec = self.spec
        parts = []
        if spec.match:
            parts.append(f"name {spec.match!r}")
        if spec.cmdline_regex:
            parts.append(f"cmdline ~ {spec.cmdline_regex!r}")
        if spec.user:
            parts.append(f"user {spec.user!r}")
        return " and ".join(parts)

    @functools.cached_property
    def _search(self) -> Optional[Callable[[str], object]]:
        """``cmdline_regex`` compiled once (not looked up in ``re``'s cache per process)."""
        regex = self.spec.cmdline_regex
        return None if regex is None else re.compile(regex).search

    def matches(self, info: dict[str, Any]) -> bool:
        match, user, search = self.spec.match, self.spec.user, self._search
        if match is not None and info.get("name") != match:
            return False
        if search is not None and not search(" ".join(info.get("cmdline") or [])):
            return False
        return user is None or info.get("username") == user

    def collect(self) -> ProcessStats:
        ps = self.psutil if self.psutil is not None else _default_psutil()
        own = os.getpid() if self.own_pid is None else self.own_pid
        count, rss, cpu, pids = 0, 0, 0.0, []
        matches = self.matches
        for proc in ps.process_iter(self.attrs()):
            info = proc.info
            if info.get("pid") == own or not matches(info):
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
        if self.spec.cmdline_regex is not None:
            attrs.append("cmdline")
        if self.spec.user is not None:
            attrs.append("username")
        return attrs

    def run(self, timeout: float) -> CheckResult:
        stats = self.collect()
        low, high = self.spec.min_count, self.spec.max_count
        wanted = f"at least {low}" if high is None else f"{low}..{high}"
        status = Status.OK
        if stats.count < low or (high is not None and stats.count > high):
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


def build(spec: ProcessSpec, resources: Resources) -> ProcessCheck:
    """With the agent's shared process table: a ``match: NAME`` check gets only the processes of
    that name (it would skip every other one anyway)."""
    table = resources.processes
    if table is None:
        return ProcessCheck(spec)
    return ProcessCheck(spec, psutil=table.named(spec.match) if spec.match else table)


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
