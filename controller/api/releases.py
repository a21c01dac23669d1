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

from controller.api.auth import Operator
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
async def list_holds(request: Request, _op: Operator,
                     all: Annotated[bool, Query(description="released ones too")] = False,
                     ) -> list[dict[str, Any]]:
    db = _db(request)

    def read() -> list[dict[str, Any]]:
        with db.read_session() as s:
            return [h.to_dict() for h in releases.list_holds(s, include_released=all)]

    return await run_in_threadpool(read)


@router.post("", status_code=201)
async def hold(request: Request, response: Response, operator: Operator, body: HoldIn) -> dict[str, Any]:
    db = _db(request)

    def write() -> tuple[releases.Hold, bool]:
        with db.session() as s:
            return releases.hold(s, playbook=body.playbook, release=body.release, actor=operator,
                                 now=time.time(), reason=body.reason or "held by hand")

    found, new = await run_in_threadpool(write)
    if not new:
        response.status_code = 200
    return found.to_dict()


@router.post("/{hold_id}/release")
async def release(request: Request, operator: Operator, hold_id: HoldId) -> dict[str, Any]:
    db = _db(request)

    def write() -> releases.Hold:
        with db.session() as s:
            return releases.release(s, hold_id, actor=operator, now=time.time())

    try:
        return (await run_in_threadpool(write)).to_dict()
    except releases.UnknownHoldError as exc:
        raise HTTPException(404, str(exc)) from None
