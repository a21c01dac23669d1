"""Release holds over the API (operator token); the same operations as ``boxkeeper releases``.

``GET /api/v1/releases`` (``?all=true``: released ones too) · ``POST /api/v1/releases`` (hold by
hand: ``{playbook, release, reason}``; 201, or 200 with the existing hold) ·
``POST /api/v1/releases/{id}/release`` (allow it again; 404 when no such held release). The hold
and the release record the operator.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from controller.api.auth import Identity, RoleAdmin, RoleViewer
from controller.api.responses import error
from controller.store.db import Database
from controller.workflows import releases

router = APIRouter(prefix="/api/v1/releases", tags=["workflows"])

HoldId = Annotated[int, Path(ge=1, le=2**31 - 1, description="hold id")]


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    release: str = Field(min_length=1, max_length=4000, pattern=r"\S")
    reason: str = Field(default="", max_length=2000)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get("")
async def list_holds(request: Request, _who: RoleViewer,
                     all: Annotated[bool, Query(description="released ones too")] = False,
                     ) -> list[dict[str, Any]]:
    db = _db(request)

    def read() -> list[dict[str, Any]]:
        with db.read_session() as s:
            return [h.to_dict() for h in releases.list_holds(s, include_released=all)]

    return await run_in_threadpool(read)


def _fleet_wide(who: Identity) -> str:
    """Holds apply to the whole fleet: only an operator of every client may set or lift one."""
    if who.clients is not None:
        raise HTTPException(403, f"operator {who.name!r} is limited to some clients; a release hold is "
                                 "fleet-wide and needs an operator of every client")
    return who.name


@router.post("", status_code=201, responses={200: {"description": "the release was held already: that hold"}})
async def hold(request: Request, response: Response, who: RoleAdmin, body: HoldIn) -> dict[str, Any]:
    db = _db(request)
    operator = _fleet_wide(who)

    def write() -> tuple[releases.Hold, bool]:
        with db.session() as s:
            return releases.hold(s, playbook=body.playbook, release=body.release, actor=operator,
                                 now=time.time(), reason=body.reason or "held by hand")

    found, new = await run_in_threadpool(write)
    if not new:
        response.status_code = 200
    return found.to_dict()


@router.post("/{hold_id}/release", responses={**error(404, "no such hold")})
async def release(request: Request, who: RoleAdmin, hold_id: HoldId) -> dict[str, Any]:
    db = _db(request)
    operator = _fleet_wide(who)

    def write() -> releases.Hold:
        with db.session() as s:
            return releases.release(s, hold_id, actor=operator, now=time.time())

    try:
        return (await run_in_threadpool(write)).to_dict()
    except releases.UnknownHoldError as exc:
        raise HTTPException(404, str(exc)) from None
