"""Which ``boxkeeper serve`` runs the singletons: detection, notification dispatch, update windows,
run reconciliation and pruning. Every ``serve`` takes reports and API calls; only the leader does
the background work.

PostgreSQL: a **session-level advisory lock** (``pg_try_advisory_lock``) held on a dedicated
connection (its own engine, no pool) with a keep-alive query every ``keepalive`` seconds.
Why a lock and not a lease row: the server releases the lock the moment the holder's connection
ends (a ``kill -9`` closes the socket), so a follower takes over at its next try without waiting
for a lease to run out, and no clock of any controller is involved. The connection has TCP
keep-alives on both ends and a ``tcp_user_timeout``: a leader cut off from the database notices
(failed keep-alive, ≤ ``keepalive`` + 10 s) before the server drops its session (≈ 25 s of
silence) and lets a follower in. A leader that loses its lock exits (status 3; systemd restarts it
as a follower): its runs in flight are then unfinished and the new leader reconciles them once.

Defence in depth for the moments two processes might both act (a paused leader): outbox rows are
claimed with ``FOR UPDATE SKIP LOCKED``, a window firing is a row with a unique (window, start)
key, incidents and notifications have unique keys.

SQLite: one controller is the only supported layout. ``serve`` takes an ``flock`` of
``<database>-serve.lock``; a second ``serve`` on the same file is refused (ConfigError naming the
database and the pid holding it). ``serve --no-monitor`` (API only) does not take it.

``is_leader()`` (module level) says whether this process currently holds leadership; a background
loop (pruning) calls it before each batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from controller.errors import ConfigError
from controller.store.db import Database

log = logging.getLogger("boxkeeper.leader")

#: the advisory lock's key: one per database (PostgreSQL scopes advisory locks to the database)
LOCK_KEY = zlib.crc32(b"boxkeeper-leader")
#: how often a follower tries the lock and a leader runs its keep-alive query
KEEPALIVE_SECONDS = 5.0
#: the application_name of the lock's connection (``pg_stat_activity`` shows who leads)
APPLICATION_NAME = "boxkeeper-leader"

#: the election of this process, if any (``is_leader``)
_current: Election | None = None


def is_leader() -> bool:
    """Whether this process holds leadership now (False when it runs no election)."""
    election = _current
    return election is not None and election.leader


class Election:
    """Start with ``start()``; ``on_elected`` runs (in the election thread) when this process
    becomes the leader, ``on_lost`` when it loses leadership after having had it."""

    leader: bool = False

    def __init__(self, *, on_elected: Callable[[], None], on_lost: Callable[[], None]) -> None:
        self.on_elected = on_elected
        self.on_lost = on_lost

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return "leader" if self.leader else "follower"


class PostgresElection(Election):
    def __init__(self, db: Database, *, on_elected: Callable[[], None], on_lost: Callable[[], None],
                 keepalive: float = KEEPALIVE_SECONDS, key: int = LOCK_KEY) -> None:
        super().__init__(on_elected=on_elected, on_lost=on_lost)
        self.keepalive = keepalive
        self.key = key
        self.identity = f"{APPLICATION_NAME} {socket.gethostname()} pid {os.getpid()}"[:63]
        timeout_ms = int(max(keepalive, 1.0) * 2000)
        self._engine: Engine = create_engine(
            db.url, poolclass=NullPool,
            connect_args={
                "application_name": self.identity, "connect_timeout": 10,
                "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
                "tcp_user_timeout": max(timeout_ms, 10000),
            },
        )
        self._conn: Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        global _current
        _current = self
        self._thread = threading.Thread(target=self._loop, name="boxkeeper-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        global _current
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.keepalive + 15)
        self._close()
        self.leader = False
        if _current is self:
            _current = None
        self._engine.dispose()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # the server drops this session after ~25 s without an answer from us (default: hours),
            # which releases the lock of a leader cut off from the database
            for setting, value in (("tcp_keepalives_idle", 10), ("tcp_keepalives_interval", 5),
                                   ("tcp_keepalives_count", 3)):
                conn.execute(text(f"SET {setting} = {value}"))
            self._conn = conn
        return self._conn

    def try_once(self) -> bool:
        """One step: a follower tries the lock; a leader checks that its connection still holds
        it. Returns whether this process leads afterwards (callbacks are run by the loop)."""
        try:
            conn = self._connection()
            if self.leader:
                held = conn.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid::bigint = :low AND classid::bigint = :high"),
                    {"low": self.key & 0xFFFFFFFF, "high": (self.key >> 32) & 0xFFFFFFFF}).scalar()
                return bool(held)
            return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception as exc:
            if not self.leader:
                log.warning("leader election: database not reachable (%s); retrying in %.0f s",
                            type(exc).__name__, self.keepalive)
            self._close()
            return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            leads = self.try_once()
            if leads and not self.leader:
                self.leader = True
                log.warning("this controller (%s) is now the leader: detection, notifications, "
                            "update windows and run reconciliation run here", self.identity)
                self.on_elected()
            elif self.leader and not leads:
                self.leader = False
                log.critical("this controller (%s) lost the leader lock (its database connection "
                             "broke); stopping", self.identity)
                self.on_lost()
                return
            self._stop.wait(self.keepalive)


class SqliteSingleton(Election):
    """SQLite: this process is the leader once it holds ``<database>-serve.lock``; refuses when
    another ``serve`` holds it (one controller per SQLite file)."""

    def __init__(self, db: Database, source: str, *, on_elected: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:
        super().__init__(on_elected=on_elected, on_lost=on_lost)
        path = db.url.database
        self.path = None if not path or path == ":memory:" else Path(path + "-serve.lock")
        self.source = source
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the file lock or raise ConfigError (another ``serve`` runs on this database)."""
        if self.path is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                self.source, "database",
                f"a SQLite file that no other `boxkeeper serve` uses (pid {holder} serves it, lock "
                f"{self.path}); SQLite supports one controller: for two, use PostgreSQL",
                str(self.path).removesuffix("-serve.lock")) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def start(self) -> None:
        global _current
        self.acquire()
        _current = self
        self.leader = True
        self.on_elected()

    def stop(self) -> None:
        global _current
        self.leader = False
        if _current is self:
            _current = None
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def election_for(db: Database, source: str, *, on_elected: Callable[[], None],
                 on_lost: Callable[[], None], keepalive: float = KEEPALIVE_SECONDS) -> Election:
    if db.is_sqlite:
        return SqliteSingleton(db, source, on_elected=on_elected, on_lost=on_lost)
    return PostgresElection(db, on_elected=on_elected, on_lost=on_lost, keepalive=keepalive)
