"""Apply a detection pass to the incidents table: open what is wanted, resolve what cleared.

Only incidents of the detected kinds (unreachable, agent_down, check, flapping) are touched here;
incidents opened by other parts (failed releases …) are closed by those parts or by a human.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.alerting.incidents import open_incident, resolve_incident
from controller.alerting.models import RESOLVED, Incident
from controller.alerting.outbox import NotifyPolicy
from controller.detection.classify import CHECK_KINDS, DETECTED_KINDS, HOST_KINDS, Evaluation


def open_detected(session: Session, hosts: Iterable[str] | None = None) -> dict[str, list[Incident]]:
    """host name → its not-resolved detected incidents."""
    stmt = select(Incident).where(Incident.status != RESOLVED, Incident.cause.in_(DETECTED_KINDS))
    if hosts is not None:
        stmt = stmt.where(Incident.host_name.in_(list(hosts)))
    result: dict[str, list[Incident]] = {}
    for incident in session.scalars(stmt.order_by(Incident.id)):
        result.setdefault(incident.host_name or "", []).append(incident)
    return result


def needs_write(evaluations: Iterable[Evaluation], open_by_host: dict[str, list[Incident]]) -> bool:
    """Whether applying these evaluations could change anything (skips a write transaction when not)."""
    return any(e.causes for e in evaluations) or any(open_by_host.values())


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
        existing = {i.dedup_key: i for i in current.get(evaluation.host, [])}
        wanted = {c.key for c in evaluation.causes}
        for cause in evaluation.causes:
            before = existing.get(cause.key)
            if before is not None and before.cause != "flapping" and cause.kind == "flapping":
                continue  # a flapping check holds its incident as it is: no page per change
            if before is not None and before.severity == cause.severity and before.cause == cause.kind:
                continue
            open_incident(
                session, host=evaluation.host, key=cause.key, cause=cause.kind, severity=cause.severity,
                summary=cause.summary,
                details={**cause.details, **({"check": cause.check} if cause.check else {})},
                now=now, policy=policy,
            )
            changes += 1
        for key, incident in existing.items():
            if key in wanted or key in evaluation.held_keys:
                continue
            if incident.cause in CHECK_KINDS and evaluation.hold_checks:
                continue
            if incident.cause in HOST_KINDS and evaluation.hold_host:
                continue
            resolve_incident(session, key=key, actor="auto", message="cause cleared", now=now, policy=policy)
            changes += 1
    return changes

