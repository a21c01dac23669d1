"""``disk`` check: space and inodes used on the filesystem holding ``path``, against thresholds.

Percentages are computed as ``df`` does: used / (used + available to unprivileged users), so the
blocks reserved for root count as unavailable. Filesystems that report no inode table (vfat,
btrfs) are judged on space alone.

A hung mount (dead NFS server) blocks ``statvfs`` in the kernel: the scheduler's timeout covers
it like any hung check (UNKNOWN "statvfs(/mnt/nfs) did not return within 10s, hung mount?", and
while that call is still stuck no second one is started: "still hung since ..."). Running the
call on a thread of its own per run cost more CPU than the rest of the check. No privileges are
needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources, seconds_text
from agent.configtypes import Percent, Text
from agent.errors import SpecError
from agent.report import PerfValue, Status


@dataclass(frozen=True)
class Usage:
    total_bytes: int
    used_bytes: int
    avail_bytes: int
    used_pct: float
    inodes_total: int
    inodes_used: int
    inodes_used_pct: Optional[float]  # None: the filesystem has no inode table


def usage_from_statvfs(st: Any) -> Usage:
    """``os.statvfs`` result → :class:`Usage` (pure)."""
    frsize = st.f_frsize or st.f_bsize
    total = st.f_blocks * frsize
    used = (st.f_blocks - st.f_bfree) * frsize
    avail = st.f_bavail * frsize
    pct = used * 100.0 / (used + avail) if used + avail > 0 else 0.0
    inodes_used = st.f_files - st.f_ffree
    ipct = inodes_used * 100.0 / st.f_files if st.f_files > 0 else None
    return Usage(total, used, avail, pct, st.f_files, inodes_used, ipct)


class DiskSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["disk"] = "disk"
    path: Text
    warning: Percent = Percent(85.0)
    critical: Percent = Percent(95.0)
    inodes_warning: Percent = Percent(90.0)
    inodes_critical: Percent = Percent(95.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warning > self.critical:
            raise SpecError("warning", "a percentage not above critical")
        if self.inodes_warning > self.inodes_critical:
            raise SpecError("inodes_warning", "a percentage not above inodes_critical")


@dataclass(frozen=True)
class DiskCheck(FromSpec):
    spec: DiskSpec
    statvfs: Callable[[str], Any] = os.statvfs

    def run(self, timeout: float) -> CheckResult:
        try:
            st = self.statvfs(self.spec.path)
        except OSError as exc:
            why = exc.strerror or exc
            return CheckResult(Status.UNKNOWN, f"cannot stat filesystem of {self.spec.path}: {why}")
        return self.judge(usage_from_statvfs(st))

    def timeout_summary(self, timeout: float) -> str:
        """What the scheduler reports when ``statvfs`` has not returned within ``timeout``."""
        return f"statvfs({self.spec.path}) did not return within {seconds_text(timeout)}, hung mount?"

    def judge(self, u: Usage) -> CheckResult:
        spec = self.spec
        warning, critical = float(spec.warning), float(spec.critical)
        status = _level(u.used_pct, warning, critical)
        used, size, free = _gib(u.used_bytes), _gib(u.used_bytes + u.avail_bytes), _gib(u.avail_bytes)
        summary = f"{spec.path} {u.used_pct:.1f}% used ({used} of {size}, {free} free)"
        problems = []
        if status is not Status.OK:
            limit = critical if status is Status.CRITICAL else warning
            problems.append(f"space at or above {limit:g}%")
        perf = [
            PerfValue("used_pct", round(u.used_pct, 2), "%", warning, critical, 0.0, 100.0),
            PerfValue("used", float(u.used_bytes), "B", min=0.0, max=float(u.total_bytes)),
            PerfValue("avail", float(u.avail_bytes), "B", min=0.0, max=float(u.total_bytes)),
        ]
        if u.inodes_used_pct is not None:
            iwarning, icritical = float(spec.inodes_warning), float(spec.inodes_critical)
            istatus = _level(u.inodes_used_pct, iwarning, icritical)
            summary += f", inodes {u.inodes_used_pct:.1f}% used"
            if istatus is not Status.OK:
                limit = icritical if istatus is Status.CRITICAL else iwarning
                problems.append(f"inodes at or above {limit:g}%")
            status = max(status, istatus, key=lambda s: s.severity)
            perf.append(PerfValue("inodes_used_pct", round(u.inodes_used_pct, 2), "%",
                                  iwarning, icritical, 0.0, 100.0))
        if problems:
            summary += ": " + ", ".join(problems)
        return CheckResult(status, summary, tuple(perf))


def build(spec: DiskSpec, resources: Resources) -> DiskCheck:
    return DiskCheck(spec)


def _level(pct: float, warning: float, critical: float) -> Status:
    if pct >= critical:
        return Status.CRITICAL
    if pct >= warning:
        return Status.WARNING
    return Status.OK


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
