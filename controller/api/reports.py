"""``POST /api/v1/reports``: an agent pushes one report (see :mod:`controller.ingest`).

Concurrent pushes are stored together by the app's group-commit writer
(:mod:`controller.ingest_writer`); each is answered only after its transaction committed.

The endpoint is reachable two ways, with one handler (:func:`handle_push`) behind both:

- the FastAPI route below (``/openapi.json``, tests through the ASGI app);
- :class:`IngestFastPath`, the ASGI wrapper that ``serve`` runs the app in: it answers this one
  endpoint directly and passes every other request (and the lifespan) to FastAPI. Ingest is the
  only hot path of the controller; skipping FastAPI's routing and middleware stack for it saves
  CPU on every push (see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from controller import tokens
from controller.errors import AuthError, IngestError, PayloadTooLargeError
from controller.ingest_writer import IngestWriter

PATH = "/api/v1/reports"
router = APIRouter(tags=["ingest"])
log = logging.getLogger("boxkeeper.controller.ingest")

Answer = tuple[int, dict[str, Any], dict[str, str] | None]


class IngestAnswer(BaseModel):
    status: str  # stored | stored_late | duplicate
    host: str
    seq: int


class ErrorAnswer(BaseModel):
    detail: str


async def _read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLargeError(f"report body over the limit of {limit} bytes")
        except ValueError:
            pass
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"report body over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _writer(app: Any) -> IngestWriter:
    """The app's group-commit writer (created on first use; see :mod:`controller.ingest_writer`)."""
    writer: IngestWriter | None = getattr(app.state, "ingest_writer", None)
    if writer is None:
        writer = app.state.ingest_writer = IngestWriter(app.state.db, clock=app.state.clock)
    return writer


async def handle_push(app: Any, authorization: str | None, content_length: str | None,
                      chunks: AsyncIterator[bytes]) -> Answer:
    """Authenticate, read, validate and store one push: (HTTP status, JSON answer, extra headers).

    Refusals (401/403/413/422/429) and a database failure (503) are answers; anything else raises.
    The token is checked (and rate-limited) before the body is read."""
    health = app.state.health
    started = time.perf_counter()
    code = 500
    try:
        token = tokens.bearer(authorization)
        if token is None:
            raise AuthError("agent token required (Authorization: Bearer <token>)")
        # Before a byte of the body is read: an unknown token, or one over its rate, costs no parsing.
        digest = await app.state.agent_tokens.check(token)
        if digest is None:
            raise AuthError("unknown or revoked agent token")
        wait = app.state.agent_buckets.take(digest)
        if wait is not None:
            code = 429
            return (429, {"detail": f"too many reports for this token; retry in {wait} s"},
                    {"Retry-After": str(wait)})
        body = await _read_body(chunks, content_length, app.state.cfg.max_report_bytes)
        result = await _writer(app).submit(token, body)
        code = 200
        monitor = app.state.monitor
        if monitor is not None and result.status == "stored" and hasattr(monitor, "notify_report"):
            try:
                monitor.notify_report(result.host)
            except Exception:  # the report is stored; detection will catch up on its own pass
                log.exception("monitor.notify_report failed")
        return 200, {"status": result.status, "host": result.host, "seq": result.seq}, None
    except IngestError as exc:
        code = exc.status_code
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return code, {"detail": exc.detail}, headers
    except SQLAlchemyError as exc:
        code = 503
        health.db_errors.inc()
        log.error("database error while storing a report: %s", type(exc).__name__)
        return 503, {"detail": "database unavailable"}, None
    finally:
        health.ingest_requests.labels(str(code)).inc()
        health.ingest_duration.observe(time.perf_counter() - started)


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in (
        (401, "no, unknown or revoked agent token"),
        (403, "the token belongs to another host"),
        (413, "body over the size limit"),
        (422, "not a valid report (the message says what is wrong)"),
        (429, "too many reports for this token (see the Retry-After header)"),
        (503, "database unavailable"),
    )
}


@router.post(
    PATH,
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
    code, payload, headers = await handle_push(
        request.app, request.headers.get("authorization"), request.headers.get("content-length"),
        request.stream(),
    )
    return JSONResponse(payload, status_code=code, headers=headers)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Disconnected(Exception):
    pass


class IngestFastPath:
    """ASGI app: ``POST /api/v1/reports`` to :func:`handle_push`, everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            code, payload, headers = await handle_push(self.app, authorization, content_length, chunks())
        except _Disconnected:
            return  # the agent went away mid-body: nothing was stored, nobody to answer
        except Exception:
            log.exception("error while handling a pushed report")
            code, payload, headers = 500, {"detail": "Internal Server Error"}, None
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": body})
