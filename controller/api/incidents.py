"""Incidents API (operator token): list, show with timeline, acknowledge, resolve, add a note.

``GET /api/v1/incidents`` · ``GET /api/v1/incidents/{id}`` · ``POST /api/v1/incidents/{id}/ack``
(optional ``expires_in`` seconds) · ``POST /api/v1/incidents/{id}/resolve`` ·
``POST /api/v1/incidents/{id}/notes`` (optional ``minutes``: logged in the work log, billed to the
incident's client).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.models import Incident, Notification
from controller.alerting.outbox import NotifyPolicy
from controller.api.auth import RoleOperator, RoleViewer
from controller.api.responses import unprocessable
from controller.configkit import parse_instant
from controller.reports import worklog
from controller.store.db import Database

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="incident id")]


class IncidentOut(BaseModel):
    id: int
    key: str
    client: str | None
    host: str | None
    cause: str
    severity: str
    status: str
    summary: str
    details: dict[str, Any]
    opened_at: float
    updated_at: float
    resolved_at: float | None
    resolved_by: str | None
    acknowledged_by: str | None
    acknowledged_at: float | None
    ack_expires_at: float | None
    suppressed: str | None


class EventOut(BaseModel):
    at: float
    kind: str
    actor: str | None
    message: str


class NotificationOut(BaseModel):
    channel: str
    event: str
    status: str
    attempts: int
    last_error: str | None
    created_at: float
    sent_at: float | None


class IncidentDetail(IncidentOut):
    timeline: list[EventOut]
    notifications: list[NotificationOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: float | None = Field(
        default=None, gt=0, le=366 * 86400, description="seconds until the ack expires"
    )
    message: str = Field(default="", max_length=2000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(default="", max_length=2000)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)
    minutes: int | None = Field(default=None, ge=1, le=worklog.MAX_MINUTES,
                                description="minutes spent: logged in the work log too")


def _context(request: Request) -> tuple[Database, NotifyPolicy | None, Callable[[], float], Any]:
    state = request.app.state
    monitor = getattr(state, "monitor", None)
    policy = getattr(monitor, "policy", None)
    return state.db, policy, state.clock, monitor


def _wake(monitor: Any) -> None:
    wake = getattr(monitor, "wake_dispatch", None)
    if callable(wake):
        wake()


@router.get("", response_model=list[IncidentOut], summary="List incidents, newest first")
def list_incidents(
    request: Request,
    who: RoleViewer,
    open: Annotated[bool, Query(description="only not-resolved incidents")] = False,
    client: Annotated[str | None, Query(max_length=100)] = None,
    host: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    state: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
    since: Annotated[str | None, Query(max_length=64,
                                       description="opened from (date or ISO time)")] = None,
    until: Annotated[str | None, Query(max_length=64,
                                       description="opened before (date or ISO time)")] = None,
) -> list[dict[str, Any]]:
    db, _, _, _ = _context(request)
    bounds = {}
    for name, value in (("since", since), ("until", until)):
        try:
            bounds[name] = None if value is None else parse_instant(value)
        except ValueError as exc:
            raise unprocessable(f"{name}: expected {exc}", "query", name) from None
    with db.read_session() as session:
        flt = queries.IncidentFilter(open_only=open, client=client, host=host, limit=limit, status=state,
                                     since=bounds["since"], until=bounds["until"], clients=who.clients)
        return [queries.incident_dict(i) for i in queries.list_incidents(session, flt)]


def _detail(db: Database, incident_id: int) -> dict[str, Any]:
    with db.read_session() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise HTTPException(404, f"no incident #{incident_id}")
        rows = session.scalars(
            select(Notification).where(Notification.incident_id == incident_id).order_by(Notification.id)
        )
        return {
            **queries.incident_dict(incident),
            "timeline": [queries.event_dict(e) for e in queries.timeline(session, incident_id)],
            "notifications": [
                {"channel": n.channel, "event": n.event, "status": n.status, "attempts": n.attempts,
                 "last_error": n.last_error, "created_at": n.created_at, "sent_at": n.sent_at}
                for n in rows
            ],
        }


@router.get("/{incident_id}", response_model=IncidentDetail, summary="One incident with its timeline")
def get_incident(request: Request, _who: RoleViewer, incident_id: IncidentId) -> dict[str, Any]:
    return _detail(request.app.state.db, incident_id)


@router.post("/{incident_id}/ack", response_model=IncidentDetail, summary="Acknowledge (optionally until)")
async def ack_incident(
    request: Request, operator: RoleOperator, incident_id: IncidentId, body: AckIn | None = None
) -> dict[str, Any]:
    db, policy, clock, monitor = _context(request)
    args = body or AckIn()

    def run() -> dict[str, Any]:
        try:
            with db.session() as session:
                service.acknowledge(session, incident_id, actor=operator.name, expires_in=args.expires_in,
                                    message=args.message, now=clock(), policy=policy)
        except service.IncidentNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return _detail(db, incident_id)

    result = await run_in_threadpool(run)
    _wake(monitor)
    return result


@router.post("/{incident_id}/resolve", response_model=IncidentDetail, summary="Resolve by hand")
async def resolve_incident(
    request: Request, operator: RoleOperator, incident_id: IncidentId, body: ResolveIn | None = None
) -> dict[str, Any]:
    db, policy, clock, monitor = _context(request)
    message = (body or ResolveIn()).message

    def run() -> dict[str, Any]:
        try:
            with db.session() as session:
                service.resolve_incident(session, incident_id=incident_id, actor=operator.name,
                                         message=message or f"resolved by {operator}", now=clock(),
                                         policy=policy)
        except service.IncidentNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return _detail(db, incident_id)

    result = await run_in_threadpool(run)
    _wake(monitor)
    return result


@router.post("/{incident_id}/notes", response_model=IncidentDetail, summary="Add a note to the timeline",
             responses={409: {"description": "minutes given for an incident that has no client"}})
async def add_note(
    request: Request, operator: RoleOperator, incident_id: IncidentId, body: NoteIn
) -> dict[str, Any]:
    db, _, clock, _ = _context(request)

    def run() -> dict[str, Any]:
        try:
            with db.session() as session:
                worklog.note(session, incident_id, actor=operator.name, text=body.text, now=clock(),
                             minutes=body.minutes)
        except service.IncidentNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except worklog.WorkLogError as exc:
            raise HTTPException(409, str(exc)) from None
        return _detail(db, incident_id)

    return await run_in_threadpool(run)
