"""Update workflows over the API (operator token): the same operations as the CLI.

``GET /api/v1/runs`` (``?client= &host= &state= &since= &until=``: dates or ISO times, UTC unless
they name a zone) · ``GET /api/v1/runs/{id}`` (with the audit trail) · ``POST /api/v1/runs``
(start a run: 202 with its id; the run goes on in the controller; 409 when the host is busy or
quarantined; 422 for an unknown host, playbook or variable) · ``POST /api/v1/runs/{id}/rollback``
(roll a succeeded run back later: 202 with the rollback run's id; 409 with the reason when it
cannot be) · ``GET /api/v1/windows`` · ``POST /api/v1/windows`` (more in api/windows.py).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from controller.api.auth import Operator
from controller.configkit import parse_instant
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.workflows import later
from controller.workflows import runs as store
from controller.workflows.errors import RunRefused, UnknownRunError
from controller.workflows.state import RunState
from controller.workflows.windows import add_window, describe_windows

router = APIRouter(prefix="/api/v1", tags=["workflows"])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="run id")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: Name
    host: Name
    site: Name | None = Field(default=None,
                              description="one of the host's sites (its docroot, portal_url, vars win)")
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict, max_length=100)
    dry_run: bool = False


class RunStarted(BaseModel):
    id: int
    host: str
    playbook: str
    dry_run: bool


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    host: Name | None = None
    client: Name | None = None
    playbook: Name
    cron: str = Field(min_length=1, max_length=100, description='5 fields, e.g. "0 3 * * 6"')
    duration_minutes: int = Field(ge=1, le=7 * 24 * 60)
    timezone: str | None = Field(default=None, max_length=64, description="default: the client's or host's")
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict, max_length=100)


def _runtime(request: Request) -> WorkflowRuntime:
    runtime: WorkflowRuntime = request.app.state.workflows
    return runtime


def instant(name: str, value: str | None) -> float | None:
    """A ``since``/``until`` query value (422 naming it when wrong)."""
    try:
        return None if value is None else parse_instant(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: expected {exc}") from None


@router.get("/runs")
async def list_runs(request: Request, _op: Operator,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                    client: Annotated[str | None, Query(max_length=100)] = None,
                    host: Annotated[str | None, Query(max_length=100)] = None,
                    state: Annotated[RunState | None, Query()] = None,
                    since: Annotated[str | None, Query(max_length=64)] = None,
                    until: Annotated[str | None, Query(max_length=64)] = None) -> list[dict[str, Any]]:
    rt = _runtime(request)
    start, end = instant("since", since), instant("until", until)
    hosts: set[str] | None = None
    if client is not None:
        found = rt.cfg.client(client)
        hosts = {h.name for h in found.hosts} if found else set()
    if host is not None:
        hosts = {host} if hosts is None else hosts & {host}

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            listed = store.list_runs(s, limit, hosts=hosts, state=state.value if state else None, since=start,
                                     until=end)
            return later.annotate(s, [r.to_dict() for r in listed])

    return await run_in_threadpool(read)


@router.get("/runs/{run_id}")
async def show_run(request: Request, _op: Operator, run_id: RunId) -> dict[str, Any]:
    rt = _runtime(request)

    def read() -> dict[str, Any]:
        with rt.db.read_session() as s:
            return later.annotate(s, [store.summary(s, run_id).to_dict()])[0]

    try:
        return await run_in_threadpool(read)
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/runs", status_code=202)
async def start_run(request: Request, _op: Operator, body: RunIn) -> RunStarted:
    rt = _runtime(request)
    try:
        run_id = await run_in_threadpool(rt.start, body.playbook, body.host, body.vars, dry_run=body.dry_run,
                                         site=body.site)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return RunStarted(id=run_id, host=body.host, playbook=body.playbook, dry_run=body.dry_run)


@router.post("/runs/{run_id}/rollback", status_code=202)
async def rollback_run(request: Request, operator: Operator, run_id: RunId) -> dict[str, Any]:
    """Restore the backup the succeeded run took (while it is kept): a new run, "rollback of run N"."""
    rt = _runtime(request)
    try:
        rollback_id = await run_in_threadpool(rt.start_rollback, run_id, operator)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": rollback_id, "rollback_of": run_id, "requested_by": operator}


@router.get("/windows")
async def list_windows(request: Request, _op: Operator) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            return describe_windows(s)

    return await run_in_threadpool(read)


@router.post("/windows", status_code=201)
async def create_window(request: Request, _op: Operator, body: WindowIn) -> dict[str, Any]:
    rt = _runtime(request)
    if (body.host is None) == (body.client is None):
        raise HTTPException(422, "give exactly one of host or client")
    if body.client is not None:
        client = rt.cfg.client(body.client)
        if client is None:
            raise HTTPException(422, f"unknown client {body.client!r}")
        target, zone = f"client:{body.client}", client.timezone
    else:
        found = rt.cfg.host(body.host or "")
        if found is None:
            raise HTTPException(422, f"unknown host {body.host!r}")
        target, zone = body.host or "", found[1].timezone

    def write() -> dict[str, Any]:
        with rt.db.session() as s:
            w = add_window(s, name=body.name, target=target, playbook=body.playbook, cron=body.cron,
                           duration_minutes=body.duration_minutes, timezone=body.timezone or zone,
                           variables=dict(body.vars), now=time.time(), actor=_op)
            return {"id": w.id, "name": w.name, "target": w.target, "playbook": w.playbook,
                    "cron": w.cron, "timezone": w.timezone, "duration_minutes": w.duration_minutes}

    try:
        return await run_in_threadpool(write)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    except IntegrityError:
        raise HTTPException(409, f"a window named {body.name!r} exists already") from None
