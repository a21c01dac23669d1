"""Shared by the incidents/notify/detection tests: a fake clock, a controller config with hosts,
real ingest of agent reports (the schema of ``agent.report``), and small loopback receivers.

Addresses: 127.0.3.0/24 (the incidents side's range), port 0 where possible.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.report import SCHEMA, CheckReport, Facts, Report, Status, to_json
from controller import inventory
from controller.alerting.channels.base import ChannelSettings
from controller.config import ControllerConfig, parse
from controller.ingest import ingest
from controller.store.db import Database

HOST_ADDR = "127.0.3.1"


class FakeClock:
    def __init__(self, start: float = 1_764_300_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def parse_channels(source: str, raw: object) -> tuple[ChannelSettings, ...]:
    """The ``notify:`` section as the controller config reads it."""
    return parse({"notify": raw}, source).notify


def controller_config(
    tmp_path: Path,
    *,
    hosts: list[dict[str, Any]],
    notify: list[dict[str, Any]] | None = None,
    maintenance: list[dict[str, Any]] | None = None,
    detection: dict[str, Any] | None = None,
    database: str | None = None,
    client: str = "acme",
) -> ControllerConfig:
    data: dict[str, Any] = {
        "database": database or f"sqlite:///{tmp_path}/bk.db",
        "state_dir": str(tmp_path),
        "clients": [{"name": client, "timezone": "Europe/Moscow", "hosts": hosts}],
        "notify": notify or [],
        "maintenance": maintenance or [],
    }
    if detection is not None:
        data["detection"] = detection
    return parse(data, source=str(tmp_path / "controller.yaml"), base_dir=tmp_path)


def check(
    name: str,
    status: int = 0,
    *,
    hard: bool = True,
    flapping: bool = False,
    summary: str = "",
    type_: str = "http",
) -> CheckReport:
    return CheckReport(
        name=name,
        type=type_,
        status=Status(status),
        hard=hard,
        flapping=flapping,
        summary=summary or f"{name} status {status}",
        duration_seconds=0.01,
    )


@dataclass
class Agent:
    """Pushes reports through the controller's real ingest path (auth, validation, storage)."""

    db: Database
    host: str
    token: str
    clock: FakeClock
    seq: int = 0
    push_interval: float = 15.0
    checks: dict[str, CheckReport] = field(default_factory=dict)

    def push(self, *checks: CheckReport) -> None:
        for c in checks:
            self.checks[c.name] = c
        self.seq += 1
        report = Report(
            schema=SCHEMA,
            host=self.host,
            agent_version="test",
            seq=self.seq,
            sent_at=self.clock(),
            push_interval_seconds=self.push_interval,
            checks=tuple(self.checks.values()),
            samples=(),
            facts=Facts(hostname=self.host, os="Debian 12", kernel="6.1"),
        )
        ingest(self.db, self.token, to_json(report), clock=self.clock)


def agent_for(db: Database, cfg: ControllerConfig, host: str, clock: FakeClock) -> Agent:
    client = next(c.name for c in cfg.clients if any(h.name == host for h in c.hosts))
    token = inventory.add_host(db, host, client, cfg=cfg, clock=clock)
    return Agent(db, host, token, clock)


def free_port(host: str = HOST_ADDR) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that records every request; answers ``status`` (settable)."""

    daemon_threads = True

    def __init__(
        self, host: str = HOST_ADDR, status: int = 200, answer: dict[str, Any] | None = None
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.answer = answer if answer is not None else {"ok": True}
        self.lock = threading.Lock()
        super().__init__((host, 0), _RecordingHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["body"]]


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        data = json.dumps(self.server.answer).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def recorder(
    host: str = HOST_ADDR, status: int = 200, answer: dict[str, Any] | None = None
) -> Iterator[Recorder]:
    server = Recorder(host, status, answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def tcp_listener(host: str = HOST_ADDR) -> Iterator[str]:
    """A TCP port that accepts connections (stands in for sshd in probe tests): 'host:port'."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(16)
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"{host}:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def self_signed(tmp_path: Path, ip: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "boxkeeper test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
