"""The fleet view: every host with its client, liveness, checks and one-word state.

Shared by ``GET /api/v1/hosts``, ``boxkeeper status`` and the fleet metrics. The one-word state
comes from the detection side (``controller.detection.classify.host_state``); liveness from
``controller.detection.liveness.is_silent`` (silent after ``silence_after``, default 3 × the push
interval the agent announced).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from controller.config import ControllerConfig
from controller.detection.classify import host_state
from controller.detection.config import DetectionConfig
from controller.detection.liveness import is_silent
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
class HostView:
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


def open_incidents_by_host(session: Session) -> tuple[dict[str, int], dict[str, set[str]]]:
    """(host → open incident count, host → open incident kinds), from the incidents side if installed."""
    try:
        from controller.incidents.models import Incident
    except ImportError:
        return {}, {}
    counts: dict[str, int] = {}
    kinds: dict[str, set[str]] = defaultdict(set)
    rows = session.execute(
        select(Incident.host_name, Incident.cause).where(Incident.resolved_at.is_(None))
    ).all()
    for host, kind in rows:
        if host is None:
            continue
        counts[host] = counts.get(host, 0) + 1
        kinds[host].add(kind)
    return counts, kinds


def _muted(cfg: ControllerConfig, client: str, host: str, now: float) -> bool:
    if not cfg.maintenance:
        return False
    try:
        from controller.notify.maintenance import active_window
    except ImportError:
        return False
    return active_window(tuple(cfg.maintenance), client=client, host=host, now=now) is not None


def load_fleet(
    session: Session, cfg: ControllerConfig, now: float, *, host: str | None = None,
    with_samples: bool = False,
) -> list[HostView]:
    """Every host (or the one named), sorted by client then host."""
    detection: DetectionConfig = cfg.detection or DetectionConfig()
    query = (
        select(Host, Client.name, HostState)
        .join(Client, Host.client_id == Client.id)
        .outerjoin(HostState, HostState.host_id == Host.id)
        .order_by(Client.name, Host.name)
    )
    if host is not None:
        query = query.where(Host.name == host)
    if with_samples:
        query = query.options(undefer(HostState.samples))
    rows = session.execute(query).all()
    checks_query = select(CheckState).order_by(CheckState.host_id, CheckState.name)
    if host is not None and rows:
        checks_query = checks_query.where(CheckState.host_id == rows[0][0].id)
    checks: dict[int, list[CheckView]] = defaultdict(list)
    for c in session.scalars(checks_query):
        checks[c.host_id].append(CheckView(
            c.name, c.type, c.status, c.hard, c.flapping, c.summary, c.updated_at, c.last_change,
        ))
    counts, kinds = open_incidents_by_host(session)
    result = []
    for h, client, st in rows:
        reported = st is not None and st.last_report_at is not None
        silent = is_silent(st, now, detection, h.name)
        host_checks = tuple(checks.get(h.id, ()))
        state = host_state(
            checks=host_checks, reported=reported, silent=silent, open_kinds=kinds.get(h.name, ()),
            muted=_muted(cfg, client, h.name, now),
        )
        result.append(HostView(
            host=h.name, client=client, state=state, up=reported and not silent, reported=reported,
            last_report_at=st.last_report_at if st else None, last_seq=st.last_seq if st else None,
            push_interval_seconds=st.push_interval_seconds if st else None,
            open_incidents=counts.get(h.name, 0), checks=host_checks, labels=dict(h.labels or {}),
            facts=dict(st.facts or {}) if st else {},
            samples=list(st.samples or []) if st and with_samples else [],
        ))
    return result
