"""Recording and listing work-log entries: minutes an operator spent for a client.

An entry is about a client and, optionally, one of its hosts, one update run or one incident
(``incidents note ID --minutes 30`` writes the note and the entry in one transaction). Entries
are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.alerting.incidents import add_note
from controller.alerting.models import Incident
from controller.errors import InventoryError
from controller.reports.models import WorkLogEntry
from controller.store.models import Client, Host
from controller.workflows.models import WorkflowRun

#: one entry may say at most this much (a day and a half: a typo like 4500 for 45 is refused)
MAX_MINUTES = 24 * 60


class WorkLogError(InventoryError):
    """An entry that cannot be recorded: unknown client, host or run, or one of another client."""


@dataclass(frozen=True)
class WorkItem:
    """What an entry is about (all optional but the client)."""

    client: str
    host: str | None = None
    run_id: int | None = None
    incident_id: int | None = None


def check_minutes(minutes: int) -> int:
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes: expected a whole number from 1 to {MAX_MINUTES}, got {minutes}")
    return minutes


def add_entry(session: Session, item: WorkItem, *, minutes: int, text: str, actor: str,
              now: float) -> WorkLogEntry:
    """Record ``minutes`` of work; WorkLogError when the client, host or run is unknown or is
    another client's."""
    check_minutes(minutes)
    client = session.scalars(select(Client).where(Client.name == item.client)).first()
    if client is None:
        raise WorkLogError(f"no client {item.client!r}")
    host = item.host
    if item.run_id is not None:
        run = session.get(WorkflowRun, item.run_id)
        if run is None:
            raise WorkLogError(f"no run with id {item.run_id}")
        if host is not None and host != run.host:
            raise WorkLogError(f"run {item.run_id} ran on {run.host!r}, not on {host!r}")
        host = run.host
    if host is not None:
        row = session.scalars(select(Host).where(Host.name == host)).first()
        if row is None:
            raise WorkLogError(f"no host {host!r}")
        if row.client_id != client.id:
            raise WorkLogError(f"host {host!r} is not a host of client {client.name!r}")
    entry = WorkLogEntry(client_id=client.id, client_name=client.name, host_name=host, run_id=item.run_id,
                         incident_id=item.incident_id, minutes=minutes, text=text, actor=actor, at=now)
    session.add(entry)
    session.flush()
    return entry


def add_incident_work(session: Session, incident: Incident, *, minutes: int, text: str, actor: str,
                      now: float) -> WorkLogEntry:
    """The entry of an incident note with minutes: billed to the incident's client."""
    check_minutes(minutes)
    if incident.client_name is None:
        raise WorkLogError(f"incident #{incident.id} has no client to bill the minutes to")
    entry = WorkLogEntry(client_id=incident.client_id, client_name=incident.client_name,
                         host_name=incident.host_name, run_id=None, incident_id=incident.id, minutes=minutes,
                         text=text, actor=actor, at=now)
    session.add(entry)
    session.flush()
    return entry


def note(session: Session, incident_id: int, *, actor: str, text: str, now: float,
         minutes: int | None = None) -> Incident:
    """An incident note (``incidents note ID [--minutes N]``, ``POST …/notes``); with ``minutes``
    also a work-log entry billed to the incident's client, in the same transaction. The timeline's
    note says the minutes (``… [+30 min]``). IncidentNotFoundError, WorkLogError."""
    if minutes is not None:
        check_minutes(minutes)
    incident = add_note(session, incident_id, actor=actor, now=now,
                        text=text if minutes is None else f"{text} [+{minutes} min]")
    if minutes is not None:
        add_incident_work(session, incident, minutes=minutes, text=text, actor=actor, now=now)
    return incident


def entries(session: Session, client: str, start: float, end: float) -> list[WorkLogEntry]:
    """The client's entries recorded in ``[start, end)``, oldest first."""
    stmt = (select(WorkLogEntry).where(WorkLogEntry.client_name == client, WorkLogEntry.at >= start,
                                       WorkLogEntry.at < end).order_by(WorkLogEntry.at, WorkLogEntry.id))
    return list(session.scalars(stmt))


def entry_dict(entry: WorkLogEntry) -> dict[str, Any]:
    return {"id": entry.id, "client": entry.client_name, "host": entry.host_name, "run_id": entry.run_id,
            "incident_id": entry.incident_id, "minutes": entry.minutes, "text": entry.text,
            "operator": entry.actor, "at": entry.at}
