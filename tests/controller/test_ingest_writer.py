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
