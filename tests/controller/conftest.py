"""Fixtures of the controller tests: a real PostgreSQL 15, databases on both engines, live servers.

- ``postgres_server`` (session): initdb + postgres as user ``postgres`` (runuser), data and socket
  dirs in a temp dir, listening on 127.0.2.10 on a free port; stopped (pg_ctl stop -m fast) at the end.
- ``database_url`` (parametrized ``sqlite`` / ``postgresql``): a fresh database per test; empty, or
  migrated when the test also asks for ``db``.
- ``db``: a migrated :class:`Database` on ``database_url``: a copy of the session's migrated template
  (``migrated_sqlite``; PostgreSQL's ``CREATE DATABASE ... TEMPLATE``), not a migration per test.
  The migrations themselves are tested from an empty database (tests/controller/test_store.py).
- ``migrated_sqlite(path)``: the same for tests with a SQLite file of their own (``store`` fixtures).
- ``live_server``: starts a real uvicorn server of an app on 127.0.2.1 (port 0) in a thread.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from controller.store.db import Database

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_HOST = "127.0.2.10"
SERVER_HOST = "127.0.2.1"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, base: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.base = base
        self.port = port
        # Tests trade durability for speed (fsync off); the benchmark passes fsync=on.
        self.settings = settings or {"fsync": "off", "max_connections": "200"}
        self.data = base / "data"
        self.sockets = base / "run"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._template: str | None = None

    def _as_postgres(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv]

    def start(self) -> None:
        pw = pwd.getpwnam("postgres")
        self.base.chmod(0o755)
        for d in (self.data, self.sockets):
            d.mkdir()
            os.chown(d, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.log = open(self.base / "postgres.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self._as_postgres(
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-h",
                PG_HOST,
                "-p",
                str(self.port),
                "-k",
                str(self.sockets),
                *[arg for k, v in self.settings.items() for arg in ("-c", f"{k}={v}")],
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (self.base / "postgres.log").read_text()[-2000:])
            if self.psql("SELECT 1", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not start within 60 s")
            time.sleep(0.2)

    def psql(
        self, sql: str, *, db: str = "postgres", check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self._as_postgres(
                str(PG_BIN / "psql"),
                "-h",
                PG_HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ),
            check=check,
            capture_output=True,
            timeout=60,
        )

    def new_database(self, *, migrated: bool = False) -> str:
        """A new database: empty, or (``migrated``) a copy of one migrated once per session."""
        name = f"bk_test_{os.getpid()}_{next(self._ids)}"
        if migrated and self._template is None:
            template = f"bk_template_{os.getpid()}"
            self.psql(f"CREATE DATABASE {template}")
            database = Database(f"postgresql+psycopg://postgres@{PG_HOST}:{self.port}/{template}")
            database.upgrade()
            database.dispose()  # no connection left: CREATE DATABASE ... TEMPLATE needs none
            self._template = template
        self.psql(f"CREATE DATABASE {name}" + (f" TEMPLATE {self._template}" if migrated else ""))
        return f"postgresql+psycopg://postgres@{PG_HOST}:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run(
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        self.proc = None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="bk-pg-"))
    server = PostgresServer(base, free_port(PG_HOST))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], str]:
    """``migrated_sqlite(path)``: a SQLite database at ``path`` that is at the newest migration
    (a copy of a file migrated once per session); returns its URL."""
    template = tmp_path_factory.mktemp("migrated") / "template.db"
    database = Database(f"sqlite:///{template}")
    database.upgrade()
    database.dispose()  # the last connection closes: the WAL is checkpointed into the file
    assert not template.with_name("template.db-wal").exists()

    def copy(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return copy


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    migrated = "db" in request.fixturenames  # the test's ``db`` is this database, migrated
    if request.param == "sqlite":
        path = tmp_path / "boxkeeper.db"
        if migrated:
            return str(request.getfixturevalue("migrated_sqlite")(path))
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database(migrated=migrated)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)  # migrated by ``database_url`` (see the module docstring)
    try:
        yield database
    finally:
        database.dispose()


class LiveServers:
    """Runs apps on real uvicorn servers in threads; ``start(app)`` returns the base URL."""

    def __init__(self) -> None:
        self._running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(self, app: Any, host: str = SERVER_HOST) -> str:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(512)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self._running.append((server, thread, sock))
        return f"http://{host}:{sock.getsockname()[1]}"

    def stop_all(self) -> None:
        for server, thread, sock in reversed(self._running):
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
        self._running.clear()


@pytest.fixture
def live_server() -> Iterator[Callable[..., str]]:
    servers = LiveServers()
    try:
        yield servers.start
    finally:
        servers.stop_all()
