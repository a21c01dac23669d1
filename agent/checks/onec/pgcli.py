"""The 1C infobase's PostgreSQL, asked through its own command-line tools: ``pg_isready`` and
``psql`` (both in every PostgreSQL / Postgres Pro install; Postgres Pro for 1C has them in
``/opt/pgpro/1c-16/bin``).

Chosen by measurement over an in-process driver (bench/pg_client_micro.py, docs/benchmarks.md):
psycopg 3 (libpq) adds 16 MiB to the agent's RSS, past its 40 MiB budget; pg8000 (pure Python)
adds 7 MiB and spends 48 ms of the agent's CPU per connect + query (SCRAM); ``psql`` adds nothing
to the agent and costs about 20 ms of CPU in the child, once a minute.

The password never passes through the agent: ``passfile`` is a standard PostgreSQL password file
(``host:port:database:user:password`` lines, mode 0600), handed to psql as ``PGPASSFILE`` — a
path in the child's environment, nothing secret in any argv. The agent checks the file's mode
itself (psql would silently ignore a group-readable one and fail with a login error instead).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from agent.checks.command import plugin_environment, run_argv
from agent.errors import SecretFileError

#: pg_isready's documented exit codes.
ISREADY = {0: "accepting connections", 1: "rejecting connections (starting up or shutting down)",
           2: "no response", 3: "no attempt made (bad connection parameters)"}


class PgError(Exception):
    """psql failed: ``kind`` is ``connect`` (no connection, login refused), ``query`` or ``timeout``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def check_passfile(path: Path) -> None:
    """Raises SecretFileError when the password file is missing, not a file, or readable by
    group or others (its contents are never read here: psql reads them)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SecretFileError(f"password file {path} does not exist; write host:port:database:user:password "
                              f"there and run: chmod 600 {path}") from None
    except OSError as exc:
        raise SecretFileError(f"password file {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"password file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretFileError(f"password file {path} is readable by group or others (mode {mode:04o}); "
                              f"run: chmod 600 {path}")
    if not os.access(path, os.R_OK):
        raise SecretFileError(f"password file {path} cannot be read by the agent's user")


@dataclass(frozen=True)
class PgServer:
    """Where the infobase's PostgreSQL is and how psql logs in."""

    bindir: str           # "" : the tools are looked up on PATH
    host: str
    port: int
    user: str
    database: str
    passfile: Optional[Path] = None

    @property
    def where(self) -> str:
        if self.host.startswith("/"):
            return f"{self.host} port {self.port}"
        return f"{self.host}:{self.port}"

    def _tool(self, name: str) -> str:
        return os.path.join(self.bindir, name) if self.bindir else name

    def _env(self, timeout: float) -> dict[str, str]:
        extra = {"PGCONNECT_TIMEOUT": str(max(2, int(timeout))), "PGAPPNAME": "boxkeeper-agent"}
        if self.passfile is not None:
            extra["PGPASSFILE"] = str(self.passfile)
        env = plugin_environment(os.environ, extra)
        env.pop("PGPASSWORD", None)
        return env

    def isready(self, timeout: float) -> tuple[Optional[int], str]:
        """pg_isready's exit code (None: it did not finish) and its meaning."""
        argv = [self._tool("pg_isready"), "-q", "-h", self.host, "-p", str(self.port), "-d", self.database,
                "-U", self.user, "-t", str(max(1, int(timeout)))]
        try:
            done = run_argv(argv, self._env(timeout), timeout)
        except OSError as exc:
            return None, f"cannot run {argv[0]}: {exc.strerror or exc}"
        if done is None:
            return None, f"pg_isready did not finish within {timeout:g}s"
        code = done[0]
        return code, ISREADY.get(code, f"exit code {code}")

    def query(self, sql: str, timeout: float) -> list[list[str]]:
        """One statement's rows (tab-separated by psql, unaligned, no headers). Raises PgError."""
        if self.passfile is not None:
            check_passfile(self.passfile)
        argv = [self._tool("psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.database, "-w", "-c", sql]
        try:
            done = run_argv(argv, self._env(timeout), timeout)
        except OSError as exc:
            raise PgError("connect", f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        if done is None:
            raise PgError("timeout", f"psql did not answer within {timeout:g}s")
        code, out, err = done
        text = err.decode("utf-8", "replace").strip()
        first = next((line for line in text.splitlines() if line.strip()), f"exit code {code}")
        if code == 2:  # psql: the connection failed
            raise PgError("connect", f"cannot connect to PostgreSQL at {self.where} as {self.user}: {first}")
        if code != 0:
            raise PgError("query", f"query failed: {first}")
        return [line.split("\t") for line in out.decode("utf-8", "replace").splitlines() if line]


def rows_text(rows: Sequence[Sequence[str]]) -> str:
    return "; ".join("|".join(r) for r in rows)
