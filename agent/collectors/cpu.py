"""CPU time by mode, summed over all CPUs: ``boxkeeper_cpu_seconds_total{mode}`` (counter)."""

from __future__ import annotations

from typing import Any, Protocol

from agent.report import Sample

#: psutil field names that are CPU modes on Linux (guest time is already counted in user).
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


class CpuTimesSource(Protocol):
    def cpu_times(self, percpu: bool = False) -> Any: ...


class CpuCollector:
    name = "cpu"

    def __init__(self, ps: CpuTimesSource) -> None:
        self._ps = ps

    def collect(self) -> tuple[Sample, ...]:
        times = self._ps.cpu_times()
        return tuple(
            Sample("boxkeeper_cpu_seconds_total", float(getattr(times, mode)), "counter", {"mode": mode})
            for mode in MODES
            if hasattr(times, mode)
        )
