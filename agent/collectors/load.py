"""Load averages: ``boxkeeper_load1``, ``boxkeeper_load5``, ``boxkeeper_load15`` (gauges)."""

from __future__ import annotations

from typing import Protocol

from agent.report import Sample


class LoadSource(Protocol):
    def getloadavg(self) -> tuple[float, float, float]: ...


class LoadCollector:
    name = "load"

    def __init__(self, ps: LoadSource) -> None:
        self._ps = ps

    def collect(self) -> tuple[Sample, ...]:
        one, five, fifteen = self._ps.getloadavg()
        return (
            Sample("boxkeeper_load1", float(one)),
            Sample("boxkeeper_load5", float(five)),
            Sample("boxkeeper_load15", float(fifteen)),
        )
