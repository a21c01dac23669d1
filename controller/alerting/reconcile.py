"""Apply a detection pass to the incidents table: open what is wanted, resolve what cleared.

Only incidents of the detected kinds (unreachable, agent_down, check, flapping) are touched here;
incidents opened by other parts (failed releases …) are closed by those parts or by a human.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from controller.alerting.incidents import open_incident, resolve_incident
from controller.alerting.models import RESOLVED, Incident
from controller.alerting.outbox import NotifyPolicy
from controller.detection.classify import CHECK_KINDS, DETECTED_KINDS, HOST_KINDS, Cause, Evaluation


def open_detected(session: Session, hosts: Iterable[str] | None = None) -> dict[str, list[Incident]]:
    """host name → its not-resolved detected incidents (``hosts`` None: of every host).
    Their ``details`` are loaded only when read (every host's incidents are read every pass)."""
    stmt = select(Incident).where(Incident.status != RESOLVED, Incident.cause.in_(DETECTED_KINDS)) \
        .options(defer(Incident.details))
    if hosts is not None:
        stmt = stmt.where(Incident.host_name.in_(list(hosts)))
    result: dict[str, list[Incident]] = {}
    for incident in session.scalars(stmt.order_by(Incident.id)):
        result.setdefault(incident.host_name or "", []).append(incident)
    return result


def needs_write(evaluations: Iterable[Evaluation], open_by_host: dict[str, list[Incident]]) -> bool:
    """Whether applying these evaluations could change anything (skips a write transaction when not)."""
    return any(e.causes for e in evaluations) or any(open_by_host.values())


class OpenState(Protocol):
    """What :func:`plan` reads of an open incident (an ``Incident`` row or a :class:`Seen`)."""

    @property
    def cause(self) -> str: ...

    @property
    def severity(self) -> str: ...


@dataclass(frozen=True)
class Seen:
    cause: str
    severity: str


def seen_open(session: Session, hosts: Iterable[str] | None = None) -> dict[str, dict[str, Seen]]:
    """host name → key → (cause, severity) of its open detected incidents: plain values that outlive
    the session."""
    stmt = select(Incident.host_name, Incident.dedup_key, Incident.cause, Incident.severity).where(
        Incident.status != RESOLVED, Incident.cause.in_(DETECTED_KINDS))
    if hosts is not None:
        stmt = stmt.where(Incident.host_name.in_(list(hosts)))
    result: dict[str, dict[str, Seen]] = {}
    for host, key, cause, severity in session.execute(stmt.order_by(Incident.id)):
        result.setdefault(host or "", {})[key] = Seen(cause, severity)
    return result


def plan(evaluation: Evaluation, existing: Mapping[str, OpenState]) -> tuple[list[Cause], list[str]]:
    """(causes to open or update, keys to resolve) for one host, given its open detected incidents
    by key: what :func:`reconcile` would do (empty, empty: nothing to write)."""
    to_open: list[Cause] = []
    for cause in evaluation.causes:
        before = existing.get(cause.key)
        if before is not None and before.cause != "flapping" and cause.kind == "flapping":
            continue  # a flapping check holds its incident as it is: no page per change
        if before is not None and before.severity == cause.severity and before.cause == cause.kind:
            continue
        to_open.append(cause)
    wanted = {c.key for c in evaluation.causes}
    to_resolve: list[str] = []
    for key, incident in existing.items():
        if key in wanted or key in evaluation.held_keys:
            continue
        if incident.cause in CHECK_KINDS and evaluation.hold_checks:
            continue
        if incident.cause in HOST_KINDS and evaluation.hold_host:
            continue
        to_resolve.append(key)
    return to_open, to_resolve


def reconcile(
    session: Session,
    evaluations: Iterable[Evaluation],
    *,
    now: float,
    policy: NotifyPolicy | None = None,
) -> int:
    """Open/update/resolve incidents so they match the evaluations; the number of changes."""
    evaluations = list(evaluations)
    current = open_detected(session, [e.host for e in evaluations])
    changes = 0
    for evaluation in evaluations:
        to_open, to_resolve = plan(evaluation, {i.dedup_key: i for i in current.get(evaluation.host, [])})
        for cause in to_open:
            open_incident(
                session, host=evaluation.host, key=cause.key, cause=cause.kind, severity=cause.severity,
                summary=cause.summary,
                details={**cause.details, **({"check": cause.check} if cause.check else {})},
                now=now, policy=policy,
            )
            changes += 1
        for key in to_resolve:
            resolve_incident(session, key=key, actor="auto", message="cause cleared", now=now, policy=policy)
            changes += 1
    return changes
