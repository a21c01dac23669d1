"""From incidents to outbox rows, inside the incident's own transaction.

:func:`sync_notifications` is level-triggered: it looks at an incident and the rows already in the
outbox for it and adds what is missing —

- *firing* to every routed channel (client + min_severity) that has not had one at this severity or
  higher, unless notifications are withheld (inhibited by a host-level incident of the same host,
  maintenance window, host mute) or the incident was acknowledged first;
- *repeat* when a channel's ``repeat_interval`` has passed since its last firing/repeat and the
  incident is not acknowledged (Alertmanager channels: also while acknowledged);
- *resolved* to every channel that got a firing and has ``send_resolved``.

Host-level rows (agent down, unreachable) of a channel that groups wait for the channel's
``group_wait``: the first row of a client opens the group, later ones take its due time, and the
dispatcher sends the due rows of one client as one notification listing the hosts.

Each row's ``dedup_key`` is unique (``<incident>:<channel>:<event>:<n>``), so the same event is never
enqueued twice, even by two controllers racing. Ack expiry is applied here too.

Bounded per incident, however long it lasts (an Alertmanager channel repeats every minute: 1,440
repeats a day): a repeat is not enqueued while the channel still has a repeat pending for the
incident (a down receiver gets the latest state when it is back, not a queue of stale repeats), and once a
repeat is enqueued the channel's delivered repeats older than the last :data:`REPEATS_KEPT` are
deleted. A repeat's number is one more than the highest one stored, so a receiver's idempotency key
is never reused. The rows this module re-reads on every pass are thus at most, per channel, the
firings (one per severity), :data:`REPEATS_KEPT` + 1 repeats and the resolved one. The timeline
keeps one "notified" line per channel for all of its repeats (:mod:`controller.alerting.dispatcher`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from controller.alerting.channels.base import ChannelSettings
from controller.alerting.maintenance import MaintenanceWindow
from controller.alerting.models import (
    ACKNOWLEDGED,
    OPEN,
    PENDING,
    RESOLVED,
    Incident,
    IncidentEvent,
    Notification,
    Silence,
)
from controller.alerting.routing import channels_for, groupable, groups, repeat_due
from controller.alerting.silences import is_muted
from controller.configkit import severity_rank
from controller.detection.classify import CHECK_KINDS, HOST_KINDS

#: delivered repeats kept per (incident, channel); older ones are deleted when a new one is enqueued
REPEATS_KEPT = 3


def repeat_number(dedup_key: str) -> int:
    """``n`` of a repeat row's key ``<incident>:<channel>:repeat:<n>``."""
    return int(dedup_key.rsplit(":", 1)[-1])


@dataclass(frozen=True)
class NotifyPolicy:
    channels: tuple[ChannelSettings, ...] = ()
    windows: tuple[MaintenanceWindow, ...] = ()


def incident_payload(incident: Incident, event: str, channel: str, key: str, now: float) -> dict[str, Any]:
    """What a channel renders; a snapshot taken when the row is enqueued."""
    return {
        "event": event,
        "channel": channel,
        "idempotency_key": key,
        "created_at": now,
        "incident": {
            "id": incident.id,
            "key": incident.dedup_key,
            "cause": incident.cause,
            "severity": incident.severity,
            "status": incident.status,
            "summary": incident.summary,
            "host": incident.host_name,
            "client": incident.client_name,
            "opened_at": incident.opened_at,
            "resolved_at": incident.resolved_at,
            "acknowledged_by": incident.acknowledged_by,
        },
    }


def group_due(session: Session, incident: Incident, channel: ChannelSettings, event: str,
              now: float) -> float:
    """When a new row of this incident to ``channel`` is due: now, or for a grouped one the due time
    of its client's group that is still waiting (else a new group: now + ``group_wait``)."""
    if not groups(channel) or not groupable(incident.cause, event):
        return now
    waiting = session.scalar(
        select(func.min(Notification.next_attempt_at))
        .join(Incident, Incident.id == Notification.incident_id)
        .where(Notification.status == PENDING, Notification.channel == channel.name,
               Notification.event == event, Notification.attempts == 0, Notification.next_attempt_at > now,
               Incident.client_name == incident.client_name, Incident.cause.in_(HOST_KINDS))
    )
    return float(waiting) if waiting is not None else now + channel.group_wait


def _enqueue(session: Session, incident: Incident, channel: ChannelSettings, event: str, key: str,
             now: float) -> bool:
    row = Notification(
        incident_id=incident.id, event=event, channel=channel.name, dedup_key=key,
        payload=incident_payload(incident, event, channel.name, key, now), status=PENDING, attempts=0,
        next_attempt_at=group_due(session, incident, channel, event, now), created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False  # another controller enqueued the same event first
    return True


@dataclass(frozen=True)
class PassData:
    """What :func:`sync_notifications` would otherwise query for each incident, read once for a
    whole pass (:func:`sync_pending`: three queries, not three per open incident)."""

    rows: dict[int, list[Any]]  # incident id → its outbox rows
    inhibitors: dict[int, tuple[int, str]]  # host id → (id, cause) of its oldest open host-level incident
    silences: dict[int, str]  # host id → reason of its silence in force that ends last


def read_pass_data(session: Session, now: float, wanted: Any) -> PassData:
    """For the incidents ``wanted`` selects (a where clause)."""
    pending = select(Incident.id).where(wanted)
    rows: dict[int, list[Any]] = {}
    for r in session.execute(
        select(Notification.incident_id, Notification.channel, Notification.event, Notification.dedup_key,
               Notification.created_at, Notification.status)
        .where(Notification.incident_id.in_(pending.scalar_subquery()))
    ):
        rows.setdefault(r.incident_id, []).append(r)
    inhibitors: dict[int, tuple[int, str]] = {}
    for host_id, incident_id, cause in session.execute(
        select(Incident.host_id, Incident.id, Incident.cause).where(
            Incident.status != RESOLVED, Incident.cause.in_(HOST_KINDS), Incident.host_id.is_not(None),
        ).order_by(Incident.id.desc())):
        if host_id is not None:
            inhibitors[host_id] = (incident_id, cause)
    silences = {host_id: reason for host_id, reason in session.execute(
        select(Silence.host_id, Silence.reason).where(Silence.until > now).order_by(Silence.until))}
    return PassData(rows, inhibitors, silences)


def withheld_reason(session: Session, incident: Incident, policy: NotifyPolicy, now: float,
                    known: PassData | None = None) -> str | None:
    """Why this incident's notifications must wait right now (None: send them)."""
    if incident.cause in CHECK_KINDS and incident.host_id is not None:
        found: Any
        if known is not None:
            found = known.inhibitors.get(incident.host_id)
        else:
            found = session.execute(
                select(Incident.id, Incident.cause).where(
                    Incident.host_id == incident.host_id, Incident.status != RESOLVED,
                    Incident.cause.in_(HOST_KINDS), Incident.id != incident.id,
                ).order_by(Incident.id)
            ).first()
        if found is not None:
            return f"inhibited by {found[1]} (#{found[0]})"
    return is_muted(session, host=incident.host_name, client=incident.client_name, now=now,
                    windows=policy.windows, host_id=incident.host_id,
                    silences=None if known is None else known.silences)


def _event(session: Session, incident: Incident, kind: str, message: str, now: float) -> None:
    session.add(IncidentEvent(incident_id=incident.id, at=now, kind=kind, actor="boxkeeper", message=message))


def sync_notifications(session: Session, incident: Incident, policy: NotifyPolicy, now: float,
                       known: PassData | None = None) -> int:
    """Enqueue what is missing for this incident; the number of rows added (``known``: read for
    the whole pass already)."""
    expires = incident.ack_expires_at
    if incident.status == ACKNOWLEDGED and expires is not None and expires <= now:
        incident.status = OPEN
        _event(session, incident, "ack_expired", f"acknowledgement by {incident.acknowledged_by} expired",
               now)
        incident.acknowledged_by = incident.acknowledged_at = incident.ack_expires_at = None
    rows = known.rows.get(incident.id, []) if known is not None else session.execute(
        select(Notification.channel, Notification.event, Notification.dedup_key, Notification.created_at,
               Notification.status)
        .where(Notification.incident_id == incident.id)
    ).all()
    keys = {r.dedup_key for r in rows}
    fired: dict[str, float] = {}  # channel → last firing/repeat enqueued
    fired_rank: dict[str, int] = {}  # channel → highest severity it heard firing at
    repeats: dict[str, int] = {}  # channel → highest repeat number
    waiting: set[str] = set()  # channels with a repeat still pending
    for r in rows:
        if r.event in ("firing", "repeat"):
            fired[r.channel] = max(fired.get(r.channel, 0.0), r.created_at)
        if r.event == "firing":
            rank = severity_rank(r.dedup_key.rsplit(":", 1)[-1])
            fired_rank[r.channel] = max(fired_rank.get(r.channel, -1), rank)
        if r.event == "repeat":
            repeats[r.channel] = max(repeats.get(r.channel, 0), repeat_number(r.dedup_key))
        if r.event == "repeat" and r.status == PENDING:
            waiting.add(r.channel)
    added = 0
    incident.needs_sync = False
    if incident.status == RESOLVED:
        for channel in policy.channels:
            key = f"{incident.id}:{channel.name}:resolved"
            if channel.name in fired and channel.send_resolved and key not in keys:
                added += _enqueue(session, incident, channel, "resolved", key, now)
        return added

    reason = withheld_reason(session, incident, policy, now, known)
    if reason != incident.withheld:
        if reason is not None:
            _event(session, incident, "suppressed", f"suppressed: {reason}", now)
        else:
            _event(session, incident, "unsuppressed", f"notifications resume (was: {incident.withheld})", now)
        incident.withheld = reason
    if reason is not None:
        return added
    acknowledged = incident.status == ACKNOWLEDGED
    rank = severity_rank(incident.severity)
    for channel in channels_for(policy.channels, client=incident.client_name, severity=incident.severity):
        if fired_rank.get(channel.name, -1) < rank and not (acknowledged and channel.type != "alertmanager"):
            key = f"{incident.id}:{channel.name}:firing:{incident.severity}"
            if key not in keys:
                added += _enqueue(session, incident, channel, "firing", key, now)
                continue
        if channel.name not in waiting and repeat_due(channel, last_sent=fired.get(channel.name), now=now,
                                                      acknowledged=acknowledged):
            number = repeats.get(channel.name, 0) + 1
            key = f"{incident.id}:{channel.name}:repeat:{number}"
            if _enqueue(session, incident, channel, "repeat", key, now):
                added += 1
                _forget_repeats(session, incident, channel.name, [
                    r.dedup_key for r in rows if r.channel == channel.name and r.event == "repeat"
                    and r.status != PENDING and repeat_number(r.dedup_key) <= number - REPEATS_KEPT])
    return added


def _forget_repeats(session: Session, incident: Incident, channel: str, keys: list[str]) -> None:
    """Delete delivered (or given up) repeats of a channel that are no longer among the last kept."""
    if keys:
        session.execute(delete(Notification).where(
            Notification.incident_id == incident.id, Notification.channel == channel,
            Notification.dedup_key.in_(keys), Notification.status != PENDING,
        ))


def sync_pending(session: Session, policy: NotifyPolicy, now: float, *, changed_only: bool = False) -> int:
    """Sync every incident that is not resolved or changed since the last pass (``changed_only``:
    only those changed, e.g. by an API call; repeats and ack expiry wait for a full pass); rows added."""
    wanted = Incident.needs_sync if changed_only else (Incident.status != RESOLVED) | Incident.needs_sync
    incidents = session.scalars(
        select(Incident).where(wanted).order_by(Incident.id)
        .options(defer(Incident.details))  # read only for a row to enqueue
    ).all()
    if not incidents:
        return 0
    known = read_pass_data(session, now, wanted)
    return sum(sync_notifications(session, incident, policy, now, known) for incident in incidents)


def has_pending(session: Session) -> bool:
    """Whether :func:`sync_pending` has anything to look at (an unresolved or changed incident)."""
    stmt = select(Incident.id).where((Incident.status != RESOLVED) | Incident.needs_sync).limit(1)
    return session.scalar(stmt) is not None
