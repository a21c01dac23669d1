"""Memory and swap in bytes (gauges).

``boxkeeper_memory_{total,available,used}_bytes`` and ``boxkeeper_swap_{total,used}_bytes``.
"Available" is the kernel's MemAvailable: what can be given to programs without swapping, the
number to alert on (not "free", which is low on every healthy Linux box).
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.report import Sample


class MemorySource(Protocol):
    def virtual_memory(self) -> Any: ...

    def swap_memory(self) -> Any: ...


class MemoryCollector:
    name = "memory"

    def __init__(self, ps: MemorySource) -> None:
        self._ps = ps

    def collect(self) -> tuple[Sample, ...]:
        mem = self._ps.virtual_memory()
        swap = self._ps.swap_memory()
        return (
            Sample("boxkeeper_memory_total_bytes", float(mem.total)),
            Sample("boxkeeper_memory_available_bytes", float(mem.available)),
            Sample("boxkeeper_memory_used_bytes", float(mem.total - mem.available)),
            Sample("boxkeeper_swap_total_bytes", float(swap.total)),
            Sample("boxkeeper_swap_used_bytes", float(swap.used)),
        )
