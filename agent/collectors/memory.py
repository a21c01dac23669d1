"""Memory and swap in bytes (gauges), from one read of ``/proc/meminfo``.

``boxkeeper_memory_{total,available,used}_bytes`` and ``boxkeeper_swap_{total,used}_bytes``.
"Available" is the kernel's MemAvailable: what can be given to programs without swapping, the
number to alert on (not "free", which is low on every healthy Linux box). Used memory is total
minus available, swap used is SwapTotal minus SwapFree: the numbers psutil's
``virtual_memory()``/``swap_memory()`` give, read here directly because those two calls read
``/proc/meminfo`` twice and ``/proc/vmstat`` once (2.4× the CPU of one read, at a 15 s cadence).
A field the kernel does not have is left out (fewer samples, never a made-up value).
"""

from __future__ import annotations

from pathlib import Path

from agent.report import Sample

MEMINFO = Path("/proc/meminfo")
_FIELDS = (b"MemTotal", b"MemAvailable", b"SwapTotal", b"SwapFree")


def read_meminfo(path: Path = MEMINFO) -> dict[bytes, int]:
    """The fields boxkeeper uses, in bytes (``/proc/meminfo`` says kB, meaning KiB)."""
    values: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        key, _, rest = line.partition(b":")
        if key in _FIELDS:
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * (1024 if parts[1:2] == [b"kB"] else 1)
    return values


class MemoryCollector:
    name = "memory"

    def __init__(self, meminfo: Path = MEMINFO) -> None:
        self._path = meminfo

    def collect(self) -> tuple[Sample, ...]:
        m = read_meminfo(self._path)
        samples: list[Sample] = []
        total, available = m.get(b"MemTotal"), m.get(b"MemAvailable")
        if total is not None:
            samples.append(Sample("boxkeeper_memory_total_bytes", float(total)))
        if available is not None:
            samples.append(Sample("boxkeeper_memory_available_bytes", float(available)))
            if total is not None:
                samples.append(Sample("boxkeeper_memory_used_bytes", float(total - available)))
        swap_total, swap_free = m.get(b"SwapTotal"), m.get(b"SwapFree")
        if swap_total is not None:
            samples.append(Sample("boxkeeper_swap_total_bytes", float(swap_total)))
            if swap_free is not None:
                samples.append(Sample("boxkeeper_swap_used_bytes", float(swap_total - swap_free)))
        return tuple(samples)
