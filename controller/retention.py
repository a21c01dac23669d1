"""Retention: raw reports are kept for ``retention.raw_reports``, then summarised per host, check and
hour (:mod:`controller.store.history`), and the summaries kept for ``retention.summaries``.

One call of :func:`prune_once` does one bounded batch of the first of these that has work, and
returns whether it did (call again soon) or found nothing due (sleep):

1. **reports** older than ``now - raw_reports``: one host's oldest ``batch`` reports are read (in a
   read transaction: SQLite readers do not take the write lock), their time is added to
   ``check_hours``, and in one short write transaction the sums are upserted and the reports deleted.
2. **state_changes** older than the same cutoff: counted per hour into ``check_hours.changes``, then
   deleted (the API's host history then reaches back ``raw_reports``).
3. **check_hours** older than ``now - summaries``: deleted.

How a report's time is counted: a report received at ``t`` stands for its checks' statuses until the
host's next report, when that comes within twice the push interval the report states; otherwise (the
agent went silent, the host's last report) for one push interval and no longer, so a silent agent is
not counted as OK. Times are rounded to whole seconds (controller clock) and split at hour
boundaries, so consecutive reports tile the hours exactly. A status change is counted when the
check's status differs from the one before (not its first appearance, not a soft→hard change).

Incidents, their timelines, silences and workflow runs are not pruned (they are small and the
monthly report reads them); the outbox bounds its own rows (:mod:`controller.alerting.outbox`).

:class:`Pruner` is the loop ``serve`` runs (the monitor's ``boxkeeper-retention`` thread): a batch,
a pause of ``retention.pause`` so ingest gets the writer, again until nothing is due, then a check
every ``retention.interval``. ``gate`` lets a caller run it only where it should (one controller).
Batches start at ``retention.batch`` rows and adapt (:func:`next_size`) so that a batch's write
transaction stays under ``retention.max_write`` (25 ms: half the 50 ms the writer may be held, so
that a slower batch than the last still fits; ``bench/db_size_bench.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import msgspec
from pydantic import Field, Strict, model_validator
from sqlalchemy import Connection, Table, and_, delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from controller.configkit import Bool, ConfigModel, Duration, Expect, Invalid
from controller.store import raw
from controller.store.db import Database
from controller.store.history import CheckHour
from controller.store.models import Host, StateChange
from controller.store.models import Report as ReportRow

log = logging.getLogger("boxkeeper.retention")

HOUR = 3600
DAY = 86400.0
#: a report stands for its statuses until the next one if that comes within this many push intervals
GAP_FACTOR = 2.0
SECONDS = ("ok_seconds", "warning_seconds", "critical_seconds", "unknown_seconds")

MIN_BATCH = 10
BatchRows = Annotated[int, Strict(), Field(ge=MIN_BATCH, le=100_000), Expect("an integer from 10 to 100000")]


class RetentionSettings(ConfigModel):
    """The ``retention:`` section of the controller config."""

    enabled: Bool = True  # false: keep every report forever (the behaviour before retention)
    raw_reports: Duration = 7 * DAY
    summaries: Duration = 400 * DAY
    batch: BatchRows = 100  # rows per batch at most, and the first batch's size (module docstring)
    max_write: Duration = 0.025  # a batch's write transaction should take less: batches adapt to it
    pause: Duration = 0.05  # between two batches: ingest gets the writer
    interval: Duration = 60.0  # when nothing was due: look again after this long

    @model_validator(mode="after")
    def _spans(self) -> RetentionSettings:
        if self.raw_reports < HOUR:
            raise Invalid("raw_reports", "a duration of at least 1h (the summaries are hourly)",
                          self.raw_reports)
        if self.summaries <= self.raw_reports:
            raise Invalid("summaries", f"a duration longer than raw_reports ({self.raw_reports:g} s)",
                          self.summaries)
        return self


# -- summarising (pure) -----------------------------------------------------------------------------


Key = tuple[int, str]  # (hour, check name)


def hour_parts(start: int, end: int) -> Iterable[tuple[int, int]]:
    """``[start, end)`` split at hour boundaries: (hour start, seconds in that hour)."""
    while start < end:
        hour = start - start % HOUR
        upto = min(end, hour + HOUR)
        yield hour, upto - start
        start = upto


def summarise_reports(reports: Sequence[tuple[float, str | bytes]], next_at: float | None
                      ) -> dict[Key, list[int]]:
    """Seconds per (hour, check) in each status (OK, WARNING, CRITICAL, UNKNOWN) of one host's
    reports ``(received_at, body)`` in time order; ``next_at`` is the host's next report after them
    (None: none yet). See the module docstring for how a report's time is counted."""
    out: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i, (at, body) in enumerate(reports):
        try:
            stored = raw.DECODER.decode(body)
        except msgspec.DecodeError as exc:  # not written by this controller's ingest
            log.warning("a stored report could not be read for the summary (%s): skipped", exc)
            continue
        following = reports[i + 1][0] if i + 1 < len(reports) else next_at
        interval = stored.push_interval_seconds
        gap = None if following is None else following - at
        span = gap if gap is not None and 0 <= gap <= GAP_FACTOR * interval else interval
        for hour, seconds in hour_parts(round(at), round(at + span)):
            for check in stored.checks:
                if 0 <= check.status <= 3:
                    out[(hour, check.name)][check.status] += seconds
    return out


def count_changes(changes: Iterable[tuple[str, float, int | None, int]]) -> dict[Key, int]:
    """Status changes per (hour, check) of ``(check, at, old_status, new_status)`` history rows."""
    out: dict[Key, int] = defaultdict(int)
    for check, at, old, new in changes:
        if old is not None and old != new:
            out[(int(at) - int(at) % HOUR, check)] += 1
    return out


# -- one batch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """What one :func:`prune_batch` did: which table, how many rows it removed, and how long its
    write transaction took (the time the SQLite writer was held)."""

    kind: Literal["reports", "state_changes", "summaries"]
    rows: int
    write_seconds: float


class PruneRaceError(RuntimeError):
    """Rows read for a batch were gone at its write (another pruner ran): the batch was rolled back."""


_HOURS = cast(Table, CheckHour.__table__)
_KEY = ("host_id", "hour", "check_name")


def _add(conn: Connection, host_id: int, seconds: dict[Key, list[int]], changes: dict[Key, int]) -> None:
    """Add to the summary rows (insert, or add to the existing row)."""
    rows: list[dict[str, Any]] = []
    for key in sorted(set(seconds) | set(changes)):
        values = seconds.get(key, [0, 0, 0, 0])
        row: dict[str, Any] = {"host_id": host_id, "hour": key[0], "check_name": key[1],
                               "changes": changes.get(key, 0)}
        row.update(zip(SECONDS, values, strict=True))
        rows.append(row)
    if not rows:
        return
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(_HOURS)
    excluded = stmt.excluded
    upsert = stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={name: _HOURS.c[name] + excluded[name] for name in (*SECONDS, "changes")},
    )
    conn.execute(upsert, rows)


def _delete(conn: Connection, table: Any, ids: list[int]) -> None:
    removed = conn.execute(delete(table).where(table.id.in_(ids))).rowcount
    if removed != len(ids):
        raise PruneRaceError(f"{len(ids) - removed} of {len(ids)} rows were already gone")


def _fold_reports(db: Database, batch: int, cutoff: float) -> Batch | None:
    R = ReportRow
    with db.read_session() as session:
        conn = session.connection()
        host_id = conn.execute(
            select(R.host_id).where(R.received_at < cutoff).order_by(R.received_at).limit(1)
        ).scalar()
        if host_id is None:
            return None
        rows = conn.execute(
            select(R.id, R.received_at, R.body).where(R.host_id == host_id, R.received_at < cutoff)
            .order_by(R.received_at, R.id).limit(batch)
        ).all()
        last = rows[-1]
        later = or_(R.received_at > last.received_at,
                    and_(R.received_at == last.received_at, R.id > last.id))
        next_at = conn.execute(
            select(R.received_at).where(R.host_id == host_id, later).order_by(R.received_at, R.id).limit(1)
        ).scalar()
    seconds = summarise_reports([(row.received_at, row.body) for row in rows], next_at)
    with db.transaction() as conn:
        started = time.perf_counter()  # the writer is ours from here (waiting for it is not counted)
        _add(conn, host_id, seconds, {})
        _delete(conn, R, [row.id for row in rows])
    return Batch("reports", len(rows), time.perf_counter() - started)


def _fold_changes(db: Database, batch: int, cutoff: float) -> Batch | None:
    S = StateChange
    with db.read_session() as session:
        conn = session.connection()
        host_id = conn.execute(
            select(Host.id).where(exists().where(S.host_id == Host.id, S.at < cutoff)).limit(1)
        ).scalar()
        if host_id is None:
            return None
        rows = conn.execute(
            select(S.id, S.check_name, S.at, S.old_status, S.new_status)
            .where(S.host_id == host_id, S.at < cutoff).order_by(S.at, S.id).limit(batch)
        ).all()
    changes = count_changes((row.check_name, row.at, row.old_status, row.new_status) for row in rows)
    with db.transaction() as conn:
        started = time.perf_counter()
        _add(conn, host_id, {}, changes)
        _delete(conn, S, [row.id for row in rows])
    return Batch("state_changes", len(rows), time.perf_counter() - started)


def _expire_summaries(db: Database, batch: int, cutoff: float) -> Batch | None:
    C = CheckHour
    with db.read_session() as session:
        conn = session.connection()
        host_id = conn.execute(
            select(Host.id).where(exists().where(C.host_id == Host.id, C.hour < cutoff)).limit(1)
        ).scalar()
        if host_id is None:
            return None
        hours = conn.execute(
            select(C.hour).where(C.host_id == host_id, C.hour < cutoff).order_by(C.hour).limit(batch)
        ).scalars().all()
    with db.transaction() as conn:  # whole hours: at most batch + one hour's checks
        started = time.perf_counter()
        removed = conn.execute(
            delete(_HOURS).where(_HOURS.c.host_id == host_id, _HOURS.c.hour < cutoff,
                                 _HOURS.c.hour <= hours[-1])
        ).rowcount
    return Batch("summaries", removed, time.perf_counter() - started)


def prune_batch(db: Database, cfg: RetentionSettings, now: float, size: int | None = None) -> Batch | None:
    """One bounded batch (``size`` rows, default ``cfg.batch``) of the first step with work (module
    docstring); None: nothing was due."""
    if not cfg.enabled:
        return None
    size = size or cfg.batch
    cutoff = now - cfg.raw_reports
    return (_fold_reports(db, size, cutoff) or _fold_changes(db, size, cutoff)
            or _expire_summaries(db, size, now - cfg.summaries))


def next_size(size: int, held: float, cfg: RetentionSettings) -> int:
    """The next batch's size after one that held the writer ``held`` seconds: halved when it took
    longer than ``cfg.max_write``, a quarter larger (up to ``cfg.batch``) when it took less than half
    of it — the chunk-time rule of Percona's pt-archiver / pt-online-schema-change, so that a busy
    disk or CPU shrinks the batches instead of stretching the writer's hold."""
    if held > cfg.max_write:
        return max(MIN_BATCH, size // 2)
    if held < cfg.max_write / 2:
        return min(cfg.batch, size + max(1, size // 4))
    return size


def prune_once(db: Database, cfg: RetentionSettings, now: float) -> bool:
    """One bounded batch; True when it did one (more may be left: call again after a pause),
    False when nothing was due."""
    return prune_batch(db, cfg, now) is not None


class Pruner:
    """The pruning loop: ``run(stop)`` until ``stop`` is set (``serve`` runs it in a thread)."""

    def __init__(self, db: Database, cfg: RetentionSettings, *, clock: Callable[[], float] = time.time,
                 gate: Callable[[], bool] = lambda: True) -> None:
        self.db = db
        self.cfg = cfg
        self.clock = clock
        self.gate = gate  # e.g. "this controller is the leader"
        self.batches = 0
        self.errors = 0
        self.longest_write = 0.0  # seconds: the longest write transaction of a batch so far
        self.size = cfg.batch  # rows in the next batch (adapted: next_size)
        self.last: Batch | None = None  # the last batch done

    def step(self) -> bool:
        """One batch if the gate allows; True when one was done."""
        if not self.gate():
            return False
        try:
            batch = prune_batch(self.db, self.cfg, self.clock(), self.size)
        except Exception:
            self.errors += 1
            log.exception("pruning batch failed; retrying in %.0f s", self.cfg.interval)
            return False
        if batch is None:
            return False
        self.batches += 1
        self.last = batch
        self.longest_write = max(self.longest_write, batch.write_seconds)
        log.debug("pruned %d %s in %.1f ms", batch.rows, batch.kind, batch.write_seconds * 1000)
        self.size = next_size(self.size, batch.write_seconds, self.cfg)
        return True

    def run(self, stop: threading.Event) -> None:
        if not self.cfg.enabled:
            return
        while not stop.is_set():
            stop.wait(self.cfg.pause if self.step() else self.cfg.interval)
