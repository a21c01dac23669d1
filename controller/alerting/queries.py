"""Read-only views of incidents: lists, one incident with its timeline, open counts for metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.alerting.models import RESOLVED, Incident, IncidentEvent, Notification


def incident_dict(incident: Incident) -> dict[str, Any]:
    """The JSON form used by the API and ``boxkeeper incidents --json``."""
    return {
        "id": incident.id,
        "key": incident.dedup_key,
        "client": incident.client_name,
        "host": incident.host_name,
        "cause": incident.cause,
        "severity": incident.severity,
        "status": incident.status,
        "summary": incident.summary,
        "details": incident.details,
        "opened_at": incident.opened_at,
        "updated_at": incident.updated_at,
        "resolved_at": incident.resolved_at,
        "resolved_by": incident.resolved_by,
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_at": incident.acknowledged_at,
        "ack_expires_at": incident.ack_expires_at,
        "suppressed": incident.withheld,
    }


def event_dict(event: IncidentEvent) -> dict[str, Any]:
    return {"at": event.at, "kind": event.kind, "actor": event.actor, "message": event.message}


@dataclass(frozen=True)
class IncidentFilter:
    open_only: bool = False
    client: str | None = None
    host: str | None = None
    limit: int = 200
    clients: frozenset[str] | None = None  # only these clients' incidents (an operator's scope)
    status: str | None = None  # open | acknowledged | resolved
    since: float | None = None  # opened at or after (unix seconds)
    until: float | None = None  # opened before


def list_incidents(session: Session, flt: IncidentFilter = IncidentFilter()) -> list[Incident]:
    """Newest first; ``open_only``: open and acknowledged (not resolved)."""
    stmt = select(Incident)
    if flt.open_only:
        stmt = stmt.where(Incident.status != RESOLVED)
    if flt.client is not None:
        stmt = stmt.where(Incident.client_name == flt.client)
    if flt.host is not None:
        stmt = stmt.where(Incident.host_name == flt.host)
    if flt.clients is not None:
        stmt = stmt.where(Incident.client_name.in_(sorted(flt.clients)))
    if flt.status is not None:
        stmt = stmt.where(Incident.status == flt.status)
    if flt.since is not None:
        stmt = stmt.where(Incident.opened_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Incident.opened_at < flt.until)
    return list(session.scalars(stmt.order_by(Incident.id.desc()).limit(flt.limit)))


def timeline(session: Session, incident_id: int) -> list[IncidentEvent]:
    stmt = select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
    return list(session.scalars(stmt.order_by(IncidentEvent.at, IncidentEvent.id)))


def open_counts(session: Session) -> dict[tuple[str, str], int]:
    """(client, severity) → number of incidents not resolved (``boxkeeper_incidents_open``)."""
    stmt = (
        select(Incident.client_name, Incident.severity, func.count())
        .where(Incident.status != RESOLVED)
        .group_by(Incident.client_name, Incident.severity)
    )
    return {(client or "", severity): int(n) for client, severity, n in session.execute(stmt)}


def open_kinds_by_host(session: Session) -> dict[str, list[str]]:
    """host name → the causes of its incidents not resolved, one per incident (for the fleet view)."""
    stmt = select(Incident.host_name, Incident.cause).where(
        Incident.status != RESOLVED, Incident.host_name.is_not(None)).order_by(Incident.id)
    result: dict[str, list[str]] = {}
    for host, cause in session.execute(stmt):
        result.setdefault(str(host), []).append(cause)
    return result


def outbox_counts(session: Session) -> dict[tuple[str, str], int]:
    """(channel, status) → number of outbox rows (pending/sent/failed)."""
    stmt = select(Notification.channel, Notification.status, func.count()).group_by(
        Notification.channel, Notification.status
    )
    return {(channel, status): int(n) for channel, status, n in session.execute(stmt)}
