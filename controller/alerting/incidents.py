"""Incident lifecycle: open (deduplicated), escalate, acknowledge (with expiry), note, resolve.

Every function works inside the caller's session (one transaction): the incident change, its
timeline event and — when a :class:`~controller.alerting.outbox.NotifyPolicy` is given — the outbox
rows are committed together or not at all. Without a policy the incident is marked
``needs_sync`` and the monitor's next pass enqueues its notifications (within ``evaluate_interval``).

Other parts of the controller (release failures, missed update windows) open incidents with
:func:`open_incident` and close them with :func:`resolve_incident`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.alerting.models import ACKNOWLEDGED, OPEN, RESOLVED, Incident, IncidentEvent
from controller.alerting.outbox import NotifyPolicy, sync_notifications
from controller.configkit import SEVERITIES, severity_rank
from controller.store.models import Client, Host


class IncidentNotFoundError(LookupError):
    """No incident with that id (the API answers 404, the CLI exits 1)."""


def add_event(session: Session, incident: Incident, kind: str, message: str = "", *,
              actor: str | None = None, now: float | None = None) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident.id, at=time.time() if now is None else now, kind=kind, actor=actor,
        message=message,
    )
    session.add(event)
    return event


def _open_by_key(session: Session, key: str) -> Incident | None:
    stmt = select(Incident).where(Incident.dedup_key == key, Incident.status != RESOLVED).with_for_update()
    return session.scalars(stmt).first()


def _finish(session: Session, incident: Incident, policy: NotifyPolicy | None, now: float) -> None:
    incident.needs_sync = True
    incident.updated_at = now
    session.flush()
    if policy is not None:
        sync_notifications(session, incident, policy, now)


def open_incident(
    session: Session,
    *,
    host: str | None,
    key: str,
    cause: str,
    severity: str,
    summary: str,
    details: dict[str, Any] | None = None,
    client: str | None = None,
    now: float | None = None,
    policy: NotifyPolicy | None = None,
    actor: str = "boxkeeper",
) -> Incident:
    """The open incident for ``key``: created if there is none, else updated (severity raised →
    ``escalated``; lowered → ``severity``). Exactly one not-resolved incident per key, also when two
    controllers race (partial unique index; the loser re-reads the winner's row)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    now = time.time() if now is None else now
    incident = _open_by_key(session, key)
    if incident is None:
        host_row = session.scalars(select(Host).where(Host.name == host)).first() if host else None
        client_row = session.get(Client, host_row.client_id) if host_row is not None else None
        if client_row is None and client is not None:
            client_row = session.scalars(select(Client).where(Client.name == client)).first()
        candidate = Incident(
            client_id=client_row.id if client_row else None, host_id=host_row.id if host_row else None,
            client_name=client_row.name if client_row else client, host_name=host, dedup_key=key, cause=cause,
            severity=severity, status=OPEN, summary=summary, details=details or {}, opened_at=now,
            updated_at=now, needs_sync=True,
        )
        try:
            with session.begin_nested():
                session.add(candidate)
                session.flush()
        except IntegrityError:
            incident = _open_by_key(session, key)
            if incident is None:
                raise
        else:
            add_event(session, candidate, "opened", f"{severity}: {summary}", actor=actor, now=now)
            _finish(session, candidate, policy, now)
            return candidate
    _update(session, incident, cause=cause, severity=severity, summary=summary, details=details, now=now,
            actor=actor)
    _finish(session, incident, policy, now)
    return incident


def _update(session: Session, incident: Incident, *, cause: str, severity: str, summary: str,
            details: dict[str, Any] | None, now: float, actor: str) -> None:
    """Severity or cause changed: record it and take the new summary (same cause and severity keep
    the first summary, so a pass every 2 s does not rewrite the row)."""
    if severity == incident.severity and cause == incident.cause:
        return
    if severity != incident.severity:
        raised = severity_rank(severity) > severity_rank(incident.severity)
        add_event(session, incident, "escalated" if raised else "severity",
                  f"{incident.severity} → {severity}: {summary}", actor=actor, now=now)
    else:
        add_event(session, incident, "changed", f"{incident.cause} → {cause}: {summary}", actor=actor,
                  now=now)
    incident.severity = severity
    incident.summary = summary
    incident.cause = cause
    if details is not None:
        incident.details = details


def resolve_incident(
    session: Session,
    *,
    key: str | None = None,
    incident_id: int | None = None,
    actor: str = "auto",
    message: str = "",
    now: float | None = None,
    policy: NotifyPolicy | None = None,
) -> Incident | None:
    """Resolve the open incident with ``key`` (or ``incident_id``); None when there is none open."""
    now = time.time() if now is None else now
    incident: Incident | None
    if incident_id is not None:
        incident = _get(session, incident_id)
    elif key is not None:
        incident = _open_by_key(session, key)
    else:
        raise ValueError("resolve_incident needs key or incident_id")
    if incident is None or incident.status == RESOLVED:
        return None
    incident.status = RESOLVED
    incident.resolved_at = now
    incident.resolved_by = actor
    add_event(session, incident, "resolved", message or ("cause cleared" if actor == "auto" else ""),
              actor=actor, now=now)
    _finish(session, incident, policy, now)
    return incident


def acknowledge(
    session: Session,
    incident_id: int,
    *,
    actor: str,
    expires_in: float | None = None,
    message: str = "",
    now: float | None = None,
    policy: NotifyPolicy | None = None,
) -> Incident:
    """Acknowledge: no more repeats until resolved, or until ``expires_in`` seconds have passed
    (then it is open again and repeats resume)."""
    now = time.time() if now is None else now
    incident = _get(session, incident_id)
    if incident.status == RESOLVED:
        return incident
    incident.status = ACKNOWLEDGED
    incident.acknowledged_by = actor
    incident.acknowledged_at = now
    incident.ack_expires_at = None if expires_in is None else now + expires_in
    until = "" if expires_in is None else f" for {expires_in:.0f} s"
    add_event(session, incident, "acknowledged", (message + until).strip(), actor=actor, now=now)
    _finish(session, incident, policy, now)
    return incident


def add_note(
    session: Session, incident_id: int, *, actor: str, text: str, now: float | None = None
) -> Incident:
    incident = _get(session, incident_id)
    add_event(session, incident, "note", text, actor=actor, now=now)
    return incident


def _get(session: Session, incident_id: int) -> Incident:
    incident = session.scalars(select(Incident).where(Incident.id == incident_id).with_for_update()).first()
    if incident is None:
        raise IncidentNotFoundError(f"no incident #{incident_id}")
    return incident
