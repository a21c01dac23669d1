"""Group commit (controller.ingest_writer), on SQLite and on a real PostgreSQL: the reports of
concurrent pushes share a transaction, yet each keeps its own answer and nothing partial is stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from controller import inventory
from controller.config import parse
from controller.errors import AuthError, ForbiddenError, InvalidReportError
from controller.ingest import IngestResult
from controller.ingest_writer import IngestWriter
from controller.store.db import Database
from controller.store.models import CheckState, Report
from tests.controller.reports import body, make_report
from tests.controller.test_store import _drop_failing_trigger, _install_failing_trigger

pytestmark = pytest.mark.integration

CFG = parse({"clients": [{"name": "acme"}]})


def _count(db: Database, model: Any) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


async def _push_all(
    writer: IngestWriter, pushes: list[tuple[str, bytes]],
) -> list[IngestResult | BaseException]:
    """Push concurrently; the writer is held off until all are queued, so they form one batch."""
    with writer._cond:
        tasks = [asyncio.ensure_future(writer.submit(t, b)) for t, b in pushes]
        await asyncio.sleep(0)
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_one_batch_answers_each_push_on_its_own(db: Database) -> None:
    web1 = inventory.add_host(db, "web1", "acme", cfg=CFG)
    web2 = inventory.add_host(db, "web2", "acme", cfg=CFG)
    pushes = [
        (web1, body(make_report("web1", 1))),
        (web2, body(make_report("web2", 1))),
        (web1, body(make_report("web1", 1))),  # the same (host, seq) again, in the same batch
        (web1, body(make_report("web2", 2))),  # another host's token
        ("no-such-token", body(make_report("web1", 3))),
        (web2, b'{"schema": "boxkeeper.report/1"}'),  # not a valid report
        (web1, body(make_report("web1", 2))),
    ]
    writer = IngestWriter(db, max_batch=len(pushes))
    answers = asyncio.run(_push_all(writer, pushes))
    assert writer.batches == 1 and writer.batched_reports == len(pushes)  # one transaction
    assert [a.status if isinstance(a, IngestResult) else type(a) for a in answers] == [
        "stored", "stored", "duplicate", ForbiddenError, AuthError, InvalidReportError, "stored",
    ]
    with db.read_session() as s:
        stored = sorted((r.host_id, r.seq) for r in s.scalars(select(Report)))
    assert len(stored) == 3 and len(set(stored)) == 3


def test_a_database_error_in_one_report_fails_it_alone_and_stores_nothing_of_it(db: Database) -> None:
    web1 = inventory.add_host(db, "web1", "acme", cfg=CFG)
    web2 = inventory.add_host(db, "web2", "acme", cfg=CFG)
    writer = IngestWriter(db, max_batch=8)
    first = asyncio.run(_push_all(writer, [(web1, body(make_report("web1", 1, statuses={"check_0": 0}))),
                                           (web2, body(make_report("web2", 1)))]))
    assert [a.status for a in first if isinstance(a, IngestResult)] == ["stored", "stored"]
    _install_failing_trigger(db)  # any new history row fails: web1's status change below
    try:
        answers = asyncio.run(_push_all(writer, [
            (web2, body(make_report("web2", 2))),
            (web1, body(make_report("web1", 2, statuses={"check_0": 2}))),
            (web2, body(make_report("web2", 3))),
        ]))
    finally:
        _drop_failing_trigger(db)
    assert isinstance(answers[0], IngestResult) and answers[0].status == "stored"
    assert isinstance(answers[1], Exception) and "injected failure" in str(answers[1])
    assert isinstance(answers[2], IngestResult) and answers[2].status == "stored"
    assert _count(db, Report) == 4  # web1: seq 1; web2: 1, 2, 3
    with db.read_session() as s:
        owner = inventory.token_owner(s.connection(), web1)
        assert owner is not None
        web1_checks = [(c.status, c.report_seq) for c in
                       s.scalars(select(CheckState).where(CheckState.host_id == owner.host_id))]
    assert web1_checks and set(web1_checks) == {(0, 1)}


def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Everything ingest writes, by host name (ids differ between two databases)."""
    from sqlalchemy import text

    queries = {
        "reports": "SELECT h.name, r.seq, r.received_at, r.body FROM reports r"
                   " JOIN hosts h ON h.id = r.host_id",
        "checks": "SELECT h.name, c.name, c.type, c.status, c.hard, c.summary, c.perfdata, c.updated_at,"
                  " c.report_seq FROM check_states c JOIN hosts h ON h.id = c.host_id",
        "history": "SELECT h.name, s.check_name, s.at, s.report_seq, s.old_status, s.new_status, s.old_hard,"
                   " s.new_hard, s.summary FROM state_changes s JOIN hosts h ON h.id = s.host_id",
        "states": "SELECT h.name, s.last_report_at, s.last_seq, s.reports_total, s.facts, s.samples"
                  " FROM host_states s JOIN hosts h ON h.id = s.host_id",
    }
    with db.read_session() as s:
        return {k: sorted(tuple(str(v) for v in row) for row in s.execute(text(q)))
                for k, q in queries.items()}


def test_a_batch_of_distinct_hosts_stores_exactly_what_one_by_one_stores(
    db: Database, tmp_path: Any, request: pytest.FixtureRequest,
) -> None:
    """The batch path (reads and writes shared by the reports of a batch) against the one-report-
    per-transaction path, round by round: new hosts, status changes, a removed check, a late report,
    a replayed one, a refused one. Both databases must end up identical."""
    from controller.ingest import ingest

    if db.is_sqlite:
        single = Database(f"sqlite:///{tmp_path}/single.db")
    else:  # a second database on the same PostgreSQL server
        single = Database(request.getfixturevalue("postgres_server").new_database())
    single.upgrade()
    hosts = [f"web{i}" for i in range(5)]
    batch_tokens = {h: inventory.add_host(db, h, "acme", cfg=CFG) for h in hosts}
    single_tokens = {h: inventory.add_host(single, h, "acme", cfg=CFG) for h in hosts}
    rounds = [
        {h: make_report(h, 1, sent_at=1.0) for h in hosts},
        {"web0": make_report("web0", 2, statuses={"check_1": 2}, sent_at=2.0),
         "web1": make_report("web1", 2, checks=2, sent_at=2.0),  # check_2 removed
         "web2": make_report("web2", 1, sent_at=1.0),  # replayed
         "web3": make_report("web3", 5, hard=False, sent_at=5.0)},
        {"web0": make_report("web0", 3, statuses={"check_1": 0}, sent_at=3.0),
         "web3": make_report("web3", 4, sent_at=4.0),  # late: older than 5
         "web4": make_report("web0", 9, sent_at=9.0)},  # web4's token, web0's report: refused
    ]
    try:
        for n, reports in enumerate(rounds):
            clock = 1000.0 + n
            writer = IngestWriter(db, max_batch=len(reports), clock=lambda c=clock: c)
            pushes = [(batch_tokens[h], body(r)) for h, r in reports.items()]
            answers = asyncio.run(_push_all(writer, pushes))
            assert writer.batches == 1
            expected: list[Any] = []
            for h, r in reports.items():
                try:
                    expected.append(ingest(single, single_tokens[h], body(r), clock=lambda c=clock: c).status)
                except Exception as exc:
                    expected.append(type(exc))
            got = [a.status if isinstance(a, IngestResult) else type(a) for a in answers]
            assert got == expected
        assert got == ["stored", "stored_late", ForbiddenError]
        assert _snapshot(db) == _snapshot(single)
        assert len(_snapshot(db)["history"]) > len(hosts) * 3  # the status changes were recorded
    finally:
        single.dispose()
