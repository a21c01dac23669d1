"""The work log over the API (operator token): a client's entries of a month, and logging minutes.

``GET /api/v1/clients/{client}/worklog?month=2026-11`` (a read) ·
``POST /api/v1/clients/{client}/worklog`` ``{"minutes": 45, "text": "…", "host": "web1", "run_id": 3}``
(a write; the operator is the token's). Minutes on an incident: ``POST /api/v1/incidents/{id}/notes``
with ``minutes``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from controller.api.auth import RoleOperator, RoleViewer
from controller.api.client_reports import MONTH_PATTERN
from controller.reports import worklog
from controller.reports.period import month_in
from controller.store.models import Client

router = APIRouter(prefix="/api/v1/clients", tags=["worklog"])

ClientName = Annotated[str, Path(min_length=1, max_length=100, description="client name")]


class EntryOut(BaseModel):
    id: int
    client: str
    host: str | None
    run_id: int | None
    incident_id: int | None
    minutes: int
    text: str
    operator: str
    at: float


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: int = Field(ge=1, le=worklog.MAX_MINUTES, description="whole minutes of work")
    text: str = Field(min_length=1, max_length=4000, description="what was done")
    host: str | None = Field(default=None, max_length=100, description="a host of the client")
    run_id: int | None = Field(default=None, ge=1, le=2**31 - 1,
                               description="an update run (its host is taken)")


@router.get("/{client}/worklog", response_model=list[EntryOut], summary="A client's work log of one month",
            responses={404: {"description": "no such client"}})
def list_worklog(
    request: Request, _who: RoleViewer, client: ClientName,
    month: Annotated[str, Query(pattern=MONTH_PATTERN, description="YYYY-MM, in the client's time zone")],
) -> list[dict[str, Any]]:
    with request.app.state.db.read_session() as session:
        row = session.scalars(select(Client).where(Client.name == client)).first()
        if row is None:
            raise HTTPException(404, f"no client {client!r}")
        m = month_in(month, row.timezone)
        return [worklog.entry_dict(e) for e in worklog.entries(session, row.name, m.start, m.end)]


@router.post("/{client}/worklog", response_model=EntryOut, status_code=201, summary="Log minutes of work",
             responses={400: {"description": "a host or run that is unknown or another client's"},
                        404: {"description": "no such client"}})
async def add_worklog(request: Request, who: RoleOperator, client: ClientName,
                      body: EntryIn) -> dict[str, Any]:
    state = request.app.state

    def run() -> dict[str, Any]:
        with state.db.session() as session:
            if session.scalars(select(Client.id).where(Client.name == client)).first() is None:
                raise HTTPException(404, f"no client {client!r}")
            try:
                item = worklog.WorkItem(client, host=body.host, run_id=body.run_id)
                entry = worklog.add_entry(session, item, minutes=body.minutes, text=body.text, actor=who.name,
                                          now=state.clock())
            except worklog.WorkLogError as exc:
                raise HTTPException(400, str(exc)) from None
            return worklog.entry_dict(entry)

    return await run_in_threadpool(run)
