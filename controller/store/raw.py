"""The stored raw form of a report (``reports.body``): what the controller reads back from it, no more.

::

    {"schema": "boxkeeper.stored/1", "push_interval_seconds": 15.0,
     "checks": [{"name": "portal", "status": 2, "hard": true}, ...],
     "gauges": {"load1": 0.42, "memory": 61.3, "disk": 77.0}}

Readers of raw reports need only this: the retention's hourly summaries (:mod:`controller.retention`,
from which the monthly report is made) take each check's status and the push interval; the web
page's host sparklines (:mod:`controller.ui.views`) take ``gauges`` — three figures of the report's
samples (:func:`gauges`: load average over 1 min, memory used %, the fullest filesystem's used %),
so a host's last hours can be drawn without keeping the samples (Prometheus keeps their history). Everything
else of a report has its own place: the latest check states (summary, perfdata, attempts) in
``check_states``, each status change with its summary in ``state_changes``, the latest samples and
facts in ``host_states``. A report of 20 checks takes ~0.9 KB here instead of ~7 KB as the whole
validated report without samples (the form before; ~10 KB at the example agent config): less to
write on every push (CPU, WAL) and ~8× fewer bytes kept for ``retention.raw_reports``.

Rows written by an older controller (``boxkeeper.report/1``: the whole report) carry the same keys
among others and are read by the same :data:`DECODER` (unknown keys are skipped), so nothing is
converted: they age out with the raw retention.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec

FORM = "boxkeeper.stored/1"


class StoredCheck(msgspec.Struct, gc=False):
    name: str
    status: int
    hard: bool = True


class StoredReport(msgspec.Struct, gc=False, kw_only=True):
    """A stored raw report: the compact form, or the part of an older full body readers use."""

    schema: str = FORM
    push_interval_seconds: float
    checks: list[StoredCheck]
    gauges: dict[str, float] = {}  # load1, memory, disk (see gauges()); absent in older rows


DECODER = msgspec.json.Decoder(StoredReport)
_ENCODE = msgspec.json.Encoder().encode


def encode(push_interval_seconds: float, checks: list[StoredCheck],
           figures: dict[str, float] | None = None) -> str:
    """The JSON text kept in ``reports.body`` (``figures``: :func:`gauges`)."""
    return _ENCODE(StoredReport(push_interval_seconds=push_interval_seconds, checks=checks,
                                gauges=figures or {})).decode("utf-8")


class _Sample(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def labels(self) -> dict[str, str]: ...


def gauges(samples: Iterable[_Sample]) -> dict[str, float]:
    """The figures the host page draws, from a report's samples (the agent's names): ``load1``
    (boxkeeper_load1), ``memory`` (used / total bytes, %), ``disk`` (the fullest filesystem's used %,
    from boxkeeper_filesystem_size_bytes and _avail_bytes of the same labels). A figure whose
    samples are missing is left out; values are rounded to 0.01."""
    load1 = mem_used = mem_total = None
    sizes: dict[tuple[tuple[str, str], ...], float] = {}
    avails: dict[tuple[tuple[str, str], ...], float] = {}
    for s in samples:
        if s.name == "boxkeeper_load1":
            load1 = s.value
        elif s.name == "boxkeeper_memory_used_bytes":
            mem_used = s.value
        elif s.name == "boxkeeper_memory_total_bytes":
            mem_total = s.value
        elif s.name == "boxkeeper_filesystem_size_bytes":
            sizes[tuple(sorted(s.labels.items()))] = s.value
        elif s.name == "boxkeeper_filesystem_avail_bytes":
            avails[tuple(sorted(s.labels.items()))] = s.value
    out: dict[str, float] = {}
    if load1 is not None:
        out["load1"] = round(load1, 2)
    if mem_used is not None and mem_total:
        out["memory"] = round(100.0 * mem_used / mem_total, 2)
    used = [100.0 * (1 - avail / sizes[key]) for key, avail in avails.items() if sizes.get(key)]
    if used:
        out["disk"] = round(max(used), 2)
    return out
