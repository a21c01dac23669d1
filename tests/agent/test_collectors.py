"""Host collectors read through a psutil-like fake and give Prometheus-named samples."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.collectors import HostSampler
from agent.collectors.cpu import CpuCollector
from agent.collectors.diskio import DiskIoCollector
from agent.collectors.facts import FactsCollector, read_os_release
from agent.collectors.filesystems import FilesystemCollector
from agent.collectors.load import LoadCollector
from agent.collectors.memory import MemoryCollector
from agent.collectors.network import NetworkCollector
from agent.collectors.registry import HostSources, build_collectors
from agent.report import Sample
from tests.agent.fakes import FakePsutil, FakeStatvfs

HOME_SIZE = ("boxkeeper_filesystem_size_bytes", (("fstype", "xfs"), ("mountpoint", "/home")))


def by_key(samples: tuple[Sample, ...]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Sample]:
    return {(s.name, tuple(sorted(s.labels.items()))): s for s in samples}


def value(samples: tuple[Sample, ...], name: str, **labels: str) -> float:
    return by_key(samples)[(name, tuple(sorted(labels.items())))].value


def test_cpu_seconds_by_mode_are_counters() -> None:
    samples = CpuCollector(FakePsutil()).collect()
    assert value(samples, "boxkeeper_cpu_seconds_total", mode="user") == 100.0
    assert value(samples, "boxkeeper_cpu_seconds_total", mode="steal") == 0.125
    assert {s.labels["mode"] for s in samples} == {
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
    }  # guest time is part of user already: not double counted
    assert all(s.kind == "counter" for s in samples)


MEMINFO = """\
MemTotal:        8388608 kB
MemFree:          524288 kB
MemAvailable:    6291456 kB
Buffers:           65536 kB
SwapCached:            0 kB
SwapTotal:       1048576 kB
SwapFree:         786432 kB
HugePages_Total:       0
"""


def test_load_and_memory_in_base_units(tmp_path: Path) -> None:
    ps = FakePsutil()
    load = LoadCollector(ps).collect()
    assert [s.value for s in load] == [0.5, 0.25, 0.125]
    (tmp_path / "meminfo").write_text(MEMINFO)
    mem = MemoryCollector(tmp_path / "meminfo").collect()
    assert value(mem, "boxkeeper_memory_total_bytes") == 8 * 2**30
    assert value(mem, "boxkeeper_memory_available_bytes") == 6 * 2**30
    assert value(mem, "boxkeeper_memory_used_bytes") == 2 * 2**30
    assert value(mem, "boxkeeper_swap_total_bytes") == 2**30
    assert value(mem, "boxkeeper_swap_used_bytes") == 256 * 2**20
    assert all(s.kind == "gauge" for s in mem)


def test_memory_agrees_with_psutil_on_this_machine() -> None:
    import psutil

    mem = MemoryCollector().collect()
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    assert value(mem, "boxkeeper_memory_total_bytes") == vm.total
    assert abs(value(mem, "boxkeeper_memory_available_bytes") - vm.available) < 64 * 2**20  # moves
    assert value(mem, "boxkeeper_swap_total_bytes") == swap.total


def test_memory_without_memavailable_leaves_out_what_it_cannot_know(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 1024 kB\nMemFree: 512 kB\n")  # kernels before 3.14
    mem = MemoryCollector(tmp_path / "meminfo").collect()
    assert [s.name for s in mem] == ["boxkeeper_memory_total_bytes"]


def test_filesystems_space_and_inodes_skip_pseudo_and_duplicates() -> None:
    statvfs = FakeStatvfs()
    samples = FilesystemCollector(FakePsutil(), statvfs=statvfs).collect()
    assert value(samples, "boxkeeper_filesystem_size_bytes", mountpoint="/", fstype="ext4") == 1000 * 4096
    assert value(samples, "boxkeeper_filesystem_free_bytes", mountpoint="/", fstype="ext4") == 400 * 4096
    assert value(samples, "boxkeeper_filesystem_avail_bytes", mountpoint="/home", fstype="xfs") == 900 * 4096
    assert value(samples, "boxkeeper_filesystem_files", mountpoint="/") == 500
    assert value(samples, "boxkeeper_filesystem_files_free", mountpoint="/home") == 700
    assert {s.labels["mountpoint"] for s in samples} == {"/", "/home"}
    assert sorted(statvfs.calls) == ["/", "/home"]  # tmpfs, proc, docker overlay never touched


def test_skip_list_is_configurable() -> None:
    statvfs = FakeStatvfs()
    samples = FilesystemCollector(FakePsutil(), statvfs=statvfs, skip_fstypes={"xfs"}).collect()
    assert {s.labels["mountpoint"] for s in samples} == {"/"}


def test_hung_mount_is_skipped_counted_and_not_queried_again_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    statvfs = FakeStatvfs()
    statvfs.hang.add("/home")
    collector = FilesystemCollector(FakePsutil(), statvfs=statvfs, timeout=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="agent.collectors.filesystems"):
            first = collector.collect()
            second = collector.collect()
            third = collector.collect()
        for samples in (first, second, third):
            assert value(samples, "boxkeeper_filesystem_size_bytes", mountpoint="/", fstype="ext4") == 4096000
            assert HOME_SIZE not in by_key(samples)
            assert value(samples, "boxkeeper_filesystem_unresponsive", mountpoint="/home") == 1.0
        assert value(third, "boxkeeper_filesystem_stat_timeouts_total", mountpoint="/home") == 3
        assert statvfs.count("/home") == 1  # no pile-up of blocked threads
        warnings = [r for r in caplog.records if "/home" in r.getMessage()]
        assert len(warnings) == 1  # logged once, not on every collection
    finally:
        statvfs.release.set()
    # once the kernel call returns, the mount is measured again
    for _ in range(50):
        samples = collector.collect()
        if HOME_SIZE in by_key(samples):
            break
    assert value(samples, "boxkeeper_filesystem_size_bytes", mountpoint="/home", fstype="xfs") == 2000 * 4096
    assert value(samples, "boxkeeper_filesystem_unresponsive", mountpoint="/home") == 0.0


def test_failing_statvfs_skips_that_mount_only() -> None:
    statvfs = FakeStatvfs()
    del statvfs.answers["/home"]  # e.g. permission denied on a mount the agent may not read
    samples = FilesystemCollector(FakePsutil(), statvfs=statvfs).collect()
    assert {s.labels["mountpoint"] for s in samples} == {"/"}


def test_disk_and_network_counters_have_bounded_devices() -> None:
    ps = FakePsutil()
    disks = DiskIoCollector(ps).collect()
    assert {s.labels["device"] for s in disks} == {"vda", "nvme0n1"}  # no partitions, no loop devices
    assert value(disks, "boxkeeper_disk_read_bytes_total", device="vda") == 4096
    assert value(disks, "boxkeeper_disk_written_bytes_total", device="nvme0n1") == 2048
    nets = NetworkCollector(ps).collect()
    assert {s.labels["device"] for s in nets} == {"eth0"}  # no loopback, no container veths
    assert value(nets, "boxkeeper_network_receive_bytes_total", device="eth0") == 7000
    assert value(nets, "boxkeeper_network_transmit_bytes_total", device="eth0") == 3000
    ps.disks = None  # psutil returns None on boxes without /proc/diskstats
    assert DiskIoCollector(ps).collect() == ()


def test_facts_from_os_release_uname_and_boot_time(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Rocky Linux"\nVERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n')
    uname = os.uname_result(("Linux", "portal-01.acme.local", "5.14.0-427.el9.x86_64", "#1 SMP", "x86_64"))
    ps = FakePsutil()
    collector = FactsCollector(ps, os_release=release, uname=lambda: uname)
    facts = collector.facts()
    assert facts.hostname == "portal-01.acme.local"
    assert facts.os == "Rocky Linux 9.4 (Blue Onyx)"
    assert facts.kernel == "5.14.0-427.el9.x86_64"
    assert facts.boot_time == 1_764_000_000.0
    assert collector.collect() == (Sample("boxkeeper_boot_time_seconds", 1_764_000_000.0),)
    ps.boot = 1_764_000_001.0  # psutil's figure jitters with clock adjustments; a boot's is fixed
    assert collector.facts().boot_time == 1_764_000_000.0


def test_os_release_fallbacks(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text("NAME=CentOS\nVERSION_ID=7\n")
    assert read_os_release(release) == "CentOS 7"
    assert read_os_release(tmp_path / "missing") == "unknown"


class BrokenCollector:
    name = "broken"

    def collect(self) -> tuple[Sample, ...]:
        raise OSError("no /proc here")


def test_sampler_isolates_a_failing_collector_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    ps = FakePsutil()
    sampler = HostSampler([LoadCollector(ps), BrokenCollector()], max_age=0)
    with caplog.at_level(logging.WARNING):
        sampler.samples()
        samples = sampler.samples()
    assert value(samples, "boxkeeper_load1") == 0.5
    assert value(samples, "boxkeeper_collector_errors_total", collector="broken") == 2
    assert value(samples, "boxkeeper_collector_errors_total", collector="load") == 0
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1


def test_sampler_caches_within_max_age() -> None:
    now = [100.0]
    ps = FakePsutil()
    sampler = HostSampler([CpuCollector(ps)], max_age=1.0, clock=lambda: now[0])
    sampler.samples()
    sampler.samples()
    assert ps.calls.count("cpu_times") == 1
    now[0] += 1.5
    sampler.samples()
    assert ps.calls.count("cpu_times") == 2


def test_a_report_carries_the_latest_scrape_within_its_push_interval() -> None:
    now = [100.0]
    ps = FakePsutil()
    sampler = HostSampler([CpuCollector(ps)], max_age=1.0, clock=lambda: now[0])
    scraped = sampler.samples()
    now[0] += 10.0  # a report 10 s after the scrape, pushing every 15 s: no second collection
    assert sampler.for_report(15.0) is scraped
    assert ps.calls.count("cpu_times") == 1
    now[0] += 6.0  # 16 s after the scrape: the report collects fresh values
    sampler.for_report(15.0)
    assert ps.calls.count("cpu_times") == 2
    now[0] += 2.0  # a report never reuses an earlier report's collection, however young
    sampler.for_report(15.0)
    assert ps.calls.count("cpu_times") == 3
    sampler.samples()  # but a scrape within max_age (1 s) of it does
    assert ps.calls.count("cpu_times") == 3


def test_registered_collectors_cover_every_area() -> None:
    statvfs = FakeStatvfs()
    samples = HostSampler(build_collectors(HostSources(FakePsutil(), statvfs=statvfs))).samples()
    names = {s.name for s in samples}
    for expected in (
        "boxkeeper_cpu_seconds_total",
        "boxkeeper_load1",
        "boxkeeper_load5",
        "boxkeeper_load15",
        "boxkeeper_memory_total_bytes",
        "boxkeeper_swap_total_bytes",
        "boxkeeper_filesystem_size_bytes",
        "boxkeeper_filesystem_files",
        "boxkeeper_disk_read_bytes_total",
        "boxkeeper_network_receive_bytes_total",
        "boxkeeper_boot_time_seconds",
    ):
        assert expected in names
