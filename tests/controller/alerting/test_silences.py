"""Silences have owners: ending a run or a window lifts only what it made; old mutes migrate."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from controller import inventory
from controller.alerting import silences
from controller.alerting.silences import Owner
from controller.config import parse
from controller.store.db import MIGRATIONS_DIR, Database

pytestmark = pytest.mark.integration  # on SQLite and on a real PostgreSQL

CFG = parse({"clients": [{"name": "acme", "hosts": [{"name": "web1"}, {"name": "web2"}]}]}, "c.yaml")


def _owners(db: Database, now: float) -> list[tuple[str, str, str]]:
    with db.read_session() as s:
        return [(host, row.owner_kind, row.owner_ref) for host, row in silences.active(s, now)]


def test_each_owner_lifts_only_its_own(db: Database) -> None:
    inventory.sync_config(CFG, db)
    with db.session() as s:
        for host, until, reason, owner in (("web1", 500.0, "disk swap", Owner.operator("alice")),
                                           ("web1", 300.0, "update run 7", Owner.run(7)),
                                           ("web1", 400.0, "update window sat", Owner.window(3)),
                                           ("web2", 400.0, "update window sat", Owner.window(3))):
            silences.silence(s, host=host, until=until, reason=reason, owner=owner, now=0)
    with db.session() as s:
        assert silences.lift(s, Owner.window(3), host="web2") == 1  # the window is done with web2
        assert silences.lift(s, Owner.run(7)) == 1
        assert silences.lift(s, Owner.run(8)) == 0
    assert _owners(db, 10.0) == [("web1", "window", "3"), ("web1", "operator", "alice")]
    with db.read_session() as s:  # the longest silence in force is the one named
        assert silences.is_muted(s, host="web1", client="acme", now=10.0) == "muted: disk swap"
        assert silences.is_muted(s, host="web2", client="acme", now=10.0) is None
        assert silences.is_muted(s, host="web1", client="acme", now=600.0) is None  # lapsed
    with db.session() as s:  # an operator's unmute ends the operators' silences, not the window's
        assert silences.lift_host(s, "web1") == 1
    assert _owners(db, 10.0) == [("web1", "window", "3")]


def test_host_mutes_become_owned_silences(database_url: str) -> None:
    """Migration 0004 on SQLite and PostgreSQL: an operator's mute stays the operator's; a mute
    an update run made becomes a run silence (lapsing at its end), not an operator's."""
    db = Database(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0003")
        connection.commit()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO clients (name, timezone, created_at) VALUES ('acme', 'UTC', 0)"))
        conn.execute(text("INSERT INTO hosts (client_id, name, timezone, labels, created_at) "
                          "SELECT id, 'web1', 'UTC', '{}', 0 FROM clients"))
        conn.execute(text("INSERT INTO host_mutes (host_id, until, reason, created_at, created_by) "
                          "SELECT id, 900, 'disk swap', 1, 'cli:alice' FROM hosts"))
        conn.execute(text("INSERT INTO host_mutes (host_id, until, reason, created_at, created_by) "
                          "SELECT id, 800, 'update bitrix-modules-update', 1, 'boxkeeper-update' FROM hosts"))
    db.upgrade()
    assert sorted(_owners(db, 10.0)) == [("web1", "operator", "cli:alice"), ("web1", "run", "unknown")]
    db.dispose()
