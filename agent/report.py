"""The report an agent pushes to the controller: one versioned schema, shared by both sides.

This module is the only part of ``agent/`` that the controller imports. It uses the standard
library alone (frozen dataclasses), so the agent stays small; the controller decodes and checks
incoming JSON against these same dataclasses with msgspec, and pydantic (``TypeAdapter(Report)``)
gives the OpenAPI schema of them.

Wire format (JSON), schema ``boxkeeper.report/1``::

    {
      "schema": "boxkeeper.report/1",
      "host": "portal-01",
      "agent_version": "0.1.0",
      "seq": 42,                      # per agent, only grows, also across restarts
      "sent_at": 1764300000.5,        # unix seconds, when the report was built
      "push_interval_seconds": 15.0,  # lets the controller derive "agent silent" per host
      "checks": [
        {"name": "portal", "type": "http", "status": 2, "hard": true, "flapping": false,
         "summary": "HTTP 502 from http://127.0.0.1/", "duration_seconds": 0.012,
         "attempt": 3, "max_attempts": 3, "last_change": 1764299990.1,
         "perfdata": [{"label": "time", "value": 0.012, "unit": "s", "warn": null, "crit": null,
                       "min": null, "max": null}]}
      ],
      "samples": [
        {"name": "boxkeeper_load1", "kind": "gauge", "value": 0.3, "labels": {}}
      ],
      "facts": {"hostname": "portal-01.acme.local", "os": "Rocky Linux 9.4", "kernel": "5.14.0",
                "boot_time": 1764200000.0}
    }

``status`` uses the Nagios numbering (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Optional

SCHEMA = "boxkeeper.report/1"

#: Limits the controller enforces; the agent keeps within them.
MAX_CHECKS = 500
MAX_SAMPLES = 5000
MAX_LABELS = 16
MAX_NAME_LENGTH = 200
MAX_SUMMARY_LENGTH = 4096


class Status(IntEnum):
    """Check status, numbered like Nagios plugin exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def from_exit_code(cls, code: int) -> Status:
        """Map a plugin's exit code; anything outside 0..3 is UNKNOWN (as Nagios does)."""
        return cls(code) if code in (0, 1, 2, 3) else cls.UNKNOWN

    @property
    def severity(self) -> int:
        """Order for "worst of": OK < WARNING < UNKNOWN < CRITICAL."""
        return {0: 0, 1: 1, 3: 2, 2: 3}[int(self)]


def worst(statuses: list[Status]) -> Status:
    """The worst status of a list (OK for an empty list)."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


@dataclass(frozen=True)
class PerfValue:
    """One Nagios perfdata item: ``label=value[unit];[warn];[crit];[min];[max]``."""

    label: str
    value: float
    unit: str = ""
    warn: Optional[float] = None
    crit: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None


@dataclass(frozen=True)
class CheckReport:
    """The state of one check at the time of the report."""

    name: str
    type: str
    status: Status
    hard: bool
    flapping: bool
    summary: str
    duration_seconds: float
    attempt: int = 1
    max_attempts: int = 1
    last_change: Optional[float] = None  # unix seconds of the last hard state change
    perfdata: tuple[PerfValue, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One metric sample in Prometheus terms (name in base units, ``_total`` for counters)."""

    name: str
    value: float
    kind: Literal["gauge", "counter"] = "gauge"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What the box is; sent with every report (small)."""

    hostname: str
    os: str
    kernel: str
    boot_time: Optional[float] = None


@dataclass(frozen=True)
class Report:
    schema: Literal["boxkeeper.report/1"]
    host: str
    agent_version: str
    seq: int
    sent_at: float
    push_interval_seconds: float
    checks: tuple[CheckReport, ...]
    samples: tuple[Sample, ...]
    facts: Facts


def to_dict(report: Report) -> dict[str, Any]:
    """The JSON-ready form of a report (statuses as plain integers).

    Same result as ``dataclasses.asdict`` (field order and tuples included), built by hand: ``asdict`` deep-
    copies every value and costs several times more CPU on a report with hundreds of samples.
    """
    return {
        "schema": report.schema,
        "host": report.host,
        "agent_version": report.agent_version,
        "seq": report.seq,
        "sent_at": report.sent_at,
        "push_interval_seconds": report.push_interval_seconds,
        "checks": tuple(
            {
                "name": c.name, "type": c.type, "status": int(c.status), "hard": c.hard,
                "flapping": c.flapping, "summary": c.summary, "duration_seconds": c.duration_seconds,
                "attempt": c.attempt, "max_attempts": c.max_attempts, "last_change": c.last_change,
                "perfdata": tuple(
                    {"label": p.label, "value": p.value, "unit": p.unit, "warn": p.warn, "crit": p.crit,
                     "min": p.min, "max": p.max}
                    for p in c.perfdata
                ),
            }
            for c in report.checks
        ),
        "samples": tuple(
            {"name": s.name, "value": s.value, "kind": s.kind, "labels": dict(s.labels)}
            for s in report.samples
        ),
        "facts": {
            "hostname": report.facts.hostname, "os": report.facts.os, "kernel": report.facts.kernel,
            "boot_time": report.facts.boot_time,
        },
    }


def to_json(report: Report) -> bytes:
    """Compact UTF-8 JSON, the body the agent POSTs and spools."""
    return json.dumps(to_dict(report), separators=(",", ":"), ensure_ascii=False).encode()
