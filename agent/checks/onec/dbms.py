"""``onec_dbms`` check: the 1C infobase's PostgreSQL — does it accept connections, how old is its
oldest open transaction, how big is the infobase's database?

Each run: ``pg_isready`` (anything but "accepting connections" → CRITICAL), then one ``psql``
statement (:mod:`agent.checks.onec.pgcli`) reading, over every client backend of the server, the oldest
``xact_start`` in ``pg_stat_activity`` (not the check's own), and ``pg_database_size`` of
``database``:

- oldest transaction at or above ``transaction_warning`` (15 min) / ``transaction_critical`` (1 h)
  → WARNING / CRITICAL: a transaction held that long holds its locks (1C sessions wait on them)
  and keeps VACUUM from cleaning up [thresholds unverified: set them to what the box's long
  closing-of-the-month runs need];
- database size at or above ``size_warning`` / ``size_critical`` (unset) → WARNING / CRITICAL;
- psql cannot connect or log in → CRITICAL; the statement fails → UNKNOWN.

Privileges: a login role that may connect to ``database``; to see other roles' transactions it
needs ``pg_read_all_stats`` (``GRANT pg_monitor TO boxkeeper``) — without it the summary says that
only its own sessions were seen. The password is in ``passfile`` (a PostgreSQL password file,
mode 0600), never in the config, argv or a report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.checks.bitrix.portal import ago, span
from agent.checks.onec.pgcli import PgError, PgServer
from agent.configtypes import Count, Duration, Size, Text
from agent.errors import SecretFileError, SpecError
from agent.report import PerfValue, Sample, Status, worst

METRICS = {
    "boxkeeper_onec_pg_up":
        "1 when pg_isready says the 1C infobase's PostgreSQL accepts connections, else 0.",
    "boxkeeper_onec_pg_oldest_transaction_seconds":
        "Age of the oldest open transaction of any client of the 1C infobase's PostgreSQL (0: none).",
    "boxkeeper_onec_pg_database_size_bytes": "Size of the 1C infobase's PostgreSQL database.",
}

QUERY = (
    "WITH t AS (SELECT pid, coalesce(datname, '') AS db, coalesce(state, '') AS state,"
    " extract(epoch FROM clock_timestamp() - xact_start) AS age FROM pg_stat_activity"
    " WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    " ORDER BY xact_start LIMIT 1)"
    " SELECT coalesce((SELECT age FROM t), 0),"
    " coalesce((SELECT pid || ' ' || db || ' ' || state FROM t), ''),"
    " pg_database_size(current_database()), pg_has_role('pg_read_all_stats', 'USAGE')"
)


class OnecDbmsSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["onec_dbms"] = "onec_dbms"
    database: Text
    user: Text
    host: Text = Text("localhost")
    port: Count = Count(5432)
    passfile: Optional[Path] = None
    bindir: Optional[Text] = None
    transaction_warning: Optional[Duration] = Duration(15 * 60.0)
    transaction_critical: Optional[Duration] = Duration(3600.0)
    size_warning: Optional[Size] = None
    size_critical: Optional[Size] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.port < 65536:
            raise SpecError("port", "a port 1-65535")
        for low, high in (("transaction_warning", "transaction_critical"), ("size_warning", "size_critical")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise SpecError(low, f"a value not above {high}")


def _judge(value: float, warning: Optional[float], critical: Optional[float]) -> Status:
    if critical is not None and value >= critical:
        return Status.CRITICAL
    if warning is not None and value >= warning:
        return Status.WARNING
    return Status.OK


def _gib(n: float) -> str:
    return f"{n / 1073741824:.2f} GiB" if n >= 1073741824 else f"{n / 1048576:.1f} MiB"


@dataclass(frozen=True)
class OnecDbmsCheck(FromSpec):
    spec: OnecDbmsSpec
    server: PgServer

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        labels = {"check": self.name, "database": str(spec.database)}
        down = (Sample("boxkeeper_onec_pg_up", 0.0, "gauge", labels),)
        end = time.monotonic() + timeout * 0.9
        code, meaning = self.server.isready(max(0.5, end - time.monotonic()))
        if code == 3:
            return CheckResult(Status.UNKNOWN, f"pg_isready: {meaning}", samples=down)
        if code != 0:
            status = Status.UNKNOWN if code is None and meaning.startswith("cannot run") else Status.CRITICAL
            return CheckResult(status, f"PostgreSQL at {self.server.where}: {meaning}", samples=down)
        try:
            rows = self.server.query(QUERY, max(0.5, end - time.monotonic()))
            age_text, oldest, size_text, privileged = rows[0]
            age, size = max(0.0, float(age_text)), float(size_text)
        except SecretFileError as exc:
            return CheckResult(Status.UNKNOWN, str(exc), samples=down)
        except PgError as exc:
            status = Status.CRITICAL if exc.kind == "connect" else Status.UNKNOWN
            return CheckResult(status, str(exc), samples=down)
        except (IndexError, ValueError):
            return CheckResult(Status.UNKNOWN, "psql's answer to the check's statement is not what it "
                                               "expects", samples=down)
        age_status = _judge(age, spec.transaction_warning, spec.transaction_critical)
        size_status = _judge(size, _f(spec.size_warning), _f(spec.size_critical))
        parts = [f"PostgreSQL at {self.server.where} accepts connections",
                 f"{spec.database} {_gib(size)}"]
        if oldest:
            pid, db, *state = oldest.split(" ", 2)
            txn = (f"oldest transaction {ago(age)} (pid {pid}, {db or 'no database'}, "
                   f"{' '.join(state) or '?'})")
            if age_status is not Status.OK:
                critical = age_status is Status.CRITICAL
                limit = spec.transaction_critical if critical else spec.transaction_warning
                txn += f", at or above {span(limit or 0)}"
            parts.append(txn)
        else:
            parts.append("no open transaction")
        if size_status is not Status.OK:
            size_limit = spec.size_critical if size_status is Status.CRITICAL else spec.size_warning
            parts[1] += f", at or above {_gib(size_limit or 0)}"
        if privileged.strip() not in ("t", "true"):
            parts.append(f"{spec.user} sees only its own sessions' transactions "
                         f"(GRANT pg_monitor TO {spec.user})")
        perf = (PerfValue("oldest_transaction", round(age, 3), "s", _f(spec.transaction_warning),
                          _f(spec.transaction_critical), 0.0),
                PerfValue("size", size, "B", _f(spec.size_warning), _f(spec.size_critical), 0.0))
        samples = (Sample("boxkeeper_onec_pg_up", 1.0, "gauge", labels),
                   Sample("boxkeeper_onec_pg_oldest_transaction_seconds", round(age, 3), "gauge", labels),
                   Sample("boxkeeper_onec_pg_database_size_bytes", size, "gauge", labels))
        return CheckResult(worst([age_status, size_status]), "; ".join(parts), perf, samples=samples)


def _f(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


def build(spec: OnecDbmsSpec, resources: Resources) -> OnecDbmsCheck:
    server = PgServer(str(spec.bindir or ""), str(spec.host), int(spec.port), str(spec.user),
                      str(spec.database), spec.passfile)
    return OnecDbmsCheck(spec, server)
