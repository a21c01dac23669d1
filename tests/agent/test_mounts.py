"""The mount table: read again when the kernel reports a mount or unmount, not at every scrape."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.collectors.filesystems import FilesystemCollector
from agent.collectors.mounts import MountTable, Partition, open_mount_table, parse_mounts


def test_mount_lines_are_parsed_and_unescaped_like_getmntent() -> None:
    text = (
        "/dev/vda1 / ext4 rw,relatime 0 0\n"
        "//nas/backup\\040share /mnt/back\\040up cifs rw,vers=3.0 0 0\n"
        "tmpfs /run/a\\134b\\011c tmpfs rw 0 0\n"
        "garbage\n"
    )
    assert parse_mounts(text) == [
        Partition("/dev/vda1", "/", "ext4", "rw,relatime"),
        Partition("//nas/backup share", "/mnt/back up", "cifs", "rw,vers=3.0"),
        Partition("tmpfs", "/run/a\\b\tc", "tmpfs", "rw"),
    ]


def test_no_proc_means_no_table(tmp_path: Path) -> None:
    assert open_mount_table(str(tmp_path / "missing")) is None


def test_the_table_is_read_again_after_max_age_without_a_change_event(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"  # a plain file never reports a change: only max_age re-reads it
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n")
    now = [100.0]
    table = open_mount_table(str(mounts), max_age=300.0, clock=lambda: now[0])
    assert table is not None
    first = table.disk_partitions()
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /home xfs rw 0 0\n")
    now[0] += 299.0
    assert table.disk_partitions() is first  # not read again yet
    now[0] += 1.0
    assert [p.mountpoint for p in table.disk_partitions()] == ["/", "/home"]
    assert table.reads == 2
    table.close()
    assert [p.mountpoint for p in table.disk_partitions()] == ["/", "/home"]  # closed: what it had


@contextlib.contextmanager
def tmpfs_at(target: Path) -> Iterator[None]:
    target.mkdir(parents=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bk-test", str(target)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], capture_output=True, check=False)


@pytest.fixture
def table() -> Iterator[MountTable]:
    opened = open_mount_table()
    if opened is None:
        pytest.skip("no /proc/self/mounts")
    yield opened
    opened.close()


def test_a_mount_and_an_unmount_are_seen_at_the_next_call_and_nothing_is_read_in_between(
    table: MountTable, tmp_path: Path,
) -> None:
    first = table.disk_partitions()
    assert any(p.mountpoint == "/" for p in first)
    assert table.disk_partitions() is first and table.reads == 1  # no change: not read again
    target = tmp_path / "with space"
    with tmpfs_at(target):
        mounted = table.disk_partitions()
        assert table.reads == 2
        assert Partition("bk-test", str(target), "tmpfs", mounted[-1].opts) in mounted
        assert table.disk_partitions() is mounted
    after = table.disk_partitions()
    assert table.reads == 3
    assert all(p.mountpoint != str(target) for p in after)
    assert os.path.exists(target)


def test_the_filesystem_collector_reports_a_filesystem_mounted_while_it_runs(
    table: MountTable, tmp_path: Path,
) -> None:
    collector = FilesystemCollector(table, skip_fstypes=set())
    target = tmp_path / "data"

    def sizes() -> dict[str, float]:
        return {s.labels["mountpoint"]: s.value for s in collector.collect()
                if s.name == "boxkeeper_filesystem_size_bytes"}

    assert str(target) not in sizes()
    with tmpfs_at(target):
        assert sizes()[str(target)] == 1024 * 1024
    assert str(target) not in sizes()


def _psutil_table() -> list[tuple[str, str, str, str]]:
    return [(p.device, p.mountpoint, p.fstype, p.opts) for p in psutil.disk_partitions(all=True)]


def test_the_same_mounts_as_psutil_disk_partitions(table: MountTable) -> None:
    """What the table stands in for: psutil.disk_partitions(all=True), field by field, in order."""
    assert [tuple(p) for p in table.disk_partitions()] == _psutil_table()


def test_mount_points_the_kernel_escapes_read_as_psutil_reads_them(table: MountTable, tmp_path: Path) -> None:
    target = tmp_path / "a b\\c\td"  # a space, a backslash and a tab: \040, \134 and \011 in the file
    with tmpfs_at(target):
        ours = [tuple(p) for p in table.disk_partitions()]
        assert ours == _psutil_table()
        assert any(p[1] == str(target) for p in ours)
