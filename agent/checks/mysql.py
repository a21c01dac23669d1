"""``mysql`` check: does MySQL/MariaDB answer a query in time, and how full are its connections?

Each run connects (:mod:`agent.mysqlclient`, PyMySQL in the agent's process), runs ``query``
(default ``SELECT 1``), reads ``Threads_connected`` and ``max_connections``, and disconnects.

- cannot connect, login refused, no answer within ``timeout`` → CRITICAL (the portal cannot
  either);
- the query fails (syntax, missing table) → UNKNOWN (the check cannot tell);
- the first column of the first row, when ``warning``/``critical`` are set, is judged "at or above"
  (a non-number then is UNKNOWN);
- ``Threads_connected`` at or above ``connections_warning`` (80 %) / ``connections_critical`` of
  ``max_connections`` → WARNING / CRITICAL.

Connection settings are either given (``host``/``port`` or ``socket``, ``user``, ``database``,
``password_file``: one line, mode 0600 or stricter, checked like the agent's token file) or read
from a Bitrix docroot (``settings_from: /home/bitrix/www``, :mod:`agent.bitrix.settings`), so the
password is in neither the agent's config, a report, /metrics, a log line nor any argv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Optional

from agent.bitrix.settings import PortalDbSettings, SettingsError
from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.configtypes import Count, Percent, Text
from agent.errors import SecretFileError, SpecError
from agent.mysqlclient import DbError, DbSettings, run_statements
from agent.report import PerfValue, Sample, Status
from agent.token import read_secret_file

STATUS_QUERY = "SHOW GLOBAL STATUS LIKE 'Threads_connected'"
MAX_CONNECTIONS_QUERY = "SELECT @@max_connections"

METRICS = {
    "boxkeeper_mysql_up": "1 when the mysql check could connect and run its query, else 0.",
    "boxkeeper_mysql_threads_connected": "MySQL's Threads_connected: open client connections.",
    "boxkeeper_mysql_max_connections": "MySQL's max_connections setting.",
    "boxkeeper_mysql_query_value":
        "The number the mysql check's query returned (first column of the first row).",
    "boxkeeper_mysql_query_duration_seconds": "Connect and query time of the mysql check's last run.",
}


class MysqlSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["mysql"] = "mysql"
    settings_from: Optional[Text] = None  # a Bitrix docroot whose settings files hold the connection
    host: Optional[Text] = None
    port: Count = Count(3306)
    socket: Optional[Text] = None
    user: Optional[Text] = None
    database: Optional[Text] = None
    password_file: Optional[Path] = None
    query: Text = Text("SELECT 1")
    warning: Optional[float] = None
    critical: Optional[float] = None
    connections_warning: Optional[Percent] = Percent(80)
    connections_critical: Optional[Percent] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [k for k in ("host", "user", "database", "password_file") if getattr(self, k) is not None]
        if self.settings_from is not None and given:
            raise SpecError(given[0], f"no {given[0]} with settings_from (the docroot's settings give it)")
        if self.settings_from is None and self.user is None:
            raise SpecError("settings_from", "a Bitrix docroot to read the connection from, or user with "
                                             "host or socket (and password_file)")
        if not 0 < self.port < 65536:
            raise SpecError("port", "a port 1-65535")
        for low, high in (("warning", "critical"), ("connections_warning", "connections_critical")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise SpecError(low, f"a value not above {high}")


def read_password(path: Path) -> str:
    """The first line of a password file (its line break removed; other spaces are the
    password's). Raises SecretFileError (missing, readable by group/others, not text)."""
    text = read_secret_file(path, what="password file", missing_hint=f"put the password there and run: "
                                                                      f"chmod 600 {path}")
    return text.split("\n", 1)[0].rstrip("\r")


def number(value: Any) -> Optional[float]:
    """A result cell as a float, or None (NULL, text that is not a number, NaN)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        result = float(value)
    elif isinstance(value, (bytes, str)):
        try:
            result = float(value.decode() if isinstance(value, bytes) else value)
        except (ValueError, UnicodeDecodeError):
            return None
    else:
        return None
    return result if math.isfinite(result) else None


@dataclass(frozen=True)
class DbTarget:
    """Where a check's connection settings come from: a Bitrix docroot, or given keys."""

    portal: Optional[PortalDbSettings]
    given: Optional[DbSettings]
    password_file: Optional[Path]

    def settings(self) -> DbSettings:
        """Raises SettingsError or SecretFileError."""
        if self.portal is not None:
            return self.portal.get()
        assert self.given is not None
        if self.password_file is None:
            return self.given
        return DbSettings(user=self.given.user, database=self.given.database, host=self.given.host,
                          port=self.given.port, socket=self.given.socket,
                          password=read_password(self.password_file), source=str(self.password_file))


def target_for(spec: MysqlSpec) -> DbTarget:
    if spec.settings_from is not None:
        return DbTarget(PortalDbSettings(spec.settings_from, spec.socket), None, None)
    given = DbSettings(user=spec.user or "", database=spec.database, host=spec.host or "localhost",
                       port=int(spec.port), socket=spec.socket)
    return DbTarget(None, given, spec.password_file)


@dataclass(frozen=True)
class MysqlCheck(FromSpec):
    spec: MysqlSpec
    target: DbTarget

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        labels = {"check": self.name}
        down = (Sample("boxkeeper_mysql_up", 0.0, "gauge", labels),)
        try:
            settings = self.target.settings()
        except (SettingsError, SecretFileError) as exc:
            return CheckResult(Status.UNKNOWN, str(exc))
        try:
            query, status, maxconn = run_statements(
                settings, (spec.query, STATUS_QUERY, MAX_CONNECTIONS_QUERY), timeout)
        except DbError as exc:
            if exc.kind == "query":
                return CheckResult(Status.UNKNOWN, f"{exc} (query: {spec.query})", samples=down)
            return CheckResult(Status.CRITICAL, str(exc), samples=down)
        seconds = query.seconds
        first = query.rows[0][0] if query.rows and query.rows[0] else None
        value = number(first)
        threads = number(status.rows[0][1]) if status.rows and len(status.rows[0]) > 1 else None
        limit = number(maxconn.rows[0][0]) if maxconn.rows and maxconn.rows[0] else None

        problems: list[str] = []
        result_status = Status.OK
        judged = spec.warning is not None or spec.critical is not None
        if judged and value is None:
            result_status = Status.UNKNOWN
            problems.append(f"the query returned {_shown(first)}, not a number")
        elif value is not None:
            if spec.critical is not None and value >= spec.critical:
                result_status = Status.CRITICAL
                problems.append(f"at or above {spec.critical:g}")
            elif spec.warning is not None and value >= spec.warning:
                result_status = Status.WARNING
                problems.append(f"at or above {spec.warning:g}")
        used = None
        if threads is not None and limit:
            used = 100.0 * threads / limit
            level = None
            if spec.connections_critical is not None and used >= spec.connections_critical:
                level, bound = Status.CRITICAL, spec.connections_critical
            elif spec.connections_warning is not None and used >= spec.connections_warning:
                level, bound = Status.WARNING, spec.connections_warning
            if level is not None:
                problems.append(f"connections at {used:.0f}% of max_connections (at or above {bound:g}%)")
                if level.severity > result_status.severity:
                    result_status = level

        summary = f"MySQL at {settings.where} answered in {seconds * 1000:.1f} ms: {_shown(first)}"
        if threads is not None and limit:
            summary += f"; {threads:.0f} of {limit:.0f} connections ({used:.0f}%)"
        if problems:
            summary += ": " + ", ".join(problems)
        perf = [PerfValue("time", round(seconds, 6), "s", min=0.0, max=float(timeout))]
        samples = [Sample("boxkeeper_mysql_up", 1.0, "gauge", labels),
                   Sample("boxkeeper_mysql_query_duration_seconds", round(seconds, 6), "gauge", labels)]
        if value is not None:
            perf.append(PerfValue("value", value, "", spec.warning, spec.critical))
            samples.append(Sample("boxkeeper_mysql_query_value", value, "gauge", labels))
        if threads is not None and limit:
            warn, crit = (None if pct is None else float(round(limit * pct / 100))
                          for pct in (spec.connections_warning, spec.connections_critical))
            perf.append(PerfValue("connections", threads, "", warn, crit, 0.0, limit))
            samples += [Sample("boxkeeper_mysql_threads_connected", threads, "gauge", labels),
                        Sample("boxkeeper_mysql_max_connections", limit, "gauge", labels)]
        return CheckResult(result_status, summary, tuple(perf), samples=tuple(samples))


def _shown(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def build(spec: MysqlSpec, resources: Resources) -> MysqlCheck:
    return MysqlCheck(spec, target_for(spec))
