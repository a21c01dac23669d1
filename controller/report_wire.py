"""What the controller decodes a pushed report into: msgspec Structs mirroring :mod:`agent.report`.

The schema stays the agent's dataclasses (the agent builds them; pydantic gives the OpenAPI schema
of them). The controller decodes the same JSON into these Structs instead: msgspec builds a Struct
about twice as fast as a dataclass (~80 µs less per report of 20 checks + 100 samples), and with
``gc=False`` the few hundred objects of every report are not tracked by the cyclic garbage
collector. Fields, types, defaults and order are the dataclasses' (held to them by
``tests/controller/test_ingest_wire.py``), so the same bodies decode and the same errors name the
same fields.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from agent.report import Status


class PerfValue(msgspec.Struct, frozen=True, gc=False):
    label: str
    value: float
    unit: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None


class CheckReport(msgspec.Struct, frozen=True, gc=False):
    name: str
    type: str
    status: Status
    hard: bool
    flapping: bool
    summary: str
    duration_seconds: float
    attempt: int = 1
    max_attempts: int = 1
    last_change: float | None = None
    perfdata: tuple[PerfValue, ...] = ()


class Sample(msgspec.Struct, frozen=True, gc=False):
    name: str
    value: float
    kind: Literal["gauge", "counter"] = "gauge"
    labels: dict[str, str] = {}


class Facts(msgspec.Struct, frozen=True, gc=False):
    hostname: str
    os: str
    kernel: str
    boot_time: float | None = None


class Report(msgspec.Struct, frozen=True, gc=False):
    schema: Literal["boxkeeper.report/1"]
    host: str
    agent_version: str
    seq: int
    sent_at: float
    push_interval_seconds: float
    checks: tuple[CheckReport, ...]
    samples: tuple[Sample, ...]
    facts: Facts
