"""Update workflows over the API (operator token): the same operations as the CLI.

``GET /api/v1/runs`` · ``GET /api/v1/runs/{id}`` (with the audit trail) · ``POST /api/v1/runs``
(start a run: 202 with its id; the run goes on in the controller; 409 when the host is busy or
quarantined; 404 for an unknown host (or another client's) or playbook; 422 for a wrong variable
or site) · ``GET /api/v1/windows`` · ``POST /api/v1/windows`` (admin; 404 for an unknown host or
client).

Errors name what the caller sent, never the server's own paths (a playbook is named, not its file).
"""

from __future__ import annotations

import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from controller.api.auth import Identity, RoleAdmin, RoleOperator, RoleViewer, client_of_host, visible_host
from controller.api.responses import error, unprocessable
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.workflows import runs as store
from controller.workflows.errors import RunRefused, UnknownRunError
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
    name: Name
    host: Name | SkipJsonSchema[None] = None  # exactly one of host and client (the schema's oneOf)
    client: Name | SkipJsonSchema[None] = None
    playbook: Name
    cron: str = Field(min_length=1, max_length=100, description='5 fields, e.g. "0 3 * * 6"')
    duration_minutes: int = Field(ge=1, le=7 * 24 * 60)
    timezone: str | None = Field(default=None, max_length=64, description="default: the client's or host's")
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict, max_length=100)

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["host"], "not": {"required": ["client"]}},
                  {"required": ["client"], "not": {"required": ["host"]}}]})

    @field_validator("host", "client", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a name (leave the key out rather than null)")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> WindowIn:
        if (self.host is None) == (self.client is None):
            raise ValueError("give exactly one of host or client")
        return self


def _api_text(exc: ConfigError) -> str:
    """A config error as the API says it: the file named by its name, not the server's path."""
    source = FilePath(exc.source).name if "/" in exc.source else exc.source
    text = f"{source}: {exc.key}: expected {exc.expected}"
    if exc.got is not ...:
        shown = repr(exc.got)
        text += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
    return text


def _has_playbook(rt: WorkflowRuntime, name: str) -> bool:
    """Only a playbook of the playbooks directory, by name (never a path of the server)."""
    return any((rt.playbooks_dir / candidate).is_file() for candidate in (f"{name}.yaml", name))


def _runtime(request: Request) -> WorkflowRuntime:
    runtime: WorkflowRuntime = request.app.state.workflows
    return runtime


@router.get("/runs")
async def list_runs(request: Request, who: RoleViewer,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            runs = [r.to_dict() for r in store.list_runs(s, limit)]
            if who.clients is None:
                return runs
            return [r for r in runs if who.sees(client_of_host(s, r["host"]))]

    return await run_in_threadpool(read)


@router.get("/runs/{run_id}")
async def show_run(request: Request, _who: RoleViewer, run_id: RunId) -> dict[str, Any]:
    rt = _runtime(request)

    def read() -> dict[str, Any]:
        with rt.db.read_session() as s:
            return store.summary(s, run_id).to_dict()

    try:
        return await run_in_threadpool(read)
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/runs", status_code=202, responses={**error(404, "no such host or playbook"),
                                                   **error(409, "the host is busy or quarantined")})
async def start_run(request: Request, who: RoleOperator, body: RunIn) -> RunStarted:
    rt = _runtime(request)
    if rt.cfg.host(body.host) is None or not await run_in_threadpool(visible_host, request, who, body.host):
        raise HTTPException(404, f"no host {body.host!r}")
    if not _has_playbook(rt, body.playbook):
        raise HTTPException(404, f"no playbook {body.playbook!r}")
    try:
        run_id = await run_in_threadpool(rt.start, body.playbook, body.host, body.vars, dry_run=body.dry_run,
                                         site=body.site)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "body") from None
    return RunStarted(id=run_id, host=body.host, playbook=body.playbook, dry_run=body.dry_run)


def _window_visible(rt: WorkflowRuntime, who: Identity, target: str) -> bool:
    if who.clients is None:
        return True
    if target.startswith("client:"):
        return who.sees(target[len("client:"):])
    found = rt.cfg.host(target)
    return found is not None and who.sees(found[0].name)


@router.get("/windows")
async def list_windows(request: Request, who: RoleViewer) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            return [w for w in describe_windows(s) if _window_visible(rt, who, w["target"])]

    return await run_in_threadpool(read)


@router.post("/windows", status_code=201, responses={**error(404, "no such host or client"),
                                                      **error(409, "a window of that name exists")})
async def create_window(request: Request, who: RoleAdmin, body: WindowIn) -> dict[str, Any]:
    rt = _runtime(request)
    if body.client is not None:
        client = rt.cfg.client(body.client)
        if client is None or not who.sees(body.client):
            raise HTTPException(404, f"no client {body.client!r}")
        target, zone = f"client:{body.client}", client.timezone
    else:
        found = rt.cfg.host(body.host or "")
        if found is None or not who.sees(found[0].name):
            raise HTTPException(404, f"no host {body.host!r}")
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
        raise unprocessable(_api_text(exc), "body") from None
    except IntegrityError:
        raise HTTPException(409, f"a window named {body.name!r} exists already") from None
