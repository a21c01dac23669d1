"""Operator API: hosts (list, detail with checks, state-change history) and checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from controller.api.auth import RoleViewer
from controller.fleet import STATUS_NAMES, load_fleet
from controller.store.models import Host, StateChange

router = APIRouter(tags=["fleet"])

def _fleet(request: Request, host: str | None = None) -> list[dict[str, Any]]:
    app = request.app
    with app.state.db.read_session() as session:
        cfg = app.state.cfg
        views = load_fleet(session, cfg.detection, cfg.maintenance, app.state.clock(), host=host)
    return [v.as_dict() for v in views]


@router.get("/api/v1/hosts", summary="Every host with its state and checks")
async def list_hosts(request: Request, who: RoleViewer) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await run_in_threadpool(_fleet, request)
    return [h for h in result if who.sees(h["client"])]


@router.get("/api/v1/hosts/{name}", summary="One host: state, checks, facts")
async def get_host(request: Request, name: str, _who: RoleViewer) -> dict[str, Any]:
    views = await run_in_threadpool(_fleet, request, name)
    if not views:
        raise HTTPException(404, f"no host {name!r}")
    return views[0]


def _changes(request: Request, name: str, limit: int) -> list[dict[str, Any]] | None:
    with request.app.state.db.read_session() as session:
        host_id = session.scalar(select(Host.id).where(Host.name == name))
        if host_id is None:
            return None
        rows = session.scalars(
            select(StateChange).where(StateChange.host_id == host_id)
            .order_by(StateChange.at.desc(), StateChange.id.desc()).limit(limit)
        )
        return [
            {"check": r.check_name, "at": r.at, "seq": r.report_seq, "old_status": r.old_status,
             "new_status": r.new_status, "old_hard": r.old_hard, "new_hard": r.new_hard,
             "summary": r.summary}
            for r in rows
        ]


@router.get("/api/v1/hosts/{name}/changes", summary="A host's check state changes, newest first")
async def host_changes(
    request: Request, name: str, _who: RoleViewer, limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    rows = await run_in_threadpool(_changes, request, name, limit)
    if rows is None:
        raise HTTPException(404, f"no host {name!r}")
    return rows


@router.get("/api/v1/checks", summary="Check states of every host (filter by host, client, status)")
async def list_checks(
    request: Request, who: RoleViewer,
    host: str | None = None, client: str | None = None,
    status: str | None = Query(None, pattern="^(ok|warning|critical|unknown)$"),
) -> list[dict[str, Any]]:
    fleet = await run_in_threadpool(_fleet, request, host)
    result = []
    for h in fleet:
        if (client is not None and h["client"] != client) or not who.sees(h["client"]):
            continue
        for c in h["checks"]:
            if status is not None and STATUS_NAMES.get(c["status"]) != status:
                continue
            result.append({"host": h["host"], "client": h["client"], **c})
    return result
