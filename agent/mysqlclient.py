"""The agent's MySQL/MariaDB client: connect, run a few statements, disconnect, within a deadline.

The driver is PyMySQL (pure Python, MIT, Python >= 3.9), chosen by measurement over the ``mysql``
command-line client (bench/mysql_client_micro.py; docs/agent-checks.md "mysql"): a connection
plus a query costs the agent about 0.4-0.5 ms of CPU in-process against 0.3 ms to spawn the CLI
plus 6-7 ms of CPU in the CLI itself, and the password stays inside the agent's memory (no argv,
no environment, no temporary file). It is imported on first use, so an agent without database
checks does not load it.

Two settings of PyMySQL are chosen on purpose:

- **No TLS** (``ssl_disabled``). PyMySQL 1.2 otherwise builds a TLS context with the system CA
  store for every connection (24 ms of CPU each, measured) to *try* TLS without verifying
  anything. The agent talks to the portal's own database the way the portal's PHP (mysqli) does:
  over the unix socket or plain TCP, usually on the same box.
- **Without the ``cryptography`` package** (:func:`_driver`). PyMySQL imports it at import time
  when it is installed, which adds 8.4 MiB to the agent's RSS (measured: 37.0 against 28.6 MiB),
  for one purpose only: the RSA password exchange of MySQL 8's ``sha256_password`` and
  ``caching_sha2_password`` over plain TCP when the server has not cached the account yet. Over
  the unix socket (bitrix-env's ``localhost``) and for ``mysql_native_password`` accounts
  (MariaDB, bitrix-env's MySQL users) it is never needed; when a server asks for it, the check
  says so (:class:`DbError` ``kind="auth"``) instead of silently costing every box 8 MiB.

Errors are :class:`DbError` with a ``kind`` that tells the caller what it means for the watched
thing: ``connect`` (refused, unreachable, timed out, too many connections: the database is down
for the portal too), ``auth`` (the account is refused), ``query`` (the statement failed: a check
config problem or a table missing), ``timeout`` (no answer to a statement in time). Messages carry
the server's error code and text, which never include the password.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

#: MySQL client error codes of a connection that did not come up (CR_CONNECTION_ERROR,
#: CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST) and ER_CON_COUNT_ERROR ("Too many
#: connections").
_CONNECT_CODES = frozenset({2002, 2003, 2006, 2013, 1040})
_AUTH_CODES = frozenset({1044, 1045, 1698, 1251, 2059, 2061})

_import_lock = threading.Lock()
_pymysql: Any = None


@dataclass(frozen=True)
class DbSettings:
    """Where and as whom to connect. ``socket`` wins over ``host``/``port`` when set. The password
    is kept out of ``repr`` (and so out of any log line or error that prints the settings)."""

    user: str
    database: Optional[str] = None
    host: str = "localhost"
    port: int = 3306
    socket: Optional[str] = None
    password: str = field(default="", repr=False)
    source: str = ""  # where they were read from, for messages: "/home/bitrix/www/bitrix/.settings.php"

    @property
    def where(self) -> str:
        """``127.0.0.1:3306`` or ``unix socket /var/lib/mysqld/mysqld.sock``."""
        return f"unix socket {self.socket}" if self.socket else f"{self.host}:{self.port}"


class DbError(Exception):
    """A connection or statement failed. ``kind``: connect, auth, query or timeout (see the module
    docstring); ``code``: the server's or client's error number when there is one."""

    def __init__(self, kind: str, message: str, code: Optional[int] = None) -> None:
        self.kind = kind
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class QueryResult:
    rows: tuple[tuple[Any, ...], ...]
    seconds: float  # connect + statements, wall time


def _driver() -> Any:
    """PyMySQL, imported once, without letting it load ``cryptography`` (see the module docstring).

    ``sys.modules["cryptography"] = None`` makes ``import cryptography`` raise ImportError, which
    PyMySQL handles (``_have_cryptography = False``); the entry is removed right after, so any other
    user of ``cryptography`` in this process (the http check decoding a certificate) imports it as
    usual. When something in the process has loaded ``cryptography`` already there is nothing to
    save, and PyMySQL is imported as it is (with its RSA support).
    """
    global _pymysql
    with _import_lock:
        if _pymysql is None:
            if "cryptography" in sys.modules:
                import pymysql
            else:
                sys.modules["cryptography"] = None  # type: ignore[assignment]
                try:
                    import pymysql
                finally:
                    del sys.modules["cryptography"]
            _pymysql = pymysql
    return _pymysql


def run_statements(settings: DbSettings, statements: Sequence[str], timeout: float) -> list[QueryResult]:
    """Connect, run each statement, return each one's rows (strings and numbers as the server
    sent them; ``DECIMAL`` as :class:`decimal.Decimal`), disconnect. The whole exchange keeps
    within ``timeout`` seconds as far as socket timeouts can tell: the connect gets the whole
    timeout and each read what was left of it after connecting (the scheduler's own timeout covers
    the rest). Raises :class:`DbError`."""
    pymysql = _driver()
    started = time.monotonic()
    deadline = started + timeout

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    try:
        conn = pymysql.connect(
            host=settings.host, port=settings.port, unix_socket=settings.socket, user=settings.user,
            password=settings.password, database=settings.database or None, charset="utf8mb4",
            connect_timeout=left(), read_timeout=left(), write_timeout=left(), ssl_disabled=True,
            autocommit=True, program_name="boxkeeper-agent",
        )
    except pymysql.err.MySQLError as exc:
        raise _error(exc, settings, connecting=True) from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: an auth method that needs cryptography
        raise _other(exc, settings) from None
    results: list[QueryResult] = []
    try:
        for statement in statements:
            with conn.cursor() as cursor:
                cursor.execute(statement)
                rows = tuple(tuple(row) for row in cursor.fetchall())
            results.append(QueryResult(rows, time.monotonic() - started))
    except pymysql.err.MySQLError as exc:
        raise _error(exc, settings, connecting=False) from None
    except OSError as exc:
        raise _other(exc, settings) from None
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing more to learn
            conn.close()
    return results


def _error(exc: Exception, settings: DbSettings, *, connecting: bool) -> DbError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    text = " ".join(text.split())
    if code in _AUTH_CODES:
        return DbError("auth", f"MySQL at {settings.where} refused the login of {settings.user!r}: "
                               f"({code}) {text}", code)
    if "timed out" in text.lower():
        what = "connect" if connecting else "answer"
        return DbError("connect" if connecting else "timeout",
                       f"MySQL at {settings.where} did not {what} in time: ({code}) {text}", code)
    if connecting or code in _CONNECT_CODES:
        return DbError("connect", f"cannot connect to MySQL at {settings.where}: ({code}) {text}", code)
    return DbError("query", f"query failed: ({code}) {text}", code)


def _other(exc: BaseException, settings: DbSettings) -> DbError:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return DbError("timeout", f"MySQL at {settings.where} did not answer in time", None)
    if isinstance(exc, RuntimeError) and "cryptography" in str(exc):
        return DbError(
            "auth",
            f"MySQL at {settings.where} asks {settings.user!r} for an RSA password exchange "
            "(sha256_password/caching_sha2_password over TCP without TLS), which the agent does not "
            "load: connect over the unix socket, or give the account mysql_native_password",
        )
    reason = getattr(exc, "strerror", None) or str(exc)
    return DbError("connect", f"cannot connect to MySQL at {settings.where}: {reason}")
