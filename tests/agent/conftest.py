"""Shared fixtures for the agent tests.

Real servers started here bind to 127.0.1.x (the agent tests' share of the loopback net) on
port 0 and are stopped at teardown; spawned processes are killed at teardown.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

LOOPBACK = "127.0.1.1"  # agent tests use 127.0.1.0/24
REPO = Path(__file__).resolve().parents[2]
PLUGINS = Path("/usr/lib/nagios/plugins")


# -- clocks and psutil-like fakes --------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told (usable as both ``clock`` and ``wall``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@dataclass
class FakeProcess:
    pid: int
    name: str
    cmdline: list[str] = field(default_factory=list)
    username: str | None = "root"
    rss: int | None = 0
    cpu_user: float = 0.0
    cpu_system: float = 0.0

    @property
    def info(self) -> dict[str, Any]:
        """Every attribute, as a shared process table serves it (``None``: could not be read)."""
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": self.cmdline,
            "username": self.username,
            "memory_info": None if self.rss is None else SimpleNamespace(rss=self.rss),
            "cpu_times": SimpleNamespace(user=self.cpu_user, system=self.cpu_system),
        }


class FakePsutil:
    """psutil-like: ``process_iter(attrs)`` over a fixed list of :class:`FakeProcess`."""

    def __init__(self, processes: list[FakeProcess]) -> None:
        self.processes = processes
        self.calls: list[list[str]] = []

    def process_iter(self, attrs: list[str]) -> list[FakeProcess]:
        self.calls.append(list(attrs))
        return list(self.processes)


# -- configs -------------------------------------------------------------------------------------


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "agent.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# -- real HTTP(S) servers ------------------------------------------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class HttpServer:
    server: ThreadingHTTPServer
    routes: dict[str, Route]
    scheme: str
    requests: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"


def respond(status: int, body: str | bytes = b"", headers: dict[str, str] | None = None) -> Route:
    data = body.encode() if isinstance(body, str) else body

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for key, value in (headers or {"Content-Type": "text/html; charset=utf-8"}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpServer]]:
    """Factory: ``http_server(routes, ssl_context=None)`` → a running server on 127.0.1.1:0."""
    started: list[tuple[HttpServer, threading.Thread]] = []

    def start(routes: dict[str, Route], ssl_context: ssl.SSLContext | None = None) -> HttpServer:
        holder: dict[str, HttpServer] = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                srv = holder["srv"]
                srv.requests.append(self.path)
                route = srv.routes.get(self.path.split("?")[0])
                if route is None:
                    respond(404, "not found")(self)
                else:
                    route(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        server = Server((LOOPBACK, 0), Handler)
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
        srv = HttpServer(server, routes, "https" if ssl_context else "http")
        holder["srv"] = srv
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((srv, thread))
        return srv

    yield start
    for srv, thread in started:
        srv.server.shutdown()
        srv.server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


@pytest.fixture
def make_cert(tmp_path: Path) -> Callable[[float], CertFiles]:
    """Factory: a self-signed certificate for 127.0.1.1 valid for ``days`` more days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def make(days: float, name: str = "cert") -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "boxkeeper-test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_path = tmp_path / f"{name}.pem"
        key_path = tmp_path / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return CertFiles(cert_path, key_path)

    return make


def server_tls_context(cert: CertFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def closed_port(host: str = LOOPBACK) -> int:
    """A port on ``host`` with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- real processes ------------------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Factory: start a process (own session) that is killed, with its group, at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], executable: str | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            executable=executable,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def voluntary_switches(thread: threading.Thread) -> int:
    """How many times ``thread`` has gone to sleep so far (/proc: voluntary context switches)."""
    with open(f"/proc/self/task/{thread.native_id}/status") as f:
        return int(f.read().split("\nvoluntary_ctxt_switches:")[1].split()[0])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # (gone between open and read: the latter)
        return False
