"""The host collectors: one line each. The agent runs every one of them (they have no config).

Adding a collector: a module in agent/collectors/ with a class that has a ``name`` and
``collect() -> tuple[Sample, ...]`` and reads the box through what :class:`HostSources` carries
(add a field there if it needs something new, with the real thing as the default); one line
below. tests/agent/test_collector_contract.py runs every registered collector.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from agent.collectors import Collector
from agent.collectors.cpu import CpuCollector
from agent.collectors.diskio import DiskIoCollector
from agent.collectors.facts import FactsCollector
from agent.collectors.filesystems import FilesystemCollector
from agent.collectors.load import LoadCollector
from agent.collectors.memory import MEMINFO, MemoryCollector
from agent.collectors.network import NetworkCollector


@dataclass(frozen=True)
class HostSources:
    """What the collectors read the box through.

    ``ps``: psutil-like (the ``psutil`` module in production); ``meminfo``: the memory collector's
    file; ``facts``: the caller's FactsCollector (it also gives the reports' facts), else a new
    one; ``partitions``: where the filesystem collector gets the mounts (default ``ps``; the agent
    passes a :class:`~agent.collectors.mounts.MountTable`); ``statvfs``: its statvfs.
    """

    ps: Any
    meminfo: Path = MEMINFO
    facts: Optional[FactsCollector] = None
    partitions: Any = None
    statvfs: Callable[[str], Any] = os.statvfs


@dataclass(frozen=True)
class CollectorType:
    name: str  # the collector's own ``name`` (the label of boxkeeper_collector_errors_total)
    build: Callable[[HostSources], Collector]


COLLECTOR_TYPES: tuple[CollectorType, ...] = (
    CollectorType("cpu", lambda s: CpuCollector(s.ps)),
    CollectorType("load", lambda s: LoadCollector(s.ps)),
    CollectorType("memory", lambda s: MemoryCollector(s.meminfo)),
    CollectorType("filesystems", lambda s: FilesystemCollector(
        s.ps if s.partitions is None else s.partitions, statvfs=s.statvfs)),
    CollectorType("diskio", lambda s: DiskIoCollector(s.ps)),
    CollectorType("network", lambda s: NetworkCollector(s.ps)),
    CollectorType("facts", lambda s: FactsCollector(s.ps) if s.facts is None else s.facts),
)


def build_collectors(sources: HostSources) -> tuple[Collector, ...]:
    """Every registered collector, reading through ``sources``."""
    return tuple(t.build(sources) for t in COLLECTOR_TYPES)
