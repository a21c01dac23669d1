"""The fleet as read from the store: every host with its client, liveness and checks.

One reader (:func:`read_hosts`) for everyone who looks at the fleet: the monitor's detection
passes (only the checks that are not plain OK, for thousands of hosts every 2 s), and the status
views of ``GET /api/v1/hosts``, ``boxkeeper status`` and the fleet metrics (:func:`load_fleet`:
every check, the one-word state, open incidents, samples on request). Liveness is
:func:`controller.detection.liveness.is_silent` (silent after ``silence_after``, default 3 × the
push interval the agent announced); the one-word state is
:func:`controller.detection.classify.host_state`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.alerting.maintenance import MaintenanceWindow, active_window
from controller.alerting.queries import open_kinds_by_host
from controller.detection.classify import host_state
from controller.detection.config import DetectionConfig
from controller.detection.liveness import is_silent, silent_for
from controller.store.models import CheckState, Client, Host, HostState

STATUS_NAMES = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}


@dataclass(frozen=True)
class CheckView:
    name: str
    type: str
    status: int
    hard: bool
    flapping: bool
    summary: str
    updated_at: float
    last_change: float | None

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, "unknown")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "status": self.status, "status_name": self.status_name,
            "hard": self.hard, "flapping": self.flapping, "summary": self.summary,
            "updated_at": self.updated_at, "last_change": self.last_change,
        }


@dataclass(frozen=True)
class HostRecord:
    """One host at one moment, as stored."""

    host_id: int
    host: str
    client: str
    reported: bool  # has it ever reported?
    silent: bool
    silent_for: float | None
    last_report_at: float | None
    last_seq: int | None
    push_interval_seconds: float | None
    portal_url: str | None
    ssh_address: str | None
    last_sent_at: float | None = None  # the newest report's own stamp (agent clock)
    checks: tuple[CheckView, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)


def read_hosts(
    session: Session,
    detection: DetectionConfig,
    now: float,
    *,
    only: Iterable[str] | None = None,
    problems_only: bool = False,
    with_samples: bool = False,
) -> list[HostRecord]:
    """Every host (or those in ``only``), sorted by client then host. ``problems_only``: of the
    checks, only those not plain OK (non-OK, soft or flapping), and no facts or labels: what
    detection looks at, for every host every 2 s.

    Plain column rows, not ORM objects (10,000 hosts × 25 checks are 250,000 rows for a status view:
    building entities for them took several seconds); the perfdata of the checks is not read."""
    columns = [Host.id, Host.name, Client.name, Host.portal_url, Host.ssh_address,
               HostState.last_report_at, HostState.last_seq, HostState.push_interval_seconds,
               HostState.last_sent_at]
    if not problems_only:
        columns += [Host.labels, HostState.facts]
    if with_samples:
        columns.append(HostState.samples)
    stmt = (
        select(*columns)
        .join(Client, Client.id == Host.client_id)
        .outerjoin(HostState, HostState.host_id == Host.id)
        .order_by(Client.name, Host.name)
    )
    names = None if only is None else list(only)
    if names is not None:
        stmt = stmt.where(Host.name.in_(names))
    rows: list[Any] = list(session.execute(stmt).all())
    if not rows:
        return []
    check_stmt = select(CheckState.host_id, CheckState.name, CheckState.type, CheckState.status,
                        CheckState.hard, CheckState.flapping, CheckState.summary, CheckState.updated_at,
                        CheckState.last_change).order_by(CheckState.host_id, CheckState.name)
    if problems_only:
        check_stmt = check_stmt.where(
            or_(CheckState.status != 0, CheckState.flapping.is_(True), CheckState.hard.is_(False)))
    if names is not None:
        check_stmt = check_stmt.where(CheckState.host_id.in_([row[0] for row in rows]))
    checks: dict[int, list[CheckView]] = defaultdict(list)
    for c in session.execute(check_stmt):
        checks[c[0]].append(CheckView(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]))
    records = []
    for row in rows:
        host_id, name, client, portal_url, ssh_address, last_report_at, last_seq, push, sent = row[:9]
        state = Reported(last_report_at, push)
        records.append(HostRecord(
            host_id=host_id, host=name, client=client, reported=last_report_at is not None,
            silent=is_silent(state, now, detection, name), silent_for=silent_for(state, now),
            last_report_at=last_report_at, last_seq=last_seq, push_interval_seconds=push,
            portal_url=portal_url, ssh_address=ssh_address, last_sent_at=sent,
            checks=tuple(checks.get(host_id, ())),
            labels={} if problems_only else dict(row[9] or {}),
            facts={} if problems_only else dict(row[10] or {}),
            samples=list(row[-1] or []) if with_samples else [],
        ))
    return records


@dataclass(frozen=True)
class Reported:
    """What liveness reads of a host's state (:class:`controller.detection.liveness.ReportedState`)."""

    last_report_at: float | None
    push_interval_seconds: float | None


@dataclass(frozen=True)
class HostView:
    """A host as ``boxkeeper status`` and ``GET /api/v1/hosts`` show it."""

    host: str
    client: str
    state: str
    up: bool
    reported: bool
    last_report_at: float | None
    last_seq: int | None
    push_interval_seconds: float | None
    open_incidents: int
    checks: tuple[CheckView, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "host": self.host, "client": self.client, "state": self.state, "up": self.up,
            "last_report_at": self.last_report_at, "last_seq": self.last_seq,
            "push_interval_seconds": self.push_interval_seconds, "open_incidents": self.open_incidents,
            "checks": [c.as_dict() for c in self.checks], "labels": self.labels, "facts": self.facts,
        }
        if with_samples:
            data["samples"] = self.samples
        return data


def load_fleet(
    session: Session, detection: DetectionConfig, windows: tuple[MaintenanceWindow, ...], now: float, *,
    host: str | None = None, with_samples: bool = False,
) -> list[HostView]:
    """Every host (or the one named) with its one-word state, sorted by client then host."""
    records = read_hosts(session, detection, now, only=None if host is None else [host],
                         with_samples=with_samples)
    kinds = open_kinds_by_host(session)
    views = []
    for r in records:
        open_kinds = kinds.get(r.host, [])
        muted = active_window(windows, client=r.client, host=r.host, now=now) is not None
        views.append(HostView(
            host=r.host, client=r.client,
            state=host_state(checks=r.checks, reported=r.reported, silent=r.silent, open_kinds=open_kinds,
                             muted=muted),
            up=r.reported and not r.silent, reported=r.reported, last_report_at=r.last_report_at,
            last_seq=r.last_seq, push_interval_seconds=r.push_interval_seconds,
            open_incidents=len(open_kinds), checks=r.checks, labels=r.labels, facts=r.facts,
            samples=r.samples,
        ))
    return views
