"""``GET /healthz`` (no auth) and ``GET /metrics`` (no auth unless ``metrics.require_token``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from controller import tokens

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(request: Request) -> JSONResponse:
    ok = await run_in_threadpool(request.app.state.db.ping)
    return JSONResponse({"status": "ok" if ok else "error", "database": ok}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Fleet metrics in the Prometheus text format",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    app = request.app
    if app.state.cfg.metrics_require_token:
        token = tokens.bearer(request.headers.get("authorization"))
        if app.state.operator_tokens.check(token) is None:
            return JSONResponse({"detail": "operator token required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
    body = await run_in_threadpool(generate_latest, app.state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
