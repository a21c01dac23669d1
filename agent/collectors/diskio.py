"""Block device counters: ``boxkeeper_disk_{read,written}_bytes_total{device}`` (counters).

Whole disks only by default: partitions, loop, ram and floppy/cdrom devices are skipped (the
same idea as node_exporter's ``--collector.diskstats.device-exclude``), which keeps the
``device`` label bounded.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from agent.report import Sample

DEFAULT_DEVICE_EXCLUDE = r"^(ram|loop|fd|sr|zram|(h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$"


class DiskIoSource(Protocol):
    def disk_io_counters(self, perdisk: bool = False, nowrap: bool = True) -> Any: ...


class DiskIoCollector:
    name = "diskio"

    def __init__(self, ps: DiskIoSource, *, device_exclude: str = DEFAULT_DEVICE_EXCLUDE) -> None:
        self._ps = ps
        self._exclude = re.compile(device_exclude)

    def collect(self) -> tuple[Sample, ...]:
        # nowrap=False: the kernel's own 64-bit counters, as node_exporter exports them (psutil's
        # wrap bookkeeping costs a third of the call; Prometheus treats a wrap as a counter reset)
        counters = self._ps.disk_io_counters(perdisk=True, nowrap=False) or {}
        samples: list[Sample] = []
        for device in sorted(counters):
            if self._exclude.match(device):
                continue
            io = counters[device]
            labels = {"device": device}
            samples += [
                Sample("boxkeeper_disk_read_bytes_total", float(io.read_bytes), "counter", labels),
                Sample("boxkeeper_disk_written_bytes_total", float(io.write_bytes), "counter", labels),
            ]
        return tuple(samples)
