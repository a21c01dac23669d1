"""``disk`` checks: thresholds on a fake statvfs, a hung statvfs, and the real filesystem."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.checks.disk import DiskCheck, DiskSpec, usage_from_statvfs
from agent.config import parse
from agent.report import Status
from agent.scheduler import CheckScheduler


def fake_statvfs(used_pct: float, inodes_pct: float, *, files: int = 1000) -> SimpleNamespace:
    """A 100 GiB filesystem (4 KiB blocks, 5% reserved) with the given usage."""
    blocks = 100 * 2**30 // 4096
    reserved = blocks // 20
    usable = blocks - reserved
    used = int(usable * used_pct / 100)
    return SimpleNamespace(
        f_bsize=4096,
        f_frsize=4096,
        f_blocks=blocks,
        f_bfree=blocks - used,
        f_bavail=usable - used,
        f_files=files,
        f_ffree=files - int(files * inodes_pct / 100),
        f_favail=0,
        f_flag=0,
        f_namemax=255,
    )


def _check(st: SimpleNamespace, **kw: float) -> DiskCheck:
    return DiskCheck(DiskSpec(name="disk", path="/data", **kw), statvfs=lambda _path: st)


@pytest.mark.parametrize(
    ("used", "inodes", "status", "text"),
    [
        (50.0, 10.0, Status.OK, None),
        (86.0, 10.0, Status.WARNING, "space at or above 85%"),
        (95.0, 10.0, Status.CRITICAL, "space at or above 95%"),
        (50.0, 91.0, Status.WARNING, "inodes at or above 90%"),
        (50.0, 96.0, Status.CRITICAL, "inodes at or above 95%"),
        (86.0, 96.0, Status.CRITICAL, "space at or above 85%, inodes at or above 95%"),
    ],
)
def test_space_and_inodes_against_thresholds(
    used: float, inodes: float, status: Status, text: str | None
) -> None:
    result = _check(fake_statvfs(used, inodes)).run(5)
    assert result.status is status, result.summary
    assert result.summary.startswith(f"/data {used:.1f}% used (")
    assert f"inodes {inodes:.1f}% used" in result.summary
    if text:
        assert result.summary.endswith(text)
    perf = {p.label: p for p in result.perfdata}
    assert perf["used_pct"].value == pytest.approx(used, abs=0.01)
    assert (perf["used_pct"].warn, perf["used_pct"].crit) == (85.0, 95.0)
    assert perf["inodes_used_pct"].value == pytest.approx(inodes, abs=0.1)


def test_reserved_blocks_count_as_unavailable_like_df() -> None:
    usage = usage_from_statvfs(fake_statvfs(100.0, 0.0))
    assert usage.avail_bytes == 0
    assert usage.used_pct == pytest.approx(100.0)
    assert usage.used_bytes < usage.total_bytes  # root's reserve is still free, but not for us


def test_filesystem_without_inode_table_is_judged_on_space() -> None:
    result = _check(fake_statvfs(10.0, 0.0, files=0)).run(5)
    assert result.status is Status.OK
    assert "inodes" not in result.summary
    assert "inodes_used_pct" not in {p.label for p in result.perfdata}


def test_custom_thresholds() -> None:
    result = _check(fake_statvfs(60.0, 10.0), warning=50.0, critical=70.0).run(5)
    assert result.status is Status.WARNING


def test_hung_statvfs_is_abandoned_and_not_stacked() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hanging(path: str) -> SimpleNamespace:
        calls.append(path)
        release.wait(30)
        return fake_statvfs(10.0, 10.0)

    disk = {"name": "nfs", "type": "disk", "path": "/mnt/nfs", "timeout": 0.2}
    config = parse({"checks": [disk]}).checks[0]
    assert isinstance(config, DiskSpec)
    check = DiskCheck(config, statvfs=hanging)
    sched = CheckScheduler([(config, check)], grace=0.1)
    try:
        first = sched.run_once()[0]
        assert first.status is Status.UNKNOWN
        assert first.summary == "statvfs(/mnt/nfs) did not return within 0.2s, hung mount?"
        second = sched.run_once()[0]
        assert second.status is Status.UNKNOWN
        assert second.summary.startswith("still hung since ")
        assert second.summary.endswith("(statvfs(/mnt/nfs) did not return within 0.2s, hung mount?)")
        assert calls == ["/mnt/nfs"], "a second statvfs was started on a hung mount"
    finally:
        release.set()
    # once the mount answers again (the stuck call returns) the check works again
    deadline = time.monotonic() + 10
    while sched.run_once()[0].status is not Status.OK and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sched.run_once()[0].status is Status.OK
    sched.stop()


def test_statvfs_error_is_unknown_with_the_reason() -> None:
    def failing(path: str) -> SimpleNamespace:
        raise PermissionError(13, "Permission denied")

    result = DiskCheck(DiskSpec(name="secret", path="/root/private"), statvfs=failing).run(1)
    assert (result.status, result.summary) == (
        Status.UNKNOWN, "cannot stat filesystem of /root/private: Permission denied")


def test_missing_path_is_unknown(tmp_path: Path) -> None:
    result = DiskCheck(DiskSpec(name="gone", path=str(tmp_path / "nope"))).run(5)
    assert result.status is Status.UNKNOWN
    assert "No such file or directory" in result.summary


@pytest.mark.integration
def test_real_filesystem_matches_os_statvfs(tmp_path: Path) -> None:
    result = DiskCheck(DiskSpec(
        name="tmp", path=str(tmp_path), warning=100.0, critical=100.0, inodes_warning=100.0,
        inodes_critical=100.0,
    )).run(5)
    assert result.status in (Status.OK, Status.CRITICAL)  # CRITICAL only on a completely full disk
    st = os.statvfs(tmp_path)
    perf = {p.label: p.value for p in result.perfdata}
    assert perf["used"] + perf["avail"] <= st.f_blocks * st.f_frsize
    assert 0 <= perf["used_pct"] <= 100
