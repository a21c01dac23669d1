"""Update workflows over the API (operator token): the same operations as the CLI.

``GET /api/v1/runs`` (``?client= &host= &state= &since= &until=``: dates or ISO times, UTC unless
they name a zone) · ``GET /api/v1/runs/{id}`` (with the audit trail) · ``POST /api/v1/runs``
(start a run: 202 with its id; the run goes on in the controller; 409 when the host is busy or
quarantined; 404 for an unknown host (or another client's) or playbook; 422 for a wrong variable
or site) · ``POST /api/v1/runs/{id}/rollback`` (roll a succeeded run back later: 202 with the
rollback run's id; 409 with the reason when it cannot be) · ``POST /api/v1/runs/{id}/abort`` (an
operator's abort, taken at the run's next step boundary: before the update it ends ABORTED, from the
update on it rolls back; 202 with what was recorded; 409 when the run has ended or is rolling back
already; controller/workflows/aborts.py) · ``GET /api/v1/windows`` ·
``POST /api/v1/windows`` (admin; 404 for an unknown host or client; more in api/windows.py).

Rollouts (one playbook over many hosts: canary, batches, failure budget; see
controller/workflows/rollouts.py): ``POST /api/v1/rollouts`` (202 with its id; the rollout goes on
in the controller; 404 for an unknown host (or another client's), client or playbook; 422 for a
wrong variable or batch size) · ``GET /api/v1/rollouts`` · ``GET /api/v1/rollouts/{id}`` (hosts,
batches, each run's outcome) · ``POST /api/v1/rollouts/{id}/pause|resume|abort`` (409 when the
rollout's state does not allow it; ``abort?runs=true`` also aborts each run going). Runs and
rollouts record the operator who started them (``started_by``). An operator limited to some
clients sees a rollout only when all its hosts are of its clients.

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
from controller.configkit import parse_instant
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.workflows import aborts, later, rollouts
from controller.workflows import runs as store
from controller.workflows.errors import (
    RolloutStateError,
    RunRefused,
    RunStateError,
    UnknownRolloutError,
    UnknownRunError,
)
from controller.workflows.state import RunState
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
    playbook: Name
    hosts: list[Name] = Field(default_factory=list, max_length=10000,
                              description="these hosts, in this order (or client, or all)")
    client: Name | SkipJsonSchema[None] = Field(default=None,
                                                description="every host of the client with an SSH address")
    all: bool = Field(default=False, description="every host with an SSH address")
    canary: Name | None = Field(default=None, description="the host run first, alone (default: the first)")
    batch_size: Annotated[str, Field(pattern=r"^[0-9]{1,6}%?$")] = Field(
        default="1", description="hosts run at once after the canary: a number, or a percentage such as 25%")
    max_failures: int = Field(default=0, ge=0, le=100000,
                              description="failed hosts allowed before the rollout stops")
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict, max_length=100)
    dry_run: bool = False

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [  # exactly one of the three
        {"required": ["hosts"], "properties": {"hosts": {"minItems": 1}, "all": {"const": False}},
         "not": {"required": ["client"]}},
        {"required": ["client"], "properties": {"hosts": {"maxItems": 0}, "all": {"const": False}}},
        {"required": ["all"], "properties": {"all": {"const": True}, "hosts": {"maxItems": 0}},
         "not": {"required": ["client"]}}]})

    @field_validator("client", mode="before")
    @classmethod
    def _client_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a name (leave the key out rather than null)")
        return value

    @model_validator(mode="after")
    def _one_choice(self) -> RolloutIn:
        if sum((bool(self.hosts), self.client is not None, self.all)) != 1:
            raise ValueError("give exactly one of hosts, client or all")
        return self


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


def instant(name: str, value: str | None) -> float | None:
    """A ``since``/``until`` query value (422 naming it when wrong)."""
    try:
        return None if value is None else parse_instant(value)
    except ValueError as exc:
        raise unprocessable(f"{name}: expected {exc}", "query", name) from None


@router.get("/runs")
async def list_runs(request: Request, who: RoleViewer,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                    client: Annotated[str | None, Query(max_length=100)] = None,
                    host: Annotated[str | None, Query(max_length=100)] = None,
                    state: Annotated[RunState | None, Query()] = None,
                    since: Annotated[str | None, Query(max_length=64)] = None,
                    until: Annotated[str | None, Query(max_length=64)] = None,
                    ) -> list[dict[str, Any]]:
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
            runs = later.annotate(s, [r.to_dict() for r in listed])
            if who.clients is None:
                return runs
            return [r for r in runs if who.sees(client_of_host(s, r["host"]))]

    return await run_in_threadpool(read)


@router.get("/runs/{run_id}")
async def show_run(request: Request, _who: RoleViewer, run_id: RunId) -> dict[str, Any]:
    rt = _runtime(request)

    def read() -> dict[str, Any]:
        with rt.db.read_session() as s:
            return later.annotate(s, [store.summary(s, run_id).to_dict()])[0]

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
                                         site=body.site, started_by=who.name)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "body") from None
    return RunStarted(id=run_id, host=body.host, playbook=body.playbook, dry_run=body.dry_run)


@router.post("/runs/{run_id}/rollback", status_code=202,
             responses={**error(409, "the run cannot be rolled back (the reason is given)")})
async def rollback_run(request: Request, who: RoleOperator, run_id: RunId) -> dict[str, Any]:
    """Restore the backup the succeeded run took (while it is kept): a new run, "rollback of run N"."""
    rt = _runtime(request)
    try:
        rollback_id = await run_in_threadpool(rt.start_rollback, run_id, who.name)
    except RunRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "path", "run_id") from None
    return {"id": rollback_id, "rollback_of": run_id, "requested_by": who.name}


@router.post("/runs/{run_id}/abort", status_code=202,
             responses={**error(404, "no such run"),
                        **error(409, "the run has ended or is rolling back already (the reason is given)")})
async def abort_run(request: Request, who: RoleOperator, run_id: RunId) -> dict[str, Any]:
    """Ask the run to abort at its next step boundary (never mid-step): before its update phase it
    ends ABORTED after its final steps; from the update on it rolls back ("aborted by <who>")."""
    rt = _runtime(request)

    def write() -> str:
        with rt.db.session() as s:
            return aborts.request_abort(s, run_id, actor=who.name, now=time.time())

    try:
        said = await run_in_threadpool(write)
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None
    except RunStateError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": run_id, "result": said, "requested_by": who.name}


@router.post("/rollouts", status_code=202, responses={**error(404, "no such host, client or playbook")})
async def start_rollout(request: Request, who: RoleOperator, body: RolloutIn) -> RolloutStarted:
    rt = _runtime(request)
    if sum((bool(body.hosts), body.client is not None, body.all)) != 1:
        raise unprocessable("give exactly one of hosts, client or all", "body")
    if body.client is not None and (rt.cfg.client(body.client) is None or not who.sees(body.client)):
        raise HTTPException(404, f"no client {body.client!r}")
    for name in body.hosts:
        if rt.cfg.host(name) is None or not await run_in_threadpool(visible_host, request, who, name):
            raise HTTPException(404, f"no host {name!r}")
    if not _has_playbook(rt, body.playbook):
        raise HTTPException(404, f"no playbook {body.playbook!r}")
    op = who.name

    def start() -> tuple[int, list[str]]:
        hosts = rt.fleet_hosts(hosts=body.hosts, client=body.client, everything=body.all)
        if body.all and who.clients is not None:  # "all": every host this operator may see
            hosts = [h for h in hosts if (found := rt.cfg.host(h)) is not None and who.sees(found[0].name)]
        rollout_id = rt.start_rollout(body.playbook, hosts, body.vars, canary=body.canary,
                                      batch=body.batch_size, max_failures=body.max_failures,
                                      dry_run=body.dry_run, started_by=op)
        return rollout_id, hosts

    try:
        rollout_id, hosts = await run_in_threadpool(start)
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "body") from None
    return RolloutStarted(id=rollout_id, playbook=body.playbook, hosts=hosts, started_by=op)


@router.get("/rollouts")
async def list_rollouts(request: Request, who: RoleViewer,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            found = [r.to_dict() for r in rollouts.list_rollouts(s, limit)]
            if who.clients is None:
                return found
            return [r for r in found if all(who.sees(client_of_host(s, h["host"])) for h in r["hosts"])]

    return await run_in_threadpool(read)


@router.get("/rollouts/{rollout_id}")
async def show_rollout(request: Request, _who: RoleViewer, rollout_id: RolloutId) -> dict[str, Any]:
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


STATE_CONFLICT: dict[int | str, dict[str, Any]] = {**error(409, "the rollout's state does not allow it")}


async def _control(request: Request, op: str, rollout_id: int, action: str,
                   with_runs: bool = False) -> dict[str, Any]:
    rt = _runtime(request)

    def write() -> str:
        with rt.db.session() as s:
            said = rollouts.request(s, rollout_id, action, actor=op, now=time.time())
            if with_runs:
                asked = aborts.abort_rollout_runs(s, rollout_id, actor=op, now=time.time())
                said += f"; abort asked of run(s) {', '.join(map(str, asked)) or 'none going'}"
            return said

    try:
        said = await run_in_threadpool(write)
    except UnknownRolloutError as exc:
        raise HTTPException(404, str(exc)) from None
    except RolloutStateError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": rollout_id, "action": action, "result": said, "by": op}


@router.post("/rollouts/{rollout_id}/pause", responses=STATE_CONFLICT)
async def pause_rollout(request: Request, who: RoleOperator, rollout_id: RolloutId) -> dict[str, Any]:
    return await _control(request, who.name, rollout_id, "pause")


@router.post("/rollouts/{rollout_id}/resume", responses=STATE_CONFLICT)
async def resume_rollout(request: Request, who: RoleOperator, rollout_id: RolloutId) -> dict[str, Any]:
    return await _control(request, who.name, rollout_id, "resume")


@router.post("/rollouts/{rollout_id}/abort", responses=STATE_CONFLICT)
async def abort_rollout(request: Request, who: RoleOperator, rollout_id: RolloutId,
                        runs: Annotated[bool, Query(description="also abort each run going (at its next "
                                                    "step boundary)")] = False) -> dict[str, Any]:
    return await _control(request, who.name, rollout_id, "abort", with_runs=runs)


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
                           variables=dict(body.vars), now=time.time(), actor=who.name)
            return {"id": w.id, "name": w.name, "target": w.target, "playbook": w.playbook,
                    "cron": w.cron, "timezone": w.timezone, "duration_minutes": w.duration_minutes}

    try:
        return await run_in_threadpool(write)
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "body") from None
    except IntegrityError:
        raise HTTPException(409, f"a window named {body.name!r} exists already") from None
