"""``GET /healthz`` (no auth) and ``GET /metrics`` (no auth unless ``metrics.require_token``: then an
operator token of any role whose scope is every client)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from controller import tokens
from controller.api.reports import ErrorAnswer

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str  # ok | error
    database: bool


@router.get("/healthz", summary="Liveness and database reachability",
            responses={200: {"model": Health}, 503: {"model": Health, "description": "database unavailable"}})
async def healthz(request: Request) -> JSONResponse:
    ok = await run_in_threadpool(request.app.state.db.ping)
    return JSONResponse({"status": "ok" if ok else "error", "database": ok}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Fleet metrics in the Prometheus text format",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                       401: {"model": ErrorAnswer,
                             "description": "with metrics.require_token: no operator token"},
                       403: {"model": ErrorAnswer,
                             "description": "with metrics.require_token: a token limited to some clients"}})
async def metrics(request: Request) -> Response:
    app = request.app
    if app.state.cfg.metrics_require_token:
        entry = app.state.operator_tokens.identify(tokens.bearer(request.headers.get("authorization")))
        if entry is None:
            return JSONResponse({"detail": "operator token required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if entry.clients is not None:  # the fleet's metrics name every client's hosts
            return JSONResponse({"detail": f"operator {entry.name!r} is limited to some clients; /metrics "
                                 "covers the whole fleet"}, status_code=403)
    body = await run_in_threadpool(generate_latest, app.state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
