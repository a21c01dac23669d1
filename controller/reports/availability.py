"""Downtime and planned time of one host or portal over a report month, from kept history.

- **host down**: an incident of a host-level kind (``unreachable``, ``agent_down``: DESIGN.md
  "Outage detection") is open, from ``opened_at`` to ``resolved_at`` (or the end of the month).
- **portal down**: a ``check`` incident on that portal check is open *and critical* (its timeline
  says when it was opened critical, escalated to critical or lowered from it), or the host is
  ``unreachable`` (its portal check cannot report then, and the controller's own probe of
  the portal URL failed).
- **planned**: the config's maintenance windows covering the host, its silences (operator
  silences lifted before their end are no longer stored: only their stored span counts), its
  update runs (``created_at`` to ``finished_at``) and the occurrences of update windows that
  started on it (start to start + duration).

availability = (period − downtime) / (period − planned downtime): downtime inside planned time is
taken out of the denominator, as SLA tools do; downtime outside it counts fully.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.alerting.maintenance import MaintenanceWindow, covers
from controller.reports.intervals import Interval, clip, intersect, total


@dataclass(frozen=True)
class Down:
    """One incident's downtime."""

    start: float
    end: float
    kind: str  # unreachable, agent_down, check
    incident_id: int


@dataclass(frozen=True)
class Planned:
    start: float
    end: float
    source: str  # maintenance, silence, run, window
    label: str


@dataclass(frozen=True)
class Availability:
    period: Interval
    downs: tuple[Down, ...]
    planned: tuple[Planned, ...]
    _merged: list[Interval] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo, hi = self.period
        object.__setattr__(self, "_merged", clip(((d.start, d.end) for d in self.downs), lo, hi))

    @property
    def period_seconds(self) -> float:
        return max(0.0, self.period[1] - self.period[0])

    def planned_union(self) -> list[Interval]:
        return clip(((p.start, p.end) for p in self.planned), *self.period)

    @property
    def down_seconds(self) -> float:
        return total(self._merged)

    @property
    def planned_down_seconds(self) -> float:
        return total(intersect(self._merged, self.planned_union()))

    @property
    def planned_seconds(self) -> float:
        return total(self.planned_union())

    @property
    def availability(self) -> float | None:
        """Up share of the unplanned time; None when the period is empty (host added after the month)."""
        denominator = self.period_seconds - self.planned_down_seconds
        if denominator <= 0:
            return None
        return (self.period_seconds - self.down_seconds) / denominator

    def outages(self) -> list[dict[str, Any]]:
        """The merged down intervals, each with its incidents, kinds and its planned part."""
        planned = self.planned_union()
        found: list[dict[str, Any]] = []
        for start, end in self._merged:
            mine = [d for d in self.downs if d.start < end and d.end > start]
            inside = total(intersect([(start, end)], planned))
            found.append({"start": start, "end": end, "seconds": end - start, "planned_seconds": inside,
                          "kinds": sorted({d.kind for d in mine}),
                          "incidents": sorted({d.incident_id for d in mine})})
        return found

    def planned_list(self) -> list[dict[str, Any]]:
        lo, hi = self.period
        return [{"start": max(p.start, lo), "end": min(p.end, hi),
                 "seconds": min(p.end, hi) - max(p.start, lo), "source": p.source, "label": p.label}
                for p in sorted(self.planned, key=lambda p: (p.start, p.end)) if p.end > lo and p.start < hi]


#: timeline messages of controller/alerting/incidents.py: "critical: …" (opened),
#: "warning → critical: …" (escalated / severity)
_OPENED = re.compile(r"^(\w+): ")
_CHANGED = re.compile(r"^(\w+) → (\w+): ")


def critical_spans(events: Iterable[tuple[float, str, str]], end: float, *,
                   severity: str = "critical") -> list[Interval]:
    """When an incident was at ``severity``, from its timeline ``(at, kind, message)`` (oldest
    first), up to its resolution or ``end``."""
    spans: list[Interval] = []
    since: float | None = None
    for at, kind, message in events:
        found = None
        if kind == "opened" and (opened := _OPENED.match(message)):
            found = opened.group(1)
        elif kind in ("escalated", "severity") and (changed := _CHANGED.match(message)):
            found = changed.group(2)
        elif kind == "resolved":
            found = ""
        if found is None:
            continue
        if found == severity and since is None:
            since = at
        elif found != severity and since is not None:
            spans.append((since, at))
            since = None
        if kind == "resolved":
            break
    if since is not None:
        spans.append((since, end))
    return spans


def maintenance_spans(windows: Sequence[MaintenanceWindow], *, client: str, host: str, start: float,
                      end: float) -> list[Planned]:
    """Each occurrence of the config's maintenance windows that covers the host and meets ``[start, end)``."""
    found: list[Planned] = []
    for window in windows:
        if not covers(window, client=client, host=host):
            continue
        schedule = window.schedule
        if schedule is None:
            lo, hi = window.starts_at, window.ends_at
            if lo is not None and hi is not None and hi > start and lo < end:
                found.append(Planned(lo, hi, "maintenance", f"maintenance window {window.name}"))
            continue
        assert window.duration is not None
        since = datetime.fromtimestamp(start, UTC) - timedelta(seconds=window.duration)
        for moment in schedule.starts_between(since, datetime.fromtimestamp(end, UTC)):
            lo = moment.timestamp()
            if lo + window.duration > start:
                found.append(Planned(lo, lo + window.duration, "maintenance",
                                     f"maintenance window {window.name}"))
    return found
