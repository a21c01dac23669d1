"""Changing update windows over the API (operator token); listing and adding are in api/runs.py.

``PATCH /api/v1/windows/{name}`` (only the fields given; 200 with ``{changes: {field: [before,
after]}}``; 422 for a wrong value) · ``POST /api/v1/windows/{name}/disable`` ·
``POST /api/v1/windows/{name}/enable`` · ``DELETE /api/v1/windows/{name}`` ·
``GET /api/v1/window-changes`` (who changed what; ``?name=``; not under ``/windows/`` where it
would shadow a window called "changes"). 404 for an unknown window. Every
change records the operator.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from controller.api.auth import RoleAdmin, RoleViewer, client_of_host
from controller.api.responses import error, unprocessable
from controller.api.runs import Name, _api_text, _runtime
from controller.errors import ConfigError
from controller.workflows import window_changes
from controller.workflows.models import UpdateWindow
from controller.workflows.windows import UnknownWindowError, delete_window, edit_window, set_enabled

router = APIRouter(prefix="/api/v1/windows", tags=["workflows"])
changes_router = APIRouter(prefix="/api/v1", tags=["workflows"])

WindowName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class WindowEdit(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {"required": ["host", "client"]}})
    host: Name | None = None
    client: Name | None = None
    playbook: Name | None = None
    cron: str | None = Field(default=None, min_length=1, max_length=100)
    duration_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    timezone: str | None = Field(default=None, max_length=64)
    vars: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=4000)]] | None = Field(
        default=None, max_length=100, description="replaces the window's variables")

    @model_validator(mode="after")
    def _one_target(self) -> WindowEdit:
        if self.host is not None and self.client is not None:
            raise ValueError("give at most one of host or client")
        return self


@changes_router.get("/window-changes")
async def changes(request: Request, who: RoleViewer,
                  name: Annotated[str | None, Query(max_length=100)] = None) -> list[dict[str, Any]]:
    rt = _runtime(request)

    def read() -> list[dict[str, Any]]:
        with rt.db.read_session() as s:
            found = window_changes.history(s, name)
            if who.clients is None:
                return found
            targets = {w.name: w.target for w in s.scalars(select(UpdateWindow))}

            def visible(window: str) -> bool:
                target = targets.get(window)
                if target is None:  # a deleted window: only operators of every client see its trail
                    return False
                client = (target[len("client:"):] if target.startswith("client:")
                          else client_of_host(s, target))
                return who.sees(client)

            return [c for c in found if visible(c["window"])]

    return await run_in_threadpool(read)


@router.patch("/{name}", responses={**error(404, "no such window, host or client")})
async def edit(request: Request, who: RoleAdmin, name: WindowName, body: WindowEdit) -> dict[str, Any]:
    rt = _runtime(request)
    operator = who.name
    if body.host is not None and body.client is not None:
        raise unprocessable("give at most one of host or client", "body")
    target = None
    if body.client is not None:
        if rt.cfg.client(body.client) is None or not who.sees(body.client):
            raise HTTPException(404, f"no client {body.client!r}")
        target = f"client:{body.client}"
    elif body.host is not None:
        found = rt.cfg.host(body.host)
        if found is None or not who.sees(found[0].name):
            raise HTTPException(404, f"no host {body.host!r}")
        target = body.host

    def write() -> dict[str, Any]:
        with rt.db.session() as s:
            return edit_window(s, name, actor=operator, now=time.time(), target=target,
                               playbook=body.playbook, cron=body.cron, duration_minutes=body.duration_minutes,
                               timezone=body.timezone,
                               variables=dict(body.vars) if body.vars is not None else None)

    try:
        return {"name": name, "changes": await run_in_threadpool(write)}
    except UnknownWindowError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConfigError as exc:
        raise unprocessable(_api_text(exc), "body") from None


async def _switch(request: Request, operator: str, name: str, enabled: bool) -> dict[str, Any]:
    rt = _runtime(request)

    def write() -> bool:
        with rt.db.session() as s:
            return set_enabled(s, name, enabled, actor=operator, now=time.time())

    try:
        changed = await run_in_threadpool(write)
    except UnknownWindowError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"name": name, "enabled": enabled, "changed": changed}


@router.post("/{name}/disable")
async def disable(request: Request, who: RoleAdmin, name: WindowName) -> dict[str, Any]:
    return await _switch(request, who.name, name, False)


@router.post("/{name}/enable")
async def enable(request: Request, who: RoleAdmin, name: WindowName) -> dict[str, Any]:
    return await _switch(request, who.name, name, True)


@router.delete("/{name}")
async def delete(request: Request, who: RoleAdmin, name: WindowName) -> dict[str, Any]:
    operator = who.name
    rt = _runtime(request)

    def write() -> None:
        with rt.db.session() as s:
            delete_window(s, name, actor=operator, now=time.time())

    try:
        await run_in_threadpool(write)
    except UnknownWindowError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"name": name, "deleted": True}
