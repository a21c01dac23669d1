"""A long incident keeps a bounded outbox and timeline (issue 18): routed to Alertmanager, which
gets a repeat every minute, a day-long incident used to add ~1,440 outbox rows and as many timeline
lines, all re-read by every detection pass. Time is a fake clock; Alertmanager is the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.channels.registry import build_senders
from controller.alerting.dispatcher import Dispatcher
from controller.alerting.models import PENDING, Notification
from controller.alerting.outbox import REPEATS_KEPT, NotifyPolicy, sync_pending
from controller.store.db import Database
from tests.controller.alerting.support import FakeClock, free_port, parse_channels
from tests.controller.alerting.test_channels import alertmanager, sqlite_db  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

MINUTES_A_DAY = 1440


def _notifications(db: Database, incident_id: int, *, pending: bool = False) -> int:
    stmt = select(func.count()).select_from(Notification).where(Notification.incident_id == incident_id)
    if pending:
        stmt = stmt.where(Notification.status == PENDING)
    with db.read_session() as s:
        return int(s.scalar(stmt) or 0)


def _open(db: Database, policy: NotifyPolicy, clock: FakeClock) -> int:
    with db.session() as s:
        return service.open_incident(
            s, host="portal-01", key="portal-01:unreachable", cause="unreachable", severity="critical",
            summary="host portal-01 unreachable", policy=policy, now=clock(),
        ).id


@pytest.mark.timeout(900)  # 1,441 real deliveries: ~20 s on a quiet machine, over 300 s at load 40
def test_a_day_long_incident_routed_to_alertmanager_keeps_a_bounded_outbox_and_timeline(
    sqlite_db: tuple[Database, Path], alertmanager: str,  # noqa: F811
) -> None:
    db, _ = sqlite_db
    policy = NotifyPolicy(channels=parse_channels("c.yaml", [{"type": "alertmanager", "name": "am",
                                                              "url": alertmanager}]))
    clock = FakeClock()
    dispatcher = Dispatcher(db, build_senders(policy.channels, source="c.yaml"), clock=clock)
    try:
        incident_id = _open(db, policy, clock)
        assert dispatcher.dispatch_once() == 1
        most = 0
        for _ in range(MINUTES_A_DAY):  # a detection pass and a dispatch each minute, for a day
            clock.advance(60)
            with db.session() as s:
                sync_pending(s, policy, clock())
            dispatcher.dispatch_once()
            most = max(most, _notifications(db, incident_id))
    finally:
        dispatcher.close()
    assert dispatcher.counts[("am", "sent")] == 1 + MINUTES_A_DAY  # the firing, then a repeat a minute
    assert most <= 1 + REPEATS_KEPT + 1  # the firing, the kept repeats, the one just enqueued
    with db.read_session() as s:
        keys = set(s.scalars(select(Notification.dedup_key).where(Notification.incident_id == incident_id)))
        lines = [(e.kind, e.message) for e in queries.timeline(s, incident_id)]
    # the receiver's idempotency keys are never reused: numbering goes on past the deleted rows
    assert f"{incident_id}:am:repeat:{MINUTES_A_DAY}" in keys
    assert lines == [
        ("opened", "critical: host portal-01 unreachable"),
        ("notified", "am: firing"),
        ("notified", f"am: repeat #{MINUTES_A_DAY} (the latest; one line for all repeats)"),
    ]


def test_repeats_do_not_queue_up_while_the_receiver_is_down(sqlite_db: tuple[Database, Path]) -> None:  # noqa: F811
    db, _ = sqlite_db
    down = f"http://127.0.3.51:{free_port('127.0.3.51')}"  # nothing listens there
    policy = NotifyPolicy(channels=parse_channels("c.yaml", [{"type": "alertmanager", "name": "am",
                                                              "url": down}]))
    clock = FakeClock()
    dispatcher = Dispatcher(db, build_senders(policy.channels, source="c.yaml"), clock=clock)
    try:
        incident_id = _open(db, policy, clock)
        most = most_pending = 0
        for _ in range(6 * 60):  # six hours, a pass a minute
            clock.advance(60)
            with db.session() as s:
                sync_pending(s, policy, clock())
            dispatcher.dispatch_once()
            most = max(most, _notifications(db, incident_id))
            most_pending = max(most_pending, _notifications(db, incident_id, pending=True))
    finally:
        dispatcher.close()
    assert dispatcher.counts[("am", "retry")] > 10  # it kept trying
    assert most_pending <= 2  # the firing and one repeat, not one more per minute
    assert most <= 1 + REPEATS_KEPT + 1
