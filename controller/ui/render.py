"""Turning a template into a response: the Jinja2 environment (autoescape on every template), the
labels of the page's language, and the headers every page carries.

Headers: a Content-Security-Policy that allows only the controller's own script and style files
(no inline script, no other origin, no framing), ``X-Frame-Options: DENY``, ``nosniff``, and
``Cache-Control: no-store`` on every page (they hold fleet data).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from controller.ui import i18n

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


ENV = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(enabled_extensions=("html",), default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["when"] = _when
ENV.filters["duration"] = _duration


R = TypeVar("R", bound=Response)


def secure(response: R, *, no_store: bool = True) -> R:
    response.headers.update(SECURITY_HEADERS)
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


def page(request: Request, template: str, context: dict[str, Any], *, status_code: int = 200,
         lang: str | None = None) -> HTMLResponse:
    """Render ``template`` with the labels of the request's language."""
    lang = lang or i18n.language(request.headers.get("accept-language"), request.cookies.get(i18n.COOKIE))
    clock = getattr(request.app.state, "clock", time.time)
    labels = i18n.CATALOGUES[lang]

    def t(key: str, **values: Any) -> str:
        text = labels[key]
        return text.format(**values) if values else text

    html = ENV.get_template(template).render(
        t=t, has=labels.__contains__, lang=lang, now=clock(), path=request.url.path,
        query=request.url.query, **context,
    )
    return secure(HTMLResponse(html, status_code=status_code))
