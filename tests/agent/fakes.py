"""A psutil-like fake for the collectors: the same call names and result shapes, fixed values.

Test doubles live here, named as doubles; production code receives the real ``psutil`` module.
"""

from __future__ import annotations

import os
import threading
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

scputimes = namedtuple("scputimes", "user nice system idle iowait irq softirq steal guest guest_nice")
sdiskpart = namedtuple("sdiskpart", "device mountpoint fstype opts")
sdiskio = namedtuple("sdiskio", "read_count write_count read_bytes write_bytes read_time write_time")
snetio = namedtuple("snetio", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")
statvfs_result = namedtuple("statvfs_result", "f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree")

CPU = scputimes(100.0, 1.0, 50.0, 1000.0, 5.0, 0.5, 0.25, 0.125, 0.0, 0.0)


@dataclass
class FakePsutil:
    cpu: scputimes = field(default_factory=lambda: CPU)
    load: tuple[float, float, float] = (0.5, 0.25, 0.125)
    partitions: list[sdiskpart] = field(
        default_factory=lambda: [
            sdiskpart("/dev/vda1", "/", "ext4", "rw"),
            sdiskpart("/dev/vdb1", "/home", "xfs", "rw"),
            sdiskpart("tmpfs", "/run", "tmpfs", "rw"),
            sdiskpart("proc", "/proc", "proc", "rw"),
            sdiskpart("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay", "rw"),
            sdiskpart("/dev/vda1", "/", "ext4", "rw"),  # bind mounts show a mount point twice
        ]
    )
    disks: dict[str, sdiskio] | None = field(
        default_factory=lambda: {
            "vda": sdiskio(10, 20, 4096, 8192, 1, 2),
            "vda1": sdiskio(10, 20, 4096, 8192, 1, 2),
            "loop0": sdiskio(1, 0, 512, 0, 0, 0),
            "nvme0n1": sdiskio(5, 5, 1024, 2048, 1, 1),
        }
    )
    nics: dict[str, snetio] = field(
        default_factory=lambda: {
            "lo": snetio(1, 1, 1, 1, 0, 0, 0, 0),
            "eth0": snetio(3000, 7000, 3, 7, 0, 0, 0, 0),
            "veth12ab": snetio(5, 5, 1, 1, 0, 0, 0, 0),
        }
    )
    boot: float = 1_764_000_000.0
    calls: list[str] = field(default_factory=list)

    def cpu_times(self, percpu: bool = False) -> Any:
        self.calls.append("cpu_times")
        return self.cpu

    def getloadavg(self) -> tuple[float, float, float]:
        return self.load

    def disk_partitions(self, all: bool = False) -> Any:
        return list(self.partitions)

    def disk_io_counters(self, perdisk: bool = False, nowrap: bool = True) -> Any:
        return self.disks

    def net_io_counters(self, pernic: bool = False, nowrap: bool = True) -> Any:
        return self.nics

    def boot_time(self) -> float:
        return self.boot


class FakeStatvfs:
    """statvfs double: fixed answers per mount point; a mount in ``hang`` blocks until released."""

    def __init__(self, answers: dict[str, statvfs_result] | None = None) -> None:
        self.answers = answers or {
            "/": statvfs_result(4096, 4096, 1000, 400, 300, 500, 200),
            "/home": statvfs_result(4096, 4096, 2000, 1000, 900, 800, 700),
        }
        self.hang: set[str] = set()
        self.release = threading.Event()
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: str) -> statvfs_result:
        with self._lock:
            self.calls.append(path)
        if path in self.hang:
            self.release.wait(30)
        if path not in self.answers:
            raise OSError(2, os.strerror(2), path)
        return self.answers[path]

    def count(self, path: str) -> int:
        with self._lock:
            return self.calls.count(path)
