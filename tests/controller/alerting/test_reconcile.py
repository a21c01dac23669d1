"""Detection results applied to the store: flapping holds, held keys, auto-resolve; and the
migration going down to 0001 and up again (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from controller import inventory
from controller.alerting import queries
from controller.alerting.models import Incident, Notification
from controller.alerting.outbox import NotifyPolicy
from controller.alerting.reconcile import reconcile
from controller.detection.classify import HostView, evaluate
from controller.detection.config import DetectionConfig
from controller.store.db import MIGRATIONS_DIR, Database
from tests.controller.alerting.support import FakeClock, controller_config, parse_channels


@dataclass(frozen=True)
class Check:
    name: str
    status: int
    hard: bool = True
    flapping: bool = False
    summary: str = "HTTP 502"


def _pass(db: Database, policy: NotifyPolicy, clock: FakeClock, *checks: Check) -> None:
    view = HostView(
        host="portal-01", client="acme", reported=True, silent=False, silent_for=1.0, probes=(), checks=checks
    )
    with db.session() as s:
        reconcile(s, [evaluate(view, DetectionConfig())], now=clock.advance(2), policy=policy)


def _state(db: Database) -> list[tuple[str, str, str]]:
    with db.read_session() as s:
        return [(i.cause, i.severity, i.status) for i in s.scalars(select(Incident).order_by(Incident.id))]


def test_flapping_holds_an_open_incident_and_stable_ok_resolves_it(db: Database, tmp_path: Path) -> None:
    clock = FakeClock()
    inventory.sync_config(controller_config(tmp_path, hosts=[{"name": "portal-01"}]), db, clock=clock)
    policy = NotifyPolicy(
        channels=parse_channels(
            "c.yaml", [{"type": "webhook", "url": "http://127.0.3.9/", "min_severity": "warning"}]
        )
    )
    _pass(db, policy, clock, Check("portal", 2))
    for status in (0, 2, 0, 2):  # the check flaps: the incident is held as it is
        _pass(db, policy, clock, Check("portal", status, flapping=True))
    assert _state(db) == [("check", "critical", "open")]
    _pass(db, policy, clock, Check("portal", 2, hard=False))  # soft: held too
    assert _state(db) == [("check", "critical", "open")]
    _pass(db, policy, clock, Check("portal", 0))
    assert _state(db) == [("check", "critical", "resolved")]
    _pass(db, policy, clock, Check("portal", 0, flapping=True))  # flapping from OK: one warning incident
    _pass(db, policy, clock, Check("portal", 2, flapping=True))
    assert _state(db)[1:] == [("flapping", "warning", "open")]
    with db.read_session() as s:
        events = [n.event for n in s.scalars(select(Notification).order_by(Notification.id))]
        assert events == ["firing", "resolved", "firing"]  # one page per outage, one for the flapping
        assert queries.open_counts(s) == {("acme", "warning"): 1}


def test_migration_goes_down_to_0001_and_up_again(db: Database) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
        connection.commit()
    assert "incidents" not in inspect(db.engine).get_table_names()
    db.upgrade()
    assert {"incidents", "incident_events", "notifications", "silences"} <= set(
        inspect(db.engine).get_table_names()
    )
