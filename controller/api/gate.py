"""The gate every request passes before FastAPI reads its body (an ASGI middleware).

For ``/api/`` routes but ingest (which has its own, in :func:`controller.api.reports.handle_push`):

1. the Bearer token must be an operator's → else 401 (nothing of the body is read);
2. the route's declared role (``RoleViewer`` …, see :mod:`controller.api.auth`) → else 403;
3. the token's rate limit (``limits.operator``) → else 429 with ``Retry-After``;
4. the body may be at most ``limits.max_body_bytes`` → else 413 (before reading when
   ``Content-Length`` says so; while reading a chunked body).

Every other path (``/healthz``, ``/metrics``, ``/docs``, a web page) gets the body limit only. A
method a path does not take is 405 with an ``Allow`` header naming all the methods of the path.
(FastAPI's own ``max_body_size`` is not used: it answers text/plain and replaces any answer, a 401
too, when ``Content-Length`` is over the limit.)
Answers are JSON ``{"detail": "..."}`` like FastAPI's own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException
from starlette.routing import Match

from controller import tokens
from controller.api import auth
from controller.api.limits import Buckets, declared_too_large
from controller.api.reports import PATH as INGEST_PATH

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def answer(send: Send, code: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def resolve(app: Any, scope: Scope) -> tuple[bool, str | None, set[str]]:
    """(a route takes this method and path?, the role it declares, the methods of that path)."""
    allowed: set[str] = set()
    for route in auth.api_routes(app):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return True, auth.declared_role(route), set()
        if match is Match.PARTIAL:
            allowed |= set(getattr(route, "methods", None) or ())
    return False, None, allowed


def limited_receive(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body over the limit of {limit} bytes")
        return message

    return wrapped


class Gate:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == INGEST_PATH:
            await self.app(scope, receive, send)
            return
        fastapi_app = scope["app"]
        state = fastapi_app.state
        found, role, allowed = resolve(fastapi_app, scope)
        if scope["path"].startswith("/api/"):
            token = tokens.bearer(_header(scope, b"authorization"))
            entry = state.operator_tokens.identify(token)
            if entry is None or token is None:
                await answer(send, 401, "operator token required (Authorization: Bearer <token>)",
                             {"WWW-Authenticate": "Bearer"})
                return
            identity = auth.Identity.of(entry)
            if role is not None and not identity.may(role):
                await answer(send, 403, auth.forbidden(identity, role).detail)
                return
            buckets: Buckets = state.operator_buckets
            wait = buckets.take(entry.sha256)
            if wait is not None:
                await answer(send, 429, f"too many requests for this token: {buckets.per_second:g}/s, "
                             f"bursts of {buckets.burst}; retry in {wait} s", {"Retry-After": str(wait)})
                return
            scope[auth.SCOPE_KEY] = identity
        if not found and allowed:  # Starlette would name only the first route's methods
            await answer(send, 405, "Method Not Allowed", {"Allow": ", ".join(sorted(allowed))})
            return
        limit: int = state.cfg.limits.max_body_bytes
        if declared_too_large(_header(scope, b"content-length"), limit):
            await answer(send, 413, f"request body over the limit of {limit} bytes")
            return
        await self.app(scope, limited_receive(receive, limit), send)
