"""``POST /api/v1/reports``: an agent pushes one report (see :mod:`controller.ingest`).

Concurrent pushes are stored together by the app's group-commit writer
(:mod:`controller.ingest_writer`); each is answered only after its transaction committed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from controller import tokens
from controller.errors import AuthError, IngestError, PayloadTooLargeError
from controller.ingest_writer import IngestWriter

router = APIRouter(tags=["ingest"])
log = logging.getLogger("boxkeeper.controller.ingest")


class IngestAnswer(BaseModel):
    status: str  # stored | stored_late | duplicate
    host: str
    seq: int


class ErrorAnswer(BaseModel):
    detail: str


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLargeError(f"report body over the limit of {limit} bytes")
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"report body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _writer(app: Any) -> IngestWriter:
    """The app's group-commit writer (created on first use; see :mod:`controller.ingest_writer`)."""
    writer: IngestWriter | None = getattr(app.state, "ingest_writer", None)
    if writer is None:
        writer = app.state.ingest_writer = IngestWriter(app.state.db, clock=app.state.clock)
    return writer


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in (
        (401, "no, unknown or revoked agent token"),
        (403, "the token belongs to another host"),
        (413, "body over the size limit"),
        (422, "not a valid report (the message says what is wrong)"),
        (503, "database unavailable"),
    )
}


@router.post(
    "/api/v1/reports",
    response_model=IngestAnswer,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
        },
        "security": [{"AgentToken": []}],
    },
    summary="Push one agent report (idempotent by host and seq)",
)
async def push_report(request: Request) -> JSONResponse:
    app = request.app
    health = app.state.health
    started = time.perf_counter()
    code = 500
    try:
        token = tokens.bearer(request.headers.get("authorization"))
        if token is None:
            raise AuthError("agent token required (Authorization: Bearer <token>)")
        body = await _read_body(request, app.state.cfg.max_report_bytes)
        result = await _writer(app).submit(token, body)
        code = 200
        monitor = app.state.monitor
        if monitor is not None and result.status == "stored" and hasattr(monitor, "notify_report"):
            try:
                monitor.notify_report(result.host)
            except Exception:  # the report is stored; detection will catch up on its own pass
                log.exception("monitor.notify_report failed")
        return JSONResponse({"status": result.status, "host": result.host, "seq": result.seq})
    except IngestError as exc:
        code = exc.status_code
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=code, headers=headers)
    except SQLAlchemyError as exc:
        code = 503
        health.db_errors.inc()
        log.error("database error while storing a report: %s", type(exc).__name__)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)
    finally:
        health.ingest_requests.labels(str(code)).inc()
        health.ingest_duration.observe(time.perf_counter() - started)
