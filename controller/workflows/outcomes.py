"""What a finished run tells people: incidents for every outcome but success.

The engine calls an :class:`IncidentSink` inside the transaction that records the final state, so a
run is never finished without its incident. :class:`ServiceIncidents` is the real sink
(:func:`controller.alerting.incidents.open_incident`: deduplicated, timeline, notifications via the
outbox).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from controller.alerting.incidents import open_incident
from controller.workflows.playbook import FailureIncident


@dataclass(frozen=True)
class IncidentRequest:
    host: str
    key: str
    cause: str
    severity: str  # critical | warning | info
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    client: str | None = None  # when ``host`` is no inventory host (a window of a client)


class IncidentSink(Protocol):
    def open(self, session: Session, request: IncidentRequest) -> None: ...


class ServiceIncidents:
    """Opens incidents through ``controller.alerting.incidents.open_incident``."""

    def open(self, session: Session, request: IncidentRequest) -> None:
        open_incident(session, host=request.host, key=request.key, cause=request.cause,
                      severity=request.severity, summary=request.summary, details=request.details,
                      client=request.client)


@dataclass(frozen=True)
class RunFacts:
    run_id: int
    host: str
    playbook: str
    outcome: str
    failed_step: str | None
    failed_output: str
    error: str | None
    captured: dict[str, Any]
    backup_location: str
    rollback_notice: str
    host_key_problem: bool = False
    failure_incident: FailureIncident | None = None  # its summary rendered
    rollback_of: int | None = None  # a later rollback (`runs rollback`) of this run
    requested_by: str | None = None  # who asked for the later rollback
    aborted_by: str | None = None  # the operator whose abort the run acted on (aborts.py)


def incident_for(f: RunFacts) -> IncidentRequest | None:
    """The incident a finished run opens (None for SUCCEEDED)."""
    details: dict[str, Any] = {
        "run_id": f.run_id, "playbook": f.playbook, "outcome": f.outcome, "failed_step": f.failed_step,
        "failed_output": f.failed_output, "error": f.error, "captured": f.captured,
    }
    where = f"{f.playbook} on {f.host} (run {f.run_id})"
    if f.outcome in ("SUCCEEDED", "SKIPPED", "ABORTED"):
        # SKIPPED: a held release; ABORTED: an operator's abort before any change (not failures)
        return None
    if f.host_key_problem:
        return IncidentRequest(f.host, f"workflow:hostkey:{f.host}", "host_key_refused", "critical",
                               f"SSH host key refused for {f.host}: {f.error}", details)
    if f.failure_incident is not None and f.outcome in ("FAILED", "ROLLED_BACK"):
        return _failure_incident(f, f.failure_incident, where, details)
    if f.rollback_of is not None and f.outcome in ("FAILED", "ROLLED_BACK"):
        return _later_rollback(f, where, details)
    if f.aborted_by is not None and f.outcome == "ROLLED_BACK":
        details.update(aborted_by=f.aborted_by, backup_location=f.backup_location, warning=f.rollback_notice)
        text = (f"update rolled back on abort: {where} aborted by {f.aborted_by} during {f.failed_step}; "
                f"restored from {f.backup_location} and verified (the release is not held)")
        if f.rollback_notice:
            text += f". {f.rollback_notice}"
        return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "run_aborted", "warning", text, details)
    if f.outcome == "FAILED":
        return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "release_failed", "warning",
                               f"update not started: {where} failed at {f.failed_step or 'start'} "
                               f"before any change: {f.error or ''}".strip(), details)
    details["backup_location"] = f.backup_location
    if f.outcome == "ROLLED_BACK":
        details["warning"] = f.rollback_notice
        text = f"release rolled back: {where} failed at {f.failed_step}; restored from {f.backup_location}"
        if f.rollback_notice:
            text += f". {f.rollback_notice}"
        return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "release_rolled_back", "critical", text,
                               details)
    return IncidentRequest(f.host, f"workflow:quarantine:{f.host}", "host_quarantined", "critical",
                           f"rollback FAILED, host quarantined (no automation until `boxkeeper hosts "
                           f"unquarantine {f.host}`): {where} failed at {f.failed_step}; backup at "
                           f"{f.backup_location}", details)


def _later_rollback(f: RunFacts, where: str, details: dict[str, Any]) -> IncidentRequest:
    """``runs rollback N`` asked by an operator: nothing changed (FAILED), or N's backup restored."""
    details.update(rollback_of=f.rollback_of, requested_by=f.requested_by, backup_location=f.backup_location)
    if f.outcome == "FAILED":
        return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "rollback_not_started", "warning",
                               f"rollback of run {f.rollback_of} not started ({f.requested_by}): {where} "
                               f"failed at {f.failed_step or 'start'} before any change: "
                               f"{f.error or ''}".strip(), details)
    text = (f"release rolled back later: run {f.rollback_of} undone on request of {f.requested_by}: {where} "
            f"restored {f.backup_location} and verified it")
    if f.rollback_notice:
        text += f". {f.rollback_notice}"
    details["warning"] = f.rollback_notice
    return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "release_rolled_back", "warning", text,
                           details)


def _failure_incident(f: RunFacts, fi: FailureIncident, where: str,
                      details: dict[str, Any]) -> IncidentRequest:
    """A playbook's own failure wording (a restore drill's "backups of H cannot be restored"), one
    open incident per host and cause: a drill failing again adds to it instead of paging anew."""
    details["backup_location"] = f.backup_location
    if f.failed_step is None:  # nothing failed: a controller restart cut the run short (reconcile)
        return IncidentRequest(f.host, f"workflow:run:{f.run_id}", "run_interrupted", "warning",
                               f"{where} was interrupted by a controller restart and ended {f.outcome} "
                               "after its rollback and final steps; nothing was found wrong, but "
                               "nothing was proven either: run it again", details)
    seen = _detail(f.failed_output, fi.detail_regex)
    text = f"{fi.summary}: {where} ended {f.outcome} at {f.failed_step or 'start'}"
    if seen:
        text += f": {seen[-300:]}"
    return IncidentRequest(f.host, f"workflow:{fi.cause}:{f.host}", fi.cause, fi.severity, text, details)


def _detail(output: str, pattern: re.Pattern[str] | None) -> str:
    """The line of a failed step's output that says why (the whole output is in the details)."""
    found = pattern.search(output) if pattern is not None else None
    if found is not None:
        start = output.rfind("\n", 0, found.start()) + 1
        end = output.find("\n", found.end())
        return output[start:len(output) if end < 0 else end].strip()
    return next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
