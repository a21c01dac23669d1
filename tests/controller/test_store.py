"""Store contract, on SQLite and on a real PostgreSQL: migrations, idempotency, atomicity, ordering."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import DBAPIError

from controller import ingest, inventory
from controller.config import parse
from controller.errors import AuthError
from controller.store.db import Database
from controller.store.models import CheckState, HostState, Report, StateChange
from tests.controller.reports import body, make_report

pytestmark = pytest.mark.integration

CFG = parse({"clients": [{"name": "acme", "hosts": [{"name": "cfg-host"}]}]})


def _owner(db: Database, host: str = "web1") -> inventory.TokenOwner:
    token = inventory.add_host(db, host, "acme", cfg=CFG)
    return ingest.authenticate(db, token)


def _store(db: Database, owner: inventory.TokenOwner, seq: int, **kw: Any) -> ingest.IngestResult:
    report = make_report(owner.host, seq, **kw)
    return ingest.store_report(db, owner, report, body(report), clock=lambda: 1000.0 + seq)


def _count(db: Database, model: Any) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_migrations_create_the_tables_and_rerun_as_a_no_op(db: Database) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert {
        "clients",
        "hosts",
        "agent_tokens",
        "reports",
        "check_states",
        "state_changes",
        "host_states",
        "alembic_version",
    } <= names
    db.upgrade()  # already at head: nothing happens, nothing fails
    assert set(inspect(db.engine).get_table_names()) == names


def test_config_hosts_exist_without_a_token(db: Database) -> None:
    inventory.sync_config(CFG, db)
    rows = {r.name: r for r in inventory.list_hosts(db)}
    assert rows["cfg-host"].has_token is False and rows["cfg-host"].client == "acme"


def test_token_is_stored_hashed_and_revocation_locks_the_agent_out(db: Database) -> None:
    token = inventory.add_host(db, "web1", "acme", cfg=CFG)
    with db.engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT token_sha256 FROM agent_tokens")]
    assert token not in stored and len(stored[0]) == 64
    assert ingest.authenticate(db, token).host == "web1"
    assert inventory.revoke_host(db, "web1") == 1
    with pytest.raises(AuthError):
        ingest.authenticate(db, token)
    new_token = inventory.add_host(db, "web1", "acme", cfg=CFG)  # re-issue after revoke
    assert ingest.authenticate(db, new_token).host == "web1"


def test_same_seq_twice_is_stored_once(db: Database) -> None:
    owner = _owner(db)
    assert _store(db, owner, 1, status=0).status == "stored"
    assert _store(db, owner, 1, status=2).status == "duplicate"
    assert _count(db, Report) == 1
    with db.read_session() as s:
        assert {c.status for c in s.scalars(select(CheckState))} == {0}  # the replay changed nothing
    assert _count(db, StateChange) == 3  # first sight of 3 checks


def test_concurrent_pushes_of_one_seq_store_it_once(db: Database) -> None:
    owner = _owner(db)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def push() -> None:
        barrier.wait()
        results.append(_store(db, owner, 7).status)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["duplicate"] * 5 + ["stored"]
    assert _count(db, Report) == 1


def _install_failing_trigger(db: Database) -> None:
    """A real database error in the middle of the transaction: inserting history rows fails."""
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql(
                "CREATE TRIGGER bk_fail BEFORE INSERT ON state_changes "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION bk_fail() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER bk_fail BEFORE INSERT ON state_changes "
                "FOR EACH ROW EXECUTE FUNCTION bk_fail()"
            )


def _drop_failing_trigger(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER bk_fail" + ("" if db.is_sqlite else " ON state_changes"))


def test_a_failure_mid_transaction_stores_nothing(db: Database) -> None:
    owner = _owner(db)
    assert _store(db, owner, 1, status=0).status == "stored"

    _install_failing_trigger(db)
    try:
        # status change → history insert → the database refuses; not mistaken for a duplicate
        with pytest.raises(DBAPIError, match="injected failure"):
            _store(db, owner, 2, status=2)
    finally:
        _drop_failing_trigger(db)

    with db.read_session() as s:
        assert [r.seq for r in s.scalars(select(Report))] == [1]
        assert {c.status for c in s.scalars(select(CheckState))} == {0}
        assert {c.report_seq for c in s.scalars(select(CheckState))} == {1}
        state = s.get(HostState, owner.host_id)
        assert state is not None and state.last_seq == 1 and state.reports_total == 1
    assert _count(db, StateChange) == 3
    # The agent retries: the same report goes in whole.
    assert _store(db, owner, 2, status=2).status == "stored"
    with db.read_session() as s:
        assert {c.status for c in s.scalars(select(CheckState))} == {2}
    assert _count(db, StateChange) == 6


def test_a_late_older_report_is_kept_but_does_not_overwrite_newer_state(db: Database) -> None:
    owner = _owner(db)
    assert _store(db, owner, 5, status=2, samples=2).status == "stored"
    assert _store(db, owner, 4, status=0, samples=7).status == "stored_late"
    with db.read_session() as s:
        assert sorted(r.seq for r in s.scalars(select(Report))) == [4, 5]
        assert {(c.status, c.report_seq) for c in s.scalars(select(CheckState))} == {(2, 5)}
        state = s.get(HostState, owner.host_id)
        assert state is not None and state.last_seq == 5 and len(state.samples) == 2
        assert state.last_report_at == 1004.0  # the late report still proves the agent alive
        assert state.reports_total == 2


def test_history_records_status_and_hard_changes_only(db: Database) -> None:
    owner = _owner(db)
    _store(db, owner, 1, checks=2, status=0)
    _store(db, owner, 2, checks=2, status=0)  # nothing changed
    _store(db, owner, 3, checks=2, statuses={"check_0": 2}, hard=False)  # soft CRITICAL + soft OK
    _store(db, owner, 4, checks=2, statuses={"check_0": 2}, hard=True)  # hard again
    with db.read_session() as s:
        rows = [
            (r.check_name, r.report_seq, r.old_status, r.new_status, r.old_hard, r.new_hard)
            for r in s.scalars(select(StateChange).order_by(StateChange.id))
        ]
    assert rows == [
        ("check_0", 1, None, 0, None, True),
        ("check_1", 1, None, 0, None, True),
        ("check_0", 3, 0, 2, True, False),
        ("check_1", 3, 0, 0, True, False),
        ("check_0", 4, 2, 2, False, True),
        ("check_1", 4, 0, 0, False, True),
    ]


def test_a_check_gone_from_the_report_is_dropped(db: Database) -> None:
    owner = _owner(db)
    _store(db, owner, 1, checks=3)
    _store(db, owner, 2, checks=1)
    with db.read_session() as s:
        assert [c.name for c in s.scalars(select(CheckState))] == ["check_0"]


def test_writer_busy_tells_when_another_process_holds_the_sqlite_write_lock(tmp_path: Any) -> None:
    """The group-commit writer keeps parsing (a bigger batch) while another serve worker writes."""
    import fcntl
    import os

    path = tmp_path / "busy.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
        _store(db, _owner(db), 1)  # the writer lock file exists from the first write on
        assert db.writer_busy() is False
        other = os.open(f"{path}-writer.lock", os.O_RDWR)  # another open file: as another process
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            assert db.writer_busy() is True
            fcntl.flock(other, fcntl.LOCK_UN)
            assert db.writer_busy() is False
            with db.transaction():  # our own transaction holds it: not "someone else"
                assert db.writer_busy() is False
        finally:
            os.close(other)
    finally:
        db.dispose()


@pytest.mark.parametrize("every", [0.0, 3600.0])
def test_the_wal_is_checkpointed_after_writes_not_inside_their_commit(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, every: float) -> None:
    """SQLite's own checkpoint is off (it ran inside the COMMIT, while the writer queue was held);
    the process checkpoints after a write instead, so the WAL does not grow with every write.
    With checkpoints due after every write the WAL stays small; with none due it keeps every write."""
    from sqlalchemy import text

    from controller.store import db as dbmod

    monkeypatch.setattr(dbmod, "CHECKPOINT_EVERY", every)
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
        with db.transaction() as conn:
            conn.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, body TEXT)"))
        for i in range(30):  # 30 write transactions of ~1 MB each
            with db.transaction() as conn:
                rows = [{"b": f"{i}" + "x" * 100_000}] * 10
                conn.execute(text("INSERT INTO blob (body) VALUES (:b)"), rows)
            with db.transaction() as conn:
                conn.execute(text("DELETE FROM blob"))
        wal = (tmp_path / "wal.db-wal").stat().st_size
        if every == 0.0:
            assert db.checkpoints >= 60 and wal < 5 * 2**20  # frames reused after each checkpoint
        else:
            assert db.checkpoints <= 1 and wal > 30 * 2**20  # nothing copied back yet: every MB still there
    finally:
        db.dispose()
