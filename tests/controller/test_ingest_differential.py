"""The ingest's raw statement path against SQLAlchemy Core, the library it stands in for.

The same pushes — new hosts, changed and removed checks, a duplicate, a late report, two reports
of one host in one batch, refused ones — are stored twice, on SQLite and on PostgreSQL: once as
``serve`` stores them (statements compiled once and run with ``exec_driver_sql``, JSON passed
already encoded) and once through ``Connection.execute`` (``core_statements()``). Every stored
row, read back through the ORM, must be the same, and so must every answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from controller import inventory
from controller.config import parse
from controller.errors import IngestError
from controller.ingest import _ADD_REPORT, core_statements, ingest, prepare, store_batch
from controller.store.db import Database
from controller.store.models import CheckState, HostState, Report, StateChange
from tests.controller.reports import make_report

pytestmark = pytest.mark.integration

TABLES = (Report, CheckState, StateChange, HostState)



@pytest.fixture
def two_databases(database_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[Database, Database]]:
    if database_url.startswith("sqlite"):
        second_url = database_url.replace("boxkeeper.db", "core.db")
    else:
        second_url = request.getfixturevalue("postgres_server").new_database()
    cfg = parse({"clients": [{"name": "acme", "hosts": [{"name": "web1"}, {"name": "web2"}]}]}, "c.yaml")
    made = []
    for url in (database_url, second_url):
        db = Database(url)
        db.upgrade()
        inventory.sync_config(cfg, db, clock=lambda: 1.0)
        made.append(db)
    try:
        yield made[0], made[1]
    finally:
        for db in made:
            db.dispose()


def _pushes(db: Database, path: Callable[[], AbstractContextManager[None]]) -> list[Any]:
    """The scripted pushes; the answers (or errors) in order."""
    tokens = {host: inventory.add_host(db, host, "acme", clock=lambda: 1.0) for host in ("web1", "web2")}
    answers: list[Any] = []

    def batch(now: float, *jobs: tuple[str, bytes]) -> None:
        with path(), db.transaction() as conn:
            outcomes = store_batch(conn, [(token, prepare(body)) for token, body in jobs], now)
        answers.append([o if not isinstance(o, IngestError) else (type(o).__name__, o.detail)
                        for o in outcomes])

    def body(host: str, seq: int, **kw: Any) -> bytes:
        from agent.report import to_json

        return to_json(make_report(host, seq, sent_at=1000.0 + seq, **kw))

    batch(10.0, (tokens["web1"], body("web1", 1, checks=3)), (tokens["web2"], body("web2", 1, checks=2)))
    batch(20.0, (tokens["web1"], body("web1", 2, checks=2, statuses={"check_0": 2})),  # check_2 removed
          # one host twice in one batch
          (tokens["web1"], body("web1", 3, checks=4, statuses={"check_0": 2, "check_3": 1})),
          (tokens["web2"], body("web2", 1, checks=2)))  # duplicate
    batch(30.0, (tokens["web2"], body("web2", 5, checks=2, hard=False, status=2)),
          (tokens["web1"], body("web2", 6)),  # another host's token: 403
          ("bka_not-a-token", body("web1", 9)),  # 401
          (tokens["web2"], b'{"schema": "boxkeeper.report/1"}'))  # 422
    batch(40.0, (tokens["web2"], body("web2", 4, checks=1)))  # late: kept, states not overwritten
    with path():
        answers.append(ingest(db, tokens["web1"], body("web1", 7, checks=4, samples=50), clock=lambda: 50.0))
    return answers


def _rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    dump: dict[str, list[dict[str, Any]]] = {}
    with db.read_session() as s:
        for model in TABLES:
            keys = [c.key for c in inspect(model).column_attrs]
            order = list(inspect(model).primary_key)
            dump[model.__tablename__] = [
                {k: getattr(row, k) for k in keys} for row in s.scalars(select(model).order_by(*order))
            ]
    return dump


def test_the_raw_path_stores_what_core_stores(two_databases: tuple[Database, Database]) -> None:
    raw_db, core_db = two_databases
    raw_answers = _pushes(raw_db, nullcontext)
    core_answers = _pushes(core_db, core_statements)
    assert raw_answers == core_answers
    raw_rows, core_rows = _rows(raw_db), _rows(core_db)
    assert raw_rows == core_rows
    assert len(raw_rows["reports"]) == 7 and len(raw_rows["state_changes"]) >= 6  # the script did run
    web1 = next(r for r in raw_rows["host_states"] if r["last_seq"] == 7)
    assert len(web1["samples"]) == 50 and web1["facts"]["os"] == "Debian 12"  # JSON decoded alike


@pytest.mark.parametrize("path", ["raw", "core"])
def test_database_errors_surface_as_sqlalchemy_errors(two_databases: tuple[Database, Database],
                                                      path: str) -> None:
    db = two_databases[0]
    row = {"host_id": 1, "seq": 1, "received_at": 1.0, "sent_at": 1.0, "body": "{}"}
    with db.transaction() as conn:
        _ADD_REPORT.run(conn, row)
    with pytest.raises(IntegrityError), core_statements() if path == "core" else nullcontext(), \
            db.transaction() as conn:
        _ADD_REPORT.run(conn, [row])  # (host, seq) again
