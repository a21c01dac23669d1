"""A real HTTP push sink for the agent's tests: records every report POSTed to /api/v1/reports.

It answers like a controller would: 200 for a new (host, seq), 409 for one it already has, or a
status the test forces (``sink.status = 503`` / ``400``). ``stop()`` takes it off the network and
``start()`` brings it back on the same address, for outage tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PushSink:
    def __init__(self, host: str, port: int = 0, *, token: str, keep_alive: bool = False) -> None:
        self.host = host
        self.port = port
        self.token = token
        # keep_alive: answer HTTP/1.1 and keep the connection open, as the controller does (the
        # benchmark); off by default so that stop() also ends every connection (the outage tests)
        self.keep_alive = keep_alive
        self.status: int | None = None  # forced answer; None = behave like the controller
        self.reports: list[dict[str, Any]] = []  # every accepted report, in arrival order
        self.requests: list[tuple[int, dict[str, str], bytes]] = []  # (answer, headers, body) of all
        self.lock = threading.Lock()
        self.on_report: Callable[[dict[str, Any]], None] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PushSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, message = sink._answer(self.path, dict(self.headers), body)
                payload = json.dumps({"detail": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        with self.lock:
            if path != "/api/v1/reports":
                status, message = 404, "no such endpoint"
            elif headers.get("Authorization") != f"Bearer {self.token}":
                status, message = 401, "bad token"
            elif self.status is not None:
                status, message = self.status, f"forced answer {self.status}"
            else:
                report = json.loads(body)
                if any(r["seq"] == report["seq"] for r in self.reports):
                    status, message = 409, f"seq {report['seq']} already stored"
                else:
                    self.reports.append(report)
                    status, message = 200, "stored"
                    if self.on_report is not None:
                        self.on_report(report)
            self.requests.append((status, headers, body))
            return status, message

    def seqs(self) -> list[int]:
        with self.lock:
            return [int(r["seq"]) for r in self.reports]

    def posted_seqs(self) -> list[int]:
        """Seqs of every POST that reached the sink, whatever the answer."""
        with self.lock:
            return [int(json.loads(body)["seq"]) for _, _, body in self.requests if body]
