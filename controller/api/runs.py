"""Update workflows over the API (operator token): the same operations as the CLI.

``GET /api/v1/runs`` · ``GET /api/v1/runs/{id}`` (with the audit trail) · ``POST /api/v1/runs``
(start a run: 202 with its id; the run goes on in the controller; 409 when the host is busy or
quarantined; 422 for an unknown host, playbook or variable) · ``GET /api/v1/windows`` ·
``POST /api/v1/windows``.

Rollouts (one playbook over many hosts: canary, batches, failure budget; see
controller/workflows/rollouts.py): ``POST /api/v1/rollouts`` (202 with its id; the rollout goes on
in the controller; 422 for an unknown host, client, playbook or variable, or a bad batch size) ·
``GET /api/v1/rollouts`` · ``GET /api/v1/rollouts/{id}`` (hosts, batches, each run's outcome) ·
``POST /api/v1/rollouts/{id}/pause|resume|abort`` (409 when the rollout's state does not allow it).
Runs and rollouts record the operator who started them (``started_by``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from controller.api.auth import Operator
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.workflows import rollouts
from controller.workflows import runs as store
from controller.workflows.errors import RolloutStateError, RunRefused, UnknownRolloutError, UnknownRunError
from controller.workflows.windows import add_window, describe_windows

router = APIRouter(prefix="/api/v1", tags=["workflows"])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="run id")]
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1, description="rollout id")]
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


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: Name
    hosts: list[Name] = Field(default_factory=list, max_length=10000,
                              description="these hosts, in this order (or client, or all)")
    client: Name | None = Field(default=None, description="every host of the client with an SSH address")
    all: bool = Field(default=False, description="every host with an SSH address")
    canary: Name | None = Field(default=None, description="the host run first, alone (default: the first)")
    batch_size: Annotated[str, Field(pattern=r"^[0-9]{1,6}%?$")] = Field(
        default="1", description="hosts run at once after the canary: a number, or a percentage such as 25%")
    max_failures: int = Field(default=0, ge=0, le=100000,
                              description="failed hosts allowed before the rollout stops")
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict, max_length=100)
    dry_run: bool = False


class RolloutStarted(BaseModel):
    id: int
    playbook: str
    hosts: list[str]
    started_by: str


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


@router.get("/runs")
async def list_runs(request: Request, _op: Operator,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            return [r.to_dict() for r in store.list_runs(s, limit)]

    return await run_in_threadpool(read)


@router.get("/runs/{run_id}")
async def show_run(request: Request, _op: Operator, run_id: RunId) -> dict[str, Any]:
    rt = _runtime(request)

    def read() -> dict[str, Any]:
        with rt.db.read_session() as s:
            return store.summary(s, run_id).to_dict()

    try:
        return await run_in_threadpool(read)
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/runs", status_code=202)
async def start_run(request: Request, op: Operator, body: RunIn) -> RunStarted:
    rt = _runtime(request)
    try:
        run_id = await run_in_threadpool(rt.start, body.playbook, body.host, body.vars, dry_run=body.dry_run,
                                         site=body.site, started_by=op)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return RunStarted(id=run_id, host=body.host, playbook=body.playbook, dry_run=body.dry_run)


@router.post("/rollouts", status_code=202)
async def start_rollout(request: Request, op: Operator, body: RolloutIn) -> RolloutStarted:
    rt = _runtime(request)
    if sum((bool(body.hosts), body.client is not None, body.all)) != 1:
        raise HTTPException(422, "give exactly one of hosts, client or all")

    def start() -> tuple[int, list[str]]:
        hosts = rt.fleet_hosts(hosts=body.hosts, client=body.client, everything=body.all)
        rollout_id = rt.start_rollout(body.playbook, hosts, body.vars, canary=body.canary,
                                      batch=body.batch_size, max_failures=body.max_failures,
                                      dry_run=body.dry_run, started_by=op)
        return rollout_id, hosts

    try:
        rollout_id, hosts = await run_in_threadpool(start)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return RolloutStarted(id=rollout_id, playbook=body.playbook, hosts=hosts, started_by=op)


@router.get("/rollouts")
async def list_rollouts(request: Request, _op: Operator,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            return [r.to_dict() for r in rollouts.list_rollouts(s, limit)]

    return await run_in_threadpool(read)


@router.get("/rollouts/{rollout_id}")
async def show_rollout(request: Request, _op: Operator, rollout_id: RolloutId) -> dict[str, Any]:
    rt = _runtime(request)

    def read() -> dict[str, Any]:
        with rt.db.read_session() as s:
            found = rollouts.summary(s, rollout_id)
            runs = [store.summary(s, h.run_id, with_timeline=False).to_dict()
                    for h in found.hosts if h.run_id is not None]
            return {**found.to_dict(), "runs": runs}

    try:
        return await run_in_threadpool(read)
    except UnknownRolloutError as exc:
        raise HTTPException(404, str(exc)) from None


async def _control(request: Request, op: str, rollout_id: int, action: str) -> dict[str, Any]:
    rt = _runtime(request)

    def write() -> str:
        with rt.db.session() as s:
            return rollouts.request(s, rollout_id, action, actor=op, now=time.time())

    try:
        said = await run_in_threadpool(write)
    except UnknownRolloutError as exc:
        raise HTTPException(404, str(exc)) from None
    except RolloutStateError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": rollout_id, "action": action, "result": said, "by": op}


@router.post("/rollouts/{rollout_id}/pause")
async def pause_rollout(request: Request, op: Operator, rollout_id: RolloutId) -> dict[str, Any]:
    return await _control(request, op, rollout_id, "pause")


@router.post("/rollouts/{rollout_id}/resume")
async def resume_rollout(request: Request, op: Operator, rollout_id: RolloutId) -> dict[str, Any]:
    return await _control(request, op, rollout_id, "resume")


@router.post("/rollouts/{rollout_id}/abort")
async def abort_rollout(request: Request, op: Operator, rollout_id: RolloutId) -> dict[str, Any]:
    return await _control(request, op, rollout_id, "abort")


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
                           variables=dict(body.vars), now=time.time())
            return {"id": w.id, "name": w.name, "target": w.target, "playbook": w.playbook,
                    "cron": w.cron, "timezone": w.timezone, "duration_minutes": w.duration_minutes}

    try:
        return await run_in_threadpool(write)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    except IntegrityError:
        raise HTTPException(409, f"a window named {body.name!r} exists already") from None
