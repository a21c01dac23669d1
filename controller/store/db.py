"""The database handle: one engine, sessions, migrations. SQLite (WAL) or PostgreSQL, same code.

SQLite connections get, on connect: ``journal_mode=WAL`` (readers never block the writer),
``busy_timeout`` (wait instead of failing when another connection writes), ``foreign_keys=ON``
and ``synchronous=NORMAL``. With WAL, NORMAL is safe against a crash of the controller process
(``kill -9``): committed transactions are in the WAL in the OS page cache. A power loss or kernel
crash may lose the last transactions (never corrupt the file). Set ``sqlite_synchronous="FULL"``
to trade throughput for durability against power loss too.

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` (take the write lock up front, so two
writers queue on ``busy_timeout`` instead of one failing on a lock upgrade); :meth:`read_session`
uses a plain deferred ``BEGIN`` so that long reads (a ``/metrics`` scrape) never hold the write lock.

Writers queue before ``BEGIN IMMEDIATE``: threads of one process on a lock, processes (``serve
--workers N``) on an ``flock`` of ``<database>-writer.lock`` polled every ≤ 2 ms. SQLite's own busy
handler sleeps up to 100 ms between tries, which left a worker idle while the other had long
finished. The file lock is only a queue: after ``busy_timeout`` of waiting the writer goes ahead
and SQLite's locking (which stays in charge of correctness) decides.

WAL checkpoints run outside that queue: SQLite's automatic checkpoint runs inside the COMMIT that
crosses 1,000 WAL pages (after SQLite's own write lock is released, but while the committing thread
still holds the queue), and a checkpoint that copies and fsyncs megabytes kept the next writer
waiting 30–80 ms more (measured: a pruning batch's commit, bench/db_size_bench.py). So connections
have ``wal_autocheckpoint=0``, and after a write transaction has ended and left the queue, the
writing thread runs a ``PASSIVE`` checkpoint (which never blocks writers or readers) at most once
every :data:`CHECKPOINT_EVERY` seconds. The WAL then holds at most about that long of writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker


def _to_json(value: Any) -> str:
    return pydantic_core.to_json(value).decode("utf-8")


# JSON columns (samples, facts, perfdata) are encoded/decoded by pydantic-core (Rust), not json.
_JSON: dict[str, Any] = {"json_serializer": _to_json, "json_deserializer": pydantic_core.from_json}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: seconds between two WAL checkpoints by one process (SQLite; see the module docstring)
CHECKPOINT_EVERY = 1.0


class Database:
    """``Database(url)``: ``.engine``, ``.session()`` (commit or roll back), ``.upgrade()`` (migrate)."""

    def __init__(self, url: str | URL, *, sqlite_synchronous: str = "NORMAL", busy_timeout_ms: int = 30000,
                 pool_size: int = 10, echo: bool = False, create: bool = True) -> None:
        """``create=False``: never create a SQLite file or its directory (read-only use)."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if create and self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=10, **_JSON,
                connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            )
            _sqlite_events(self.engine, sqlite_synchronous, busy_timeout_ms)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=20, pool_pre_ping=True, **_JSON,
            )
        # One writer at a time inside this process (SQLite only): threads queue on a lock instead of
        # polling SQLite's busy handler, which sleeps up to 100 ms between tries.
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None
        self._busy_timeout = busy_timeout_ms / 1000
        self._lock_path: str | None = None
        self._lock_fd: int | None = None
        self._lock_depth = 0
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            self._lock_path = self.url.database + "-writer.lock"
        self._checkpoint_lock = threading.Lock()
        self._checkpointed = 0.0  # time.monotonic() of this process's last checkpoint
        self.checkpoints = 0  # how many this process ran (tests, /metrics)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="BEGIN"), expire_on_commit=False,
        )

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Queue for SQLite's write lock (see the module docstring); re-entrant within a thread."""
        assert self._write_lock is not None
        with self._write_lock:
            if self._lock_path is None or self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            locked = self._flock()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if locked and self._lock_fd is not None:
                    with contextlib.suppress(OSError):
                        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _flock(self) -> bool:
        """Take the inter-process writer lock, polling; False when not taken (go ahead anyway)."""
        assert self._lock_path is not None
        try:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            deadline = time.monotonic() + self._busy_timeout
            pause = 0.0002
            while True:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except OSError:  # e.g. a read-only directory: SQLite's busy handler alone
            return False

    def writer_busy(self) -> bool:
        """Whether someone else holds the SQLite write lock at this moment (a hint for batching:
        it may be free a moment later). False on PostgreSQL."""
        if self._write_lock is None:
            return False
        if not self._write_lock.acquire(blocking=False):
            return True  # another thread of this process is writing
        try:
            if self._lock_depth or self._lock_path is None:
                return False
            if self._lock_fd is None:
                return False  # never written from this process yet: nothing to go by
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # another process (serve --workers, the CLI) is writing
            except OSError:
                return False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            return False
        finally:
            self._write_lock.release()

    def checkpoint(self, *, force: bool = False) -> bool:
        """A PASSIVE WAL checkpoint (SQLite file databases), at most once per CHECKPOINT_EVERY unless
        ``force``; called after a write has left the writer queue. True when one ran."""
        if self._lock_path is None or self._lock_depth:  # not while a write (an outer one) holds the queue
            return False
        if not force and time.monotonic() - self._checkpointed < CHECKPOINT_EVERY:
            return False
        if not self._checkpoint_lock.acquire(blocking=False):
            return False  # another thread of this process is at it
        try:
            self._checkpointed = time.monotonic()
            raw = self.engine.raw_connection()
            try:  # the driver's connection is in autocommit: the pragma runs outside a transaction
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
            finally:
                raw.close()
            self.checkpoints += 1
            return True
        except Exception:  # a checkpoint is housekeeping: the next write tries again
            return False
        finally:
            self._checkpoint_lock.release()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends normally, rolled back on any error."""
        writer = self._writer() if self._write_lock is not None else nullcontext()
        with writer, self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        self.checkpoint()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on a bare Core connection (no ORM session): the ingest hot path."""
        if self._write_lock is not None:
            with self._writer(), self.engine.begin() as connection:
                yield connection
            self.checkpoint()
            return
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction (never holds SQLite's write lock); always rolled back."""
        with self._read_sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to ``revision`` (default: the newest)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
            connection.commit()

    def schema_problem(self) -> str | None:
        """Why the database cannot be used as it is (missing, no schema, an older or unknown
        revision), or None when it is at the newest migration. Reads only."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        if self.is_sqlite and self.url.database not in (None, "", ":memory:") \
                and not Path(str(self.url.database)).is_file():
            return "no database file yet"
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        with self.engine.execution_options(sqlite_begin="BEGIN").connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            connection.rollback()
        if current is None:
            return "no schema yet"
        if current != head:
            return f"schema at revision {current}, this boxkeeper needs {head}"
        return None

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _sqlite_events(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # Database.checkpoint does it, outside the queue
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE"))
