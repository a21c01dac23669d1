"""Retention: old reports become hourly summaries, on SQLite and on a real PostgreSQL.

Every expected number below is computed by hand from the report times (controller clock) and the
module's rule: a report stands for its checks' statuses until the host's next report when that
comes within two push intervals (the test reports say 15 s), else for one push interval.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from agent.report import to_json
from controller import ingest, inventory
from controller.config import parse
from controller.retention import HOUR, Pruner, RetentionSettings, prune_batch, prune_once
from controller.store.db import Database
from controller.store.history import CheckHour
from controller.store.models import HostState, Report, StateChange
from tests.controller.reports import body, make_report

CFG = parse({"clients": [{"name": "acme", "hosts": [{"name": "cfg-host"}]}]})
H0 = 1_764_302_400  # an hour's start (a multiple of 3600)
DAY = 86400.0
SETTINGS = RetentionSettings(raw_reports=DAY, summaries=30 * DAY, batch=10)


# -- pruning on a real database -------------------------------------------------------------------

pytestmark = pytest.mark.integration


@pytest.fixture
def web1(db: Database) -> inventory.TokenOwner:
    token = inventory.add_host(db, "web1", "acme", cfg=CFG)
    return ingest.authenticate(db, token)


def _push(db: Database, owner: inventory.TokenOwner, seq: int, at: float, **kw: Any) -> None:
    report = make_report(owner.host, seq, checks=2, **kw)
    result = ingest.store_report(db, owner, report, body(report), clock=lambda: at)
    assert result.status == "stored"


def _prune_all(db: Database, cfg: RetentionSettings, now: float) -> int:
    """Batches until nothing is due (bounded)."""
    for done in range(10_000):
        if not prune_once(db, cfg, now):
            return done
    raise AssertionError("pruning never finished")


def _hours(db: Database) -> dict[tuple[int, str], tuple[int, int, int, int, int]]:
    with db.read_session() as s:
        return {
            (r.hour, r.check_name): (r.ok_seconds, r.warning_seconds, r.critical_seconds, r.unknown_seconds,
                                     r.changes)
            for r in s.scalars(select(CheckHour))
        }


def _count(db: Database, model: Any) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_old_reports_become_hourly_durations_and_change_counts(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    h1, h2 = H0 + HOUR, H0 + 2 * HOUR
    _push(db, web1, 1, H0 + 3590, statuses={"check_0": 0, "check_1": 2})
    _push(db, web1, 2, h1 + 5, statuses={"check_0": 1, "check_1": 2})  # 15 s later: seq 1 spans the hour
    _push(db, web1, 3, h1 + 20, statuses={"check_0": 0, "check_1": 0})
    _push(db, web1, 4, h1 + 100, status=3)  # 80 s later (> 2 × 15 s): seq 3 counts 15 s, then nothing
    _push(db, web1, 5, h2 + 10, status=0)  # newer than the cutoff: stays raw
    now = h2 + DAY  # cutoff = h2

    assert _prune_all(db, SETTINGS, now) == 2  # one batch of reports, one of state changes

    assert _hours(db) == {
        # (ok, warning, critical, unknown, status changes)
        (H0, "check_0"): (10, 0, 0, 0, 0),  # seq 1 from 3590 to the hour: 10 s
        (H0, "check_1"): (0, 0, 10, 0, 0),  # (its first appearance is no change)
        (h1, "check_0"): (5 + 15, 15, 0, 15, 3),  # seq1 5 s, seq2 15 s warning, seq3 15 s, seq4 15 s
        (h1, "check_1"): (15, 0, 5 + 15, 15, 2),  # changes: 2→0 (seq 3), 0→3 (seq 4)
    }
    with db.read_session() as s:
        assert [r.seq for r in s.scalars(select(Report))] == [5]
        assert [(c.check_name, c.new_status) for c in s.scalars(select(StateChange))] \
            == [("check_0", 0), ("check_1", 0)]  # seq 5's changes, newer than the cutoff
        state = s.get(HostState, web1.host_id)
        assert state is not None and state.last_seq == 5  # the host's current state is untouched


def test_summaries_survive_later_pruning_and_expire_after_their_own_retention(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    for seq in range(1, 26):  # every 15 s from H0+3500: three batches of at most 10
        _push(db, web1, seq, H0 + 3500 + 15 * (seq - 1))
    _push(db, web1, 26, H0 + 3500 + 15 * 25 + DAY)  # a day later: the last old one counts 15 s
    assert _prune_all(db, SETTINGS, H0 + 3 * HOUR + DAY) == 3 + 1  # 3 of reports, 1 of changes
    expected = {
        (H0, "check_0"): (100, 0, 0, 0, 0), (H0, "check_1"): (100, 0, 0, 0, 0),  # 3500 → 3600
        (H0 + HOUR, "check_0"): (275, 0, 0, 0, 0), (H0 + HOUR, "check_1"): (275, 0, 0, 0, 0),  # 25 × 15 − 100
    }
    assert _hours(db) == expected
    assert _count(db, Report) == 1

    # More reports later, pruned later still: the old summary rows are kept as they were.
    later = H0 + 10 * DAY
    _push(db, web1, 27, later, statuses={"check_1": 2})
    _push(db, web1, 28, later + 15)
    _push(db, web1, 29, later + 30 + DAY)
    _prune_all(db, SETTINGS, later + 30 + DAY)
    hours = _hours(db)
    assert {k: v for k, v in hours.items() if k[0] <= H0 + HOUR} == expected
    base = later - later % HOUR
    # seq 26 (a day after 25, 9 days before 27): 15 s OK; seq 27: 15 s with check_1 CRITICAL; seq 28: 15 s
    assert hours[(base, "check_1")] == (15, 0, 15, 0, 2)  # 0→2 and back 2→0

    # Past the summaries' own retention (30 days here), they are deleted; newer ones stay (and seq 29,
    # now old too, is summarised: its hour is a day after seq 27's).
    _prune_all(db, SETTINGS, H0 + 2 * HOUR + 30 * DAY + 1)
    assert {k[0] for k in _hours(db)} == {H0 + DAY + HOUR, base, base + DAY}
    assert _hours(db)[(base, "check_1")] == (15, 0, 15, 0, 2)


def test_a_host_that_went_silent_is_not_counted_ok_for_the_silence(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    _push(db, web1, 1, H0 + 100)
    _push(db, web1, 2, H0 + 700)  # 10 minutes of silence between
    _prune_all(db, SETTINGS, H0 + 2 * DAY)  # seq 2 is the last: one push interval
    assert _hours(db)[(H0, "check_0")] == (15 + 15, 0, 0, 0, 0)


def test_retention_off_keeps_every_report(db: Database, web1: inventory.TokenOwner) -> None:
    _push(db, web1, 1, H0)
    assert not prune_once(db, RetentionSettings(enabled=False), H0 + 100 * DAY)
    assert _count(db, Report) == 1


def test_a_batch_reports_what_it_removed(db: Database, web1: inventory.TokenOwner) -> None:
    for seq in range(1, 13):
        _push(db, web1, seq, H0 + 15 * seq)
    batch = prune_batch(db, SETTINGS, H0 + 2 * DAY)
    assert batch is not None and batch.kind == "reports" and batch.rows == 10  # retention.batch
    assert _count(db, Report) == 2


def test_the_pruner_thread_prunes_until_nothing_is_due_and_stops(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    for seq in range(1, 31):
        _push(db, web1, seq, H0 + 15 * seq)
    stop = threading.Event()
    cfg = RetentionSettings(raw_reports=DAY, batch=10, pause=0.01, interval=0.05)
    pruner = Pruner(db, cfg, clock=lambda: H0 + 3 * DAY)
    thread = threading.Thread(target=pruner.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _count(db, Report) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert _count(db, Report) == 0 and pruner.batches >= 3 and pruner.errors == 0
    assert sum(v[0] for v in _hours(db).values()) == 2 * 30 * 15  # two checks, 30 reports of 15 s


def test_batches_shrink_when_a_write_is_slow_and_grow_back_when_it_is_quick(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    """A batch whose write took longer than retention.max_write halves the next one (down to 10
    rows); a quick one (under half of it) lets it grow back by a quarter, up to retention.batch."""
    for seq in range(1, 201):
        _push(db, web1, seq, H0 + 15 * seq)
    slow = RetentionSettings(raw_reports=DAY, batch=80, max_write=1e-9)  # every write is "too slow"
    pruner = Pruner(db, slow, clock=lambda: H0 + 3 * DAY)
    rows = []
    for _ in range(5):
        assert pruner.step() and pruner.last is not None
        rows.append(pruner.last.rows)
    assert rows == [80, 40, 20, 10, 10]
    quick = RetentionSettings(raw_reports=DAY, batch=80, max_write=3600.0)  # every write is quick
    pruner.cfg = quick
    for _ in range(3):
        assert pruner.step() and pruner.last is not None
        rows.append(pruner.last.rows)
    assert rows[5:] == [10, 12, 15]
    assert _count(db, Report) == 200 - sum(rows)


def test_the_pruner_does_nothing_where_its_gate_says_no(db: Database, web1: inventory.TokenOwner) -> None:
    _push(db, web1, 1, H0)
    pruner = Pruner(db, SETTINGS, clock=lambda: H0 + 3 * DAY, gate=lambda: False)
    assert not pruner.step()
    assert _count(db, Report) == 1


def test_stored_bodies_are_the_compact_form_and_the_fleet_keeps_the_latest_samples(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    _push(db, web1, 1, H0, samples=40, statuses={"check_0": 2, "check_1": 0}, hard=False)
    with db.read_session() as s:
        [(seq, stored)] = s.execute(select(Report.seq, Report.body)).all()
        samples = s.scalar(select(HostState.samples).where(HostState.host_id == web1.host_id))
    assert json.loads(stored) == {
        "schema": "boxkeeper.stored/1", "push_interval_seconds": 15.0,
        "checks": [{"name": "check_0", "status": 2, "hard": False},
                   {"name": "check_1", "status": 0, "hard": False}],
        "gauges": {},  # these test samples hold no load, memory or filesystem figure
    }
    assert seq == 1
    assert samples is not None and len(samples) == 40


def test_rows_of_the_older_full_form_are_summarised_like_compact_ones(
    db: Database, web1: inventory.TokenOwner,
) -> None:
    """A database upgraded in place holds raw reports of both forms until the old ones age out:
    the older controller kept the whole validated report without samples (``boxkeeper.report/1``)."""
    _push(db, web1, 1, H0 + 10, statuses={"check_0": 0, "check_1": 2})
    _push(db, web1, 2, H0 + 25, statuses={"check_0": 1, "check_1": 2})
    old = make_report("web1", 3, checks=2, statuses={"check_0": 1, "check_1": 0})
    full = to_json(dataclasses.replace(old, samples=())).decode()
    with db.transaction() as conn:  # as the previous controller stored it
        conn.execute(insert(Report).values(host_id=web1.host_id, seq=3, received_at=H0 + 40, sent_at=1.0,
                                           body=full))
    assert json.loads(full)["schema"] == "boxkeeper.report/1" and "perfdata" in full
    _prune_all(db, SETTINGS, H0 + 2 * DAY)
    assert _count(db, Report) == 0
    # seq 1 stands until seq 2 (15 s), seq 2 until seq 3 (15 s), seq 3 (last) for one interval (15 s)
    assert _hours(db) == {(H0, "check_0"): (15, 30, 0, 0, 1), (H0, "check_1"): (15, 0, 30, 0, 0)}
