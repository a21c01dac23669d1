"""A stand-in of a Bitrix24 portal's REST endpoint for incoming webhooks, on 127.0.3.x.

It checks the call's shape as the Bitrix24 REST documentation gives it for ``im.message.add``
(apidocs.bitrix24.com, "Chats" → "im.message.add"; "Incoming webhooks"): the path
``/rest/<user id>/<webhook code>/<method>[.json]``, a POST whose JSON or form body has ``DIALOG_ID``
(``chat<N>``, ``sg<N>`` or a user id) and a non-empty ``MESSAGE``. It answers as the portal does:
``{"result": <message id>, "time": {...}}``, or ``{"error": ..., "error_description": ...}`` with
401 for a wrong webhook code, 404 for an unknown method, 400 for missing parameters, and whatever
status a test sets with ``refuse_with`` (503 is the portal's ``QUERY_LIMIT_EXCEEDED``). The error
codes are the REST API's general ones; a test never depends on them, only on the statuses.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PATH = re.compile(r"^/rest/(\d+)/([^/]+)/([a-z0-9_.]+?)(\.json)?$")
DIALOG = re.compile(r"^(chat|sg)?[1-9]\d*$")


class Portal(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, user_id: int, code: str) -> None:
        self.user_id, self.code = user_id, code
        self.messages: list[dict[str, Any]] = []  # accepted im.message.add calls
        self.refusals: list[str] = []  # why a call was refused
        self.refuse_with: int | None = None
        self.lock = threading.Lock()
        super().__init__((host, 0), _Handler)

    @property
    def webhook(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/rest/{self.user_id}/{self.code}/"


def _error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Portal

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, document: dict[str, Any]) -> None:
        with self.server.lock:
            self.server.refusals.append(f"{status} {document.get('error')}")
        self._answer(status, document)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        match = PATH.match(urllib.parse.urlsplit(self.path).path)
        if match is None or int(match.group(1)) != self.server.user_id or match.group(2) != self.server.code:
            return self._refuse(401, _error("INVALID_CREDENTIALS", "Invalid request credentials"))
        if match.group(3) != "im.message.add":
            return self._refuse(404, _error("ERROR_METHOD_NOT_FOUND", "Method not found!"))
        if self.server.refuse_with is not None:
            # a refusal that echoes the request path, i.e. the webhook code (the credential)
            return self._refuse(self.server.refuse_with,
                                _error("QUERY_LIMIT_EXCEEDED" if self.server.refuse_with == 503 else "ERROR",
                                       f"refused {self.path}"))
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            if kind == "application/json":
                params = json.loads(raw)
            else:
                params = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        except ValueError:
            return self._refuse(400, _error("ERROR_ARGUMENT", "malformed body"))
        dialog, message = str(params.get("DIALOG_ID", "")), params.get("MESSAGE")
        if not DIALOG.match(dialog):
            return self._refuse(400, _error("ERROR_ARGUMENT", "DIALOG_ID is empty or wrong"))
        if not isinstance(message, str) or not message.strip():
            return self._refuse(400, _error("ERROR_ARGUMENT", "MESSAGE is empty"))
        with self.server.lock:
            self.server.messages.append(params)
            message_id = len(self.server.messages)
        now = time.time()
        self._answer(200, {"result": message_id, "time": {"start": now, "finish": now, "duration": 0.0}})

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def portal(host: str, user_id: int = 1, code: str = "abc123def456") -> Iterator[Portal]:
    server = Portal(host, user_id, code)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
