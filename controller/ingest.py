"""Ingest: authenticate a pushed report, validate it, store it whole and exactly once.

Steps, each with its HTTP answer when it refuses:

1. ``Authorization: Bearer <agent token>`` must be an active token → else 401.
2. the body must be within ``max_report_bytes`` → else 413 (checked by the API before parsing).
3. the body must be a valid ``boxkeeper.report/1`` (msgspec, strict types, limits of
   ``agent.report``, finite numbers, Prometheus-valid sample names) → else 422 naming the field.
4. ``report.host`` must be the token's host → else 403.
5. one transaction: the host's state row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's
   ``BEGIN IMMEDIATE`` serialises writers), a report already stored with this (host, seq) makes the
   answer "duplicate" and nothing is written; otherwise the report row, the check states, the
   state-change history and the host state are written together, or not at all.

The stored body is the compact raw form of :mod:`controller.store.raw` (:func:`stored_body`): the
latest samples are kept once, in ``host_states.samples``. Raw reports are pruned after
``retention.raw_reports`` (:mod:`controller.retention`).

A report older than the newest one stored (``seq`` below ``last_seq``: it arrived late) is kept in
``reports`` but does not overwrite the newer check states, samples or facts.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import operator
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec
from pydantic import TypeAdapter
from sqlalchemy import JSON, Connection, CursorResult, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.report import (
    MAX_CHECKS,
    MAX_LABELS,
    MAX_NAME_LENGTH,
    MAX_SAMPLES,
    MAX_SUMMARY_LENGTH,
    Report,
)
from controller import inventory, report_wire, tokens
from controller.errors import AuthError, ForbiddenError, IngestError, InvalidReportError
from controller.store import raw
from controller.store.db import Database
from controller.store.models import AgentToken, CheckState, Client, Host, HostState, StateChange
from controller.store.models import Report as ReportRow

#: The report's JSON schema for /openapi.json (validation itself is msgspec's, below).
REPORT_ADAPTER: TypeAdapter[Report] = TypeAdapter(Report)
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Outcome = Literal["stored", "stored_late", "duplicate"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated report with its JSON columns already encoded: done before the write transaction,
    so that the database's write lock is held for SQL only."""

    report: report_wire.Report
    body: str
    facts: str
    samples: str
    perfdata: tuple[str, ...]  # per check, in report order


@dataclass(frozen=True)
class IngestResult:
    status: Outcome
    host: str
    seq: int
    state_changes: int = 0


def authenticate(db: Database, token: str | None) -> inventory.TokenOwner:
    if not token:
        raise AuthError("agent token required (Authorization: Bearer <token>)")
    with db.read_session() as session:
        owner = inventory.token_owner(session.connection(), token)
    if owner is None:
        raise AuthError("unknown or revoked agent token")
    return owner


_DECODER = msgspec.json.Decoder(report_wire.Report)
_AT = re.compile(r" - at `\$\.?(.*)`$")
_BYTE = re.compile(r"\(byte (\d+)\)")


def _decode_error(body: bytes, exc: Exception) -> InvalidReportError:
    """msgspec's message, with the field path (``checks[0].status``) or, for malformed JSON, the
    text around the offending byte (``NaN`` is not JSON: the snippet shows which field had it)."""
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        m = _AT.search(text)
        where = (m.group(1) or "(body)") if m else "(body)"
        what = text[: m.start()] if m else text
        return InvalidReportError(f"invalid report: {where}: {what}")
    text = str(exc) if isinstance(exc, msgspec.DecodeError) else "not UTF-8"
    m = _BYTE.search(text)
    if m:
        at = int(m.group(1))
        near = body[max(0, at - 40): at + 20].decode("utf-8", errors="replace")
        text += f" near {near!r}"
    return InvalidReportError(f"invalid report: Invalid JSON: {text}")


def parse_report(body: bytes) -> report_wire.Report:
    """Validate a report body; InvalidReportError's message names what is wrong and where.

    Types are checked strictly by msgspec against the dataclasses of :mod:`agent.report`, mirrored
    as Structs in :mod:`controller.report_wire` (no coercion: ``"1"`` is not an int, ``1`` is not a
    bool); the limits below are checked after.
    The OpenAPI schema of the same dataclasses comes from pydantic (:data:`REPORT_ADAPTER`).
    """
    if b"\\u0000" in body:
        raise InvalidReportError("invalid report: NUL characters (\\u0000) are not allowed in any string")
    try:
        report = _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _decode_error(body, exc) from None
    _check_limits(report)
    return report


def _bad(where: str, what: str) -> InvalidReportError:
    return InvalidReportError(f"invalid report: {where}: {what}")


_isfinite = math.isfinite


def _finite(where: str, value: float | None) -> None:
    if value is not None and not _isfinite(value):
        raise _bad(where, "must be a finite number")


def _name(where: str, value: str, limit: int = MAX_NAME_LENGTH) -> None:
    if not value or len(value) > limit:
        raise _bad(where, f"must be 1 to {limit} characters")


# Names already found valid (bounded): the same few hundred sample names and label keys arrive in
# every report of every host, so each is checked once per process instead of once per sample.
_GOOD_NAMES: set[str] = set()
_GOOD_LABELS: set[str] = set()
_MAX_CACHED = 100_000


def _all_finite(r: report_wire.Report) -> bool:
    """Fast path: the sum of every number is finite only if each is (NaN and inf propagate); a
    finite overflow of the sum only sends us to the exact, per-field check."""
    total = r.sent_at + r.push_interval_seconds + (r.facts.boot_time or 0.0)
    total += sum(s.value for s in r.samples)
    for c in r.checks:
        total += c.duration_seconds + (c.last_change or 0.0)
        for p in c.perfdata:
            total += p.value + (p.warn or 0.0) + (p.crit or 0.0) + (p.min or 0.0) + (p.max or 0.0)
    return _isfinite(total)


def _check_limits(r: report_wire.Report) -> None:
    _name("host", r.host)
    _name("agent_version", r.agent_version)
    if r.seq < 0 or r.seq > 2**63 - 1:
        raise _bad("seq", "must be between 0 and 2^63-1")
    if r.push_interval_seconds <= 0:
        raise _bad("push_interval_seconds", "must be greater than 0")
    if len(r.checks) > MAX_CHECKS:
        raise _bad("checks", f"at most {MAX_CHECKS} checks")
    if len(r.samples) > MAX_SAMPLES:
        raise _bad("samples", f"at most {MAX_SAMPLES} samples")
    _name("facts.hostname", r.facts.hostname, MAX_SUMMARY_LENGTH)
    if not _all_finite(r):
        _check_finite(r)
    if not _items_ok(r):
        _check_items(r)


def _items_ok(r: report_wire.Report) -> bool:
    """Fast path of :func:`_check_items`: True when every check and sample is within the limits and
    every sample and label name was seen valid before (whole-report min/max and set operations in C
    instead of a Python loop per item). False means "look closer", not "invalid"."""
    checks, samples = r.checks, r.samples
    if checks:
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            return False
        for values in (names, [c.type for c in checks]):
            if min(map(len, values)) < 1 or max(map(len, values)) > MAX_NAME_LENGTH:
                return False
        if max(len(c.summary) for c in checks) > MAX_SUMMARY_LENGTH:
            return False
        attempts = [c.attempt for c in checks] + [c.max_attempts for c in checks]
        if min(attempts) < 0 or max(attempts) > 1000:
            return False
        perf = [c.perfdata for c in checks]
        if max(map(len, perf)) > MAX_LABELS * 4:
            return False
        labels = [p.label for items in perf for p in items]
        if labels and (min(map(len, labels)) < 1 or max(map(len, labels)) > MAX_NAME_LENGTH):
            return False
    if samples:
        if not {s.name for s in samples} <= _GOOD_NAMES:
            return False
        label_sets = [s.labels for s in samples]
        if max(map(len, label_sets)) > MAX_LABELS:
            return False
        if not set().union(*label_sets) <= _GOOD_LABELS:
            return False
        values = [v for labels in label_sets for v in labels.values()]
        if values and max(map(len, values)) > MAX_SUMMARY_LENGTH:
            return False
    return True


def _check_items(r: report_wire.Report) -> None:
    """Each check and sample, one by one: raises naming the first offending item (and remembers
    the valid sample and label names for :func:`_items_ok`)."""
    names: set[str] = set()
    for i, c in enumerate(r.checks):
        _name(f"checks[{i}].name", c.name)
        _name(f"checks[{i}].type", c.type)
        if c.name in names:
            raise _bad(f"checks[{i}].name", f"duplicate check name {c.name[:100]!r}")
        names.add(c.name)
        if len(c.summary) > MAX_SUMMARY_LENGTH:
            raise _bad(f"checks[{i}].summary", f"at most {MAX_SUMMARY_LENGTH} characters")
        if not (0 <= c.attempt <= 1000 and 0 <= c.max_attempts <= 1000):
            raise _bad(f"checks[{i}].attempt", "attempt and max_attempts must be 0..1000")
        if len(c.perfdata) > MAX_LABELS * 4:
            raise _bad(f"checks[{i}].perfdata", f"at most {MAX_LABELS * 4} values")
        for j, p in enumerate(c.perfdata):
            _name(f"checks[{i}].perfdata[{j}].label", p.label)
    good_names, good_labels = _GOOD_NAMES, _GOOD_LABELS
    for i, s in enumerate(r.samples):
        if s.name not in good_names:
            if len(s.name) > MAX_NAME_LENGTH or not METRIC_NAME_RE.fullmatch(s.name):
                raise _bad(f"samples[{i}].name", "must be a Prometheus metric name [a-zA-Z_:][a-zA-Z0-9_:]*")
            if len(good_names) < _MAX_CACHED:
                good_names.add(s.name)
        labels = s.labels
        if labels:
            if len(labels) > MAX_LABELS:
                raise _bad(f"samples[{i}].labels", f"at most {MAX_LABELS} labels")
            for key, value in labels.items():
                if key not in good_labels:
                    if len(key) > MAX_NAME_LENGTH or not LABEL_NAME_RE.fullmatch(key) or key.startswith("__"):
                        raise _bad(f"samples[{i}].labels", f"{key[:100]!r} is not a valid label name")
                    if len(good_labels) < _MAX_CACHED:
                        good_labels.add(key)
                if len(value) > MAX_SUMMARY_LENGTH:
                    raise _bad(f"samples[{i}].labels.{key}", f"at most {MAX_SUMMARY_LENGTH} characters")


def _check_finite(r: report_wire.Report) -> None:
    _finite("sent_at", r.sent_at)
    _finite("push_interval_seconds", r.push_interval_seconds)
    _finite("facts.boot_time", r.facts.boot_time)
    for i, c in enumerate(r.checks):
        _finite(f"checks[{i}].duration_seconds", c.duration_seconds)
        _finite(f"checks[{i}].last_change", c.last_change)
        for j, p in enumerate(c.perfdata):
            for key in ("value", "warn", "crit", "min", "max"):
                _finite(f"checks[{i}].perfdata[{j}].{key}", getattr(p, key))
    for i, s in enumerate(r.samples):
        _finite(f"samples[{i}].value", s.value)


#: How the ingest statements run: "raw" (compiled once, executed with ``exec_driver_sql``: no
#: per-row bind processing, JSON columns passed already encoded) or "core" (``Connection.execute``
#: of the same Core statements, SQLAlchemy's own path: the reference of the differential test).
_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("ingest_statement_path", default="raw")


@contextlib.contextmanager
def core_statements() -> Iterator[None]:
    """Run the ingest statements through SQLAlchemy Core's ``Connection.execute`` in this block
    (the reference the raw path is tested against; also to measure what the raw path saves)."""
    token = _PATH.set("core")
    try:
        yield
    finally:
        _PATH.reset(token)


class _Raw:
    """A Core statement compiled once per dialect and executed with ``Connection.exec_driver_sql``
    (public API): no per-call compilation and no per-row bind processing — it matters for the
    ``executemany`` of a batch's check rows — with the JSON columns passed already encoded.
    SQLAlchemy wraps DB-API errors as usual (``IntegrityError`` …). For a positional paramstyle
    (SQLite's qmark) each row's dict becomes a tuple in the order the compiler gives
    (``ExpandedState.positiontup``, Core's documented internals): sqlite3 binds qmark tuples in
    its executemany faster than named parameters."""

    def __init__(self, stmt: Any, many: _Unnest | None = None) -> None:
        self.stmt = stmt
        self.many = many
        self._compiled: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]] | None]] = {}
        table = getattr(stmt, "table", None)
        self._json = frozenset(c.name for c in table.columns if isinstance(c.type, JSON)) \
            if isinstance(table, Table) else frozenset()

    def _sql(self, conn: Connection) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]] | None]:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.stmt.compile(dialect=dialect)
            order: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
            if dialect.positional:
                names = compiled.construct_expanded_state({k: None for k in compiled.params}).positiontup
                if names:
                    order = operator.itemgetter(*names) if len(names) > 1 \
                        else (lambda row, name=names[0]: (row[name],))
            found = self._compiled[dialect.name] = (compiled.string, order)
        return found

    def run(self, conn: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> CursorResult[Any]:
        """Execute (one row, or ``executemany`` for a list)."""
        if _PATH.get() == "core":
            return conn.execute(self.stmt, self._decoded(params))
        if self.many is not None and isinstance(params, list) and conn.dialect.name == "postgresql":
            return self.many.run(conn, params)
        sql, order = self._sql(conn)
        if order is None:
            return conn.exec_driver_sql(sql, params)
        rows = list(map(order, params)) if isinstance(params, list) else order(params)
        return conn.exec_driver_sql(sql, rows)

    def _decoded(self, params: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """The rows with JSON columns as values again (Core encodes them itself)."""
        if not self._json:
            return params
        rows = params if isinstance(params, list) else [params]
        decoded = [{k: json.loads(v) if k in self._json else v for k, v in row.items()} for row in rows]
        return decoded if isinstance(params, list) else decoded[0]


class _Unnest:
    """PostgreSQL: the ``executemany`` of an INSERT or UPDATE as ONE statement over arrays, one per
    column (``unnest``), instead of one execution per row: psycopg's executemany sends every row as
    its own Bind/Execute, which the server runs as a statement of its own (a batch of 16 reports of
    20 checks was ~360 executions). Same rows written, same errors (a unique violation is still an
    IntegrityError); the differential test holds it to Core's executemany.

    The arrays go in binary (``%b``): psycopg's text form of an array escapes every quote of the
    JSON columns in Python, which cost more than the statements it saved.

    ``keys`` (UPDATE only): parameter name → key column of the WHERE; ``columns``: the columns set
    (INSERT: inserted), each taken from the parameter of the same name.
    """

    def __init__(self, table: Table, columns: tuple[str, ...], keys: dict[str, str] | None = None) -> None:
        self.table = table
        self.columns = columns
        self.keys = keys or {}
        self.params = (*self.keys, *columns)
        self._sql: str | None = None

    def sql(self, conn: Connection) -> str:
        if self._sql is None:  # table and column names from the metadata, quoted; values are parameters
            dialect = conn.dialect
            q = dialect.identifier_preparer.quote
            names = [*self.keys.values(), *self.columns]
            arrays = ", ".join(f"%b::{self.table.c[n].type.compile(dialect=dialect)}[]" for n in names)
            table = q(self.table.name)
            if self.keys:
                alias = ", ".join(q(n) for n in names)
                sets = ", ".join(f"{q(c)} = v.{q(c)}" for c in self.columns)
                where = " AND ".join(f"{table}.{q(k)} = v.{q(k)}" for k in self.keys.values())
                self._sql = f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({alias}) WHERE {where}"  # noqa: S608
            else:
                self._sql = (f"INSERT INTO {table} ({', '.join(q(c) for c in self.columns)}) "  # noqa: S608
                             f"SELECT * FROM unnest({arrays})")
        return self._sql

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> CursorResult[Any]:
        arrays = tuple([row[name] for row in rows] for name in self.params)
        return conn.exec_driver_sql(self.sql(conn), arrays)


_ENCODE = msgspec.json.Encoder().encode


def _json(value: Any) -> str:
    """JSON text of dicts, lists and the report's dataclasses (encoded field by field, in C)."""
    return _ENCODE(value).decode("utf-8")


_T_STATE = cast(Table, HostState.__table__)
_T_REPORTS = cast(Table, ReportRow.__table__)
_T_CHECKS = cast(Table, CheckState.__table__)
_T_CHANGES = cast(Table, StateChange.__table__)

def _values(*names: str) -> dict[str, Any]:
    return {name: bindparam(name) for name in names}


_CHECK_COLUMNS = ("type", "status", "hard", "flapping", "summary", "attempt", "max_attempts",
                  "duration_seconds", "perfdata", "last_change", "updated_at", "report_seq")
_NEW_STATE = _Raw(insert(_T_STATE).values(_values("host_id", "reports_total", "facts", "samples")),
                  _Unnest(_T_STATE, ("host_id", "reports_total", "facts", "samples")))
_SEEN = _Raw(select(_T_REPORTS.c.id).where(
    _T_REPORTS.c.host_id == bindparam("host_id"), _T_REPORTS.c.seq == bindparam("seq"),
))
_REPORT_COLUMNS = ("host_id", "seq", "received_at", "sent_at", "body")
_ADD_REPORT = _Raw(insert(_T_REPORTS).values(_values(*_REPORT_COLUMNS)), _Unnest(_T_REPORTS, _REPORT_COLUMNS))
_ADD_CHECK = _Raw(insert(_T_CHECKS).values(_values("host_id", "name", *_CHECK_COLUMNS)),
                  _Unnest(_T_CHECKS, ("host_id", "name", *_CHECK_COLUMNS)))
_UPDATE_CHECK = _Raw(
    update(_T_CHECKS)
    .where(_T_CHECKS.c.host_id == bindparam("b_host_id"), _T_CHECKS.c.name == bindparam("b_name"))
    .values(_values(*_CHECK_COLUMNS)),
    _Unnest(_T_CHECKS, _CHECK_COLUMNS, {"b_host_id": "host_id", "b_name": "name"}),
)
_CHANGE_COLUMNS = ("host_id", "check_name", "at", "report_seq", "old_status", "new_status", "old_hard",
                   "new_hard", "summary")
_ADD_CHANGE = _Raw(insert(_T_CHANGES).values(_values(*_CHANGE_COLUMNS)), _Unnest(_T_CHANGES, _CHANGE_COLUMNS))
_TOUCH_COLUMNS = ("last_report_at", "reports_total")
_TOUCH_STATE = _Raw(
    update(_T_STATE).where(_T_STATE.c.host_id == bindparam("b_host_id")).values(_values(*_TOUCH_COLUMNS)),
    _Unnest(_T_STATE, _TOUCH_COLUMNS, {"b_host_id": "host_id"}),
)
_NEWEST_COLUMNS = ("last_report_at", "reports_total", "last_seq", "last_sent_at", "push_interval_seconds",
                   "agent_version", "facts", "samples")
_NEWEST_STATE = _Raw(
    update(_T_STATE).where(_T_STATE.c.host_id == bindparam("b_host_id")).values(_values(*_NEWEST_COLUMNS)),
    _Unnest(_T_STATE, _NEWEST_COLUMNS, {"b_host_id": "host_id"}),
)


def stored_body(report: report_wire.Report) -> str:
    """What ``reports.body`` keeps: the compact raw form of :mod:`controller.store.raw` (the push
    interval, each check's name, status and hard flag, and the three figures the host page draws).
    The latest samples live once, in
    ``host_states.samples`` (for /metrics; Prometheus keeps their history), the latest check
    details in ``check_states`` and each change with its summary in ``state_changes``."""
    return raw.encode(report.push_interval_seconds,
                      [raw.StoredCheck(c.name, int(c.status), c.hard) for c in report.checks],
                      raw.gauges(report.samples))


def prepared(report: report_wire.Report, body: bytes) -> Prepared:
    return Prepared(
        report, stored_body(report), _json(report.facts), _json(report.samples),
        tuple(_json(c.perfdata) for c in report.checks),
    )


def store_report(
    db: Database, owner: inventory.TokenOwner, report: Report, body: bytes, *,
    clock: Callable[[], float] = time.time,
) -> IngestResult:
    """Store one validated report in one transaction (see the module docstring)."""
    try:
        with db.transaction() as conn:
            outcomes: list[BatchOutcome | None] = [None]
            wire = msgspec.convert(report, report_wire.Report, from_attributes=True)
            _store_hosts(conn, [(0, owner, prepared(wire, body))], [owner.host_id], clock(), outcomes)
            return cast(IngestResult, outcomes[0])
    except IntegrityError as exc:
        return _raced(db, owner.host_id, owner.host, report.seq, exc)


@dataclass
class _Writes:
    """Rows to write, collected first and then written with one ``executemany`` per statement."""

    check_inserts: list[dict[str, Any]] = field(default_factory=list)
    check_updates: list[dict[str, Any]] = field(default_factory=list)
    check_deletes: list[tuple[int, list[str]]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        if self.check_inserts:
            _ADD_CHECK.run(conn, self.check_inserts)
        if self.check_updates:
            _UPDATE_CHECK.run(conn, self.check_updates)
        for host_id, names in self.check_deletes:
            conn.execute(delete(_T_CHECKS).where(_T_CHECKS.c.host_id == host_id, _T_CHECKS.c.name.in_(names)))
        if self.changes:
            _ADD_CHANGE.run(conn, self.changes)


def _plan_checks(host_id: int, ready: Prepared, now: float, existing: dict[str, tuple[int, Any]],
                 out: _Writes) -> int:
    """The check-state rows of one newest report, given the host's stored (status, hard) per check;
    returns the number of state changes (history rows)."""
    report = ready.report
    seq = report.seq
    changes = 0
    for c, perfdata in zip(report.checks, ready.perfdata, strict=True):
        status = int(c.status)
        row = {
            "type": c.type, "status": status, "hard": c.hard, "flapping": c.flapping, "summary": c.summary,
            "attempt": c.attempt, "max_attempts": c.max_attempts, "duration_seconds": c.duration_seconds,
            "perfdata": perfdata,
            "last_change": c.last_change, "updated_at": now, "report_seq": seq,
        }
        before = existing.pop(c.name, None)
        if before is None:
            row["host_id"], row["name"] = host_id, c.name
            out.check_inserts.append(row)
        else:
            row["b_host_id"], row["b_name"] = host_id, c.name
            out.check_updates.append(row)
        if before is None or before[0] != status or bool(before[1]) != c.hard:
            changes += 1
            out.changes.append({
                "host_id": host_id, "check_name": c.name, "at": now, "report_seq": seq,
                "old_status": before[0] if before else None, "new_status": status,
                "old_hard": bool(before[1]) if before else None, "new_hard": c.hard, "summary": c.summary,
            })
    if existing:  # checks no longer in the agent's config
        out.check_deletes.append((host_id, list(existing)))
    return changes


def _newest_state(host_id: int, ready: Prepared, now: float, total: int) -> dict[str, Any]:
    report = ready.report
    return {
        "b_host_id": host_id, "last_report_at": now, "reports_total": total, "last_seq": report.seq,
        "last_sent_at": report.sent_at, "push_interval_seconds": report.push_interval_seconds,
        "agent_version": report.agent_version, "facts": ready.facts, "samples": ready.samples,
    }


def _raced(db: Database, host_id: int, host: str, seq: int, error: IntegrityError) -> IngestResult:
    """After an IntegrityError: "duplicate" only if another push of this (host, seq) won the race
    (the unique constraint), otherwise the error was something else: re-raise it."""
    with db.read_session() as session:
        stored = _SEEN.run(session.connection(), {"host_id": host_id, "seq": seq}).fetchone()
    if stored is None:
        raise error
    return IngestResult("duplicate", host, seq)


def store_in(conn: Connection, token: str, parsed: Prepared | InvalidReportError, now: float) -> IngestResult:
    """Authenticate and store one parsed report inside the caller's transaction ``conn``.

    Raises AuthError (401), then the report's InvalidReportError (422), then ForbiddenError (403),
    each before anything of this report is written; a database error propagates (the caller rolls
    back). Used by :func:`ingest` (one transaction per report) and by the group-commit writer
    (several reports in one transaction, see :mod:`controller.ingest_writer`).
    """
    outcome = store_batch(conn, [(token, parsed)], now)[0]
    if isinstance(outcome, IngestError):
        raise outcome
    return outcome


class _Read:
    """A batch read: hand-written SQL whose ``{hosts}`` / ``{seqs}`` / ``{digests}`` become as many
    placeholders as values (only placeholders are filled in, never values) and ``{lock}`` ``FOR
    UPDATE`` on PostgreSQL, run with ``exec_driver_sql``; ``core`` is the same read as a Core
    statement (expanding ``IN`` parameters), run instead under :func:`core_statements`."""

    def __init__(self, template: str, core: Any) -> None:
        self.template = template
        self.core = core
        # PostgreSQL: each ``IN ({name})`` as ``= ANY(%b)`` with the values as one binary array: the
        # same SQL text whatever the batch size, so psycopg prepares it once (after 5 uses) and the
        # server stops parsing and planning it for every batch.
        self.pg = re.sub(r"IN \(\{(\w+)\}\)", "= ANY(%b)", template).replace("{lock}", " FOR UPDATE")

    def rows(self, conn: Connection, **values: list[Any]) -> list[tuple[Any, ...]]:
        postgresql = conn.dialect.name == "postgresql"
        if _PATH.get() == "core":
            stmt = self.core.with_for_update() if postgresql and "{lock}" in self.template else self.core
            return [tuple(row) for row in conn.execute(stmt, values)]
        if postgresql:
            arrays = tuple(map(list, values.values()))
            return [tuple(row) for row in conn.exec_driver_sql(self.pg, arrays).all()]
        mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
        sql = self.template.format(lock=" FOR UPDATE" if postgresql else "",
                                   **{k: ", ".join([mark] * len(v)) for k, v in values.items()})
        args = tuple(value for group in values.values() for value in group)
        return [tuple(row) for row in conn.exec_driver_sql(sql, args).all()]


#: The batch reads, each one statement for the whole batch (host rows locked in host_id order).
_OWNERS = _Read(
    "SELECT t.token_sha256, h.id, h.name, c.name FROM agent_tokens t JOIN hosts h ON t.host_id = h.id"
    " JOIN clients c ON h.client_id = c.id WHERE t.revoked_at IS NULL AND t.token_sha256 IN ({digests})",
    select(AgentToken.token_sha256, Host.id, Host.name, Client.name)
    .join(Host, AgentToken.host_id == Host.id).join(Client, Host.client_id == Client.id)
    .where(AgentToken.revoked_at.is_(None),
           AgentToken.token_sha256.in_(bindparam("digests", expanding=True))),
)
_STATES = _Read(
    "SELECT host_id, last_seq, reports_total FROM host_states WHERE host_id IN ({hosts})"
    " ORDER BY host_id{lock}",
    select(_T_STATE.c.host_id, _T_STATE.c.last_seq, _T_STATE.c.reports_total)
    .where(_T_STATE.c.host_id.in_(bindparam("hosts", expanding=True))).order_by(_T_STATE.c.host_id),
)
_SEEN_IN = _Read(
    "SELECT host_id, seq FROM reports WHERE host_id IN ({hosts}) AND seq IN ({seqs})",
    select(_T_REPORTS.c.host_id, _T_REPORTS.c.seq).where(
        _T_REPORTS.c.host_id.in_(bindparam("hosts", expanding=True)),
        _T_REPORTS.c.seq.in_(bindparam("seqs", expanding=True))),
)
_CHECKS = _Read(
    "SELECT host_id, name, status, hard FROM check_states WHERE host_id IN ({hosts})",
    select(_T_CHECKS.c.host_id, _T_CHECKS.c.name, _T_CHECKS.c.status, _T_CHECKS.c.hard).where(
        _T_CHECKS.c.host_id.in_(bindparam("hosts", expanding=True))),
)


BatchOutcome = IngestResult | IngestError


def store_batch(conn: Connection, jobs: list[tuple[str, Prepared | InvalidReportError]],
                now: float) -> list[BatchOutcome]:
    """Authenticate and store several pushes inside the caller's transaction, with a few statements
    for the whole batch instead of several per report (the SQLite write lock is held for less).

    Per report the outcome is what :func:`store_in` gives it alone: the refused ones (401, 422,
    403, in that order) write nothing; a (host, seq) already stored is "duplicate"; an older seq
    is "stored_late". Two reports of one host in a batch are stored one after the other (in two
    rounds). A database error propagates (the caller rolls back the batch).
    """
    digests = [tokens.hash_token(token) for token, _ in jobs]
    owners = {
        row[0]: inventory.TokenOwner(row[1], row[2], row[3])
        for row in _OWNERS.rows(conn, digests=sorted(set(digests)))
    }
    outcomes: list[BatchOutcome | None] = [None] * len(jobs)
    valid: list[tuple[int, inventory.TokenOwner, Prepared]] = []
    for i, ((_, parsed), digest) in enumerate(zip(jobs, digests, strict=True)):
        owner = owners.get(digest)
        if owner is None:
            outcomes[i] = AuthError("unknown or revoked agent token")
        elif isinstance(parsed, InvalidReportError):
            outcomes[i] = parsed
        elif parsed.report.host != owner.host:
            host = parsed.report.host
            outcomes[i] = ForbiddenError(f"this token belongs to host {owner.host!r}, not {host[:100]!r}")
        else:
            valid.append((i, owner, parsed))
    # Rounds of distinct hosts: the n-th report of every host goes in round n, so one host's
    # reports are stored in the order they came, each seeing the state the previous one left.
    rounds: list[list[tuple[int, inventory.TokenOwner, Prepared]]] = []
    per_host: dict[int, int] = {}
    for item in valid:
        n = per_host[item[1].host_id] = per_host.get(item[1].host_id, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    for group in rounds:
        _store_hosts(conn, group, sorted(owner.host_id for _, owner, _ in group), now, outcomes)
    assert all(outcome is not None for outcome in outcomes)
    return cast(list[BatchOutcome], outcomes)


def _store_hosts(conn: Connection, valid: list[tuple[int, inventory.TokenOwner, Prepared]],
                 host_ids: list[int], now: float, outcomes: list[BatchOutcome | None]) -> None:
    """:func:`store_batch` for reports of distinct hosts: read once, decide per report, write once.
    On PostgreSQL the host rows are locked in host_id order (two batches never deadlock)."""
    states = {row[0]: (row[1], row[2] or 0) for row in _STATES.rows(conn, hosts=host_ids)}
    missing = [host_id for host_id in host_ids if host_id not in states]
    if missing:
        _NEW_STATE.run(conn, [{"host_id": host_id, "reports_total": 0, "facts": "{}", "samples": "[]"}
                              for host_id in missing])
        states.update({host_id: (None, 0) for host_id in missing})
    seqs = sorted({ready.report.seq for _, _, ready in valid})
    seen = set(_SEEN_IN.rows(conn, hosts=host_ids, seqs=seqs))
    existing: dict[int, dict[str, tuple[int, Any]]] = {host_id: {} for host_id in host_ids}
    for host_id, name, status, hard in _CHECKS.rows(conn, hosts=host_ids):
        existing[host_id][name] = (status, hard)
    out = _Writes()
    reports: list[dict[str, Any]] = []
    touched: list[dict[str, Any]] = []
    newest: list[dict[str, Any]] = []
    for i, owner, ready in valid:
        host_id, seq = owner.host_id, ready.report.seq
        if (host_id, seq) in seen:
            outcomes[i] = IngestResult("duplicate", owner.host, seq)
            continue
        last_seq, total = states[host_id]
        reports.append({"host_id": host_id, "seq": seq, "received_at": now, "sent_at": ready.report.sent_at,
                        "body": ready.body})
        if last_seq is not None and seq < last_seq:
            touched.append({"b_host_id": host_id, "last_report_at": now, "reports_total": total + 1})
            outcomes[i] = IngestResult("stored_late", owner.host, seq)
            continue
        changes = _plan_checks(host_id, ready, now, existing[host_id], out)
        newest.append(_newest_state(host_id, ready, now, total + 1))
        outcomes[i] = IngestResult("stored", owner.host, seq, changes)
    if reports:
        _ADD_REPORT.run(conn, reports)
    out.flush(conn)
    if touched:
        _TOUCH_STATE.run(conn, touched)
    if newest:
        _NEWEST_STATE.run(conn, newest)


def prepare(body: bytes) -> Prepared | InvalidReportError:
    """Validate and encode a body (no database): the report ready to store, or why it is invalid."""
    try:
        report = parse_report(body)
    except InvalidReportError as exc:
        return exc
    return prepared(report, body)


def ingest(
    db: Database, token: str | None, body: bytes, *, clock: Callable[[], float] = time.time,
) -> IngestResult:
    """Authenticate, validate and store one pushed report in its own transaction (raises
    IngestError subclasses).

    The body is parsed before the database is touched; the token lookup, the host check and the
    storage share one transaction. A request with a bad token gets 401 whatever its body.
    """
    if not token:
        raise AuthError("agent token required (Authorization: Bearer <token>)")
    parsed = prepare(body)
    try:
        with db.transaction() as conn:
            return store_in(conn, token, parsed, clock())
    except IntegrityError as exc:
        if isinstance(parsed, InvalidReportError):
            raise
        return raced(db, token, parsed.report, exc)


def raced(db: Database, token: str, report: report_wire.Report, error: IntegrityError) -> IngestResult:
    """After an IntegrityError: "duplicate" only if another push of this (host, seq) won the race
    (the unique constraint), otherwise the error was something else: re-raise it."""
    with db.read_session() as session:
        owner = inventory.token_owner(session.connection(), token)
    if owner is None:
        raise error
    return _raced(db, owner.host_id, owner.host, report.seq, error)
