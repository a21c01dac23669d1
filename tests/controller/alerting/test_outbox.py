"""The outbox dispatcher against real webhook receivers, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from controller import inventory
from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.channels.base import ChannelSettings as ChannelConfig
from controller.alerting.channels.registry import build_senders
from controller.alerting.dispatcher import Dispatcher, backoff
from controller.alerting.metrics import NotificationCollector
from controller.alerting.models import Notification
from controller.alerting.outbox import NotifyPolicy
from controller.store.db import Database
from tests.controller.alerting.support import FakeClock, controller_config, parse_channels, recorder

pytestmark = pytest.mark.integration


def _setup(db: Database, tmp_path: Path, channels: list[dict[str, object]]) -> tuple[NotifyPolicy, FakeClock]:
    clock = FakeClock()
    cfg = controller_config(tmp_path, hosts=[{"name": "portal-01"}])
    inventory.sync_config(cfg, db, clock=clock)
    return NotifyPolicy(channels=parse_channels("c.yaml", channels)), clock


def _open(db: Database, policy: NotifyPolicy, clock: FakeClock, key: str = "portal-01:check:portal") -> int:
    with db.session() as s:
        return service.open_incident(
            s,
            host="portal-01",
            key=key,
            cause="check",
            severity="critical",
            summary="portal down",
            now=clock(),
            policy=policy,
        ).id


def _dispatcher(
    db: Database, channels: tuple[ChannelConfig, ...], clock: FakeClock, **kw: object
) -> Dispatcher:
    return Dispatcher(db, build_senders(channels, source="c.yaml"), clock=clock, rng=lambda: 1.0, **kw)  # type: ignore[arg-type]


def _statuses(db: Database) -> dict[str, tuple[str, int]]:
    with db.read_session() as s:
        return {
            n.channel: (n.status, n.attempts)
            for n in s.scalars(select(Notification).order_by(Notification.id))
        }


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    assert [backoff(n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff(20, rng=lambda: 1.0) == 600.0
    assert backoff(3, rng=lambda: 0.0) == 10.0  # jitter: between half and all of the delay


def test_failing_channel_is_retried_with_backoff_and_others_are_unaffected(
    db: Database, tmp_path: Path
) -> None:
    with recorder("127.0.3.30") as good, recorder("127.0.3.31", status=503) as bad:
        policy, clock = _setup(
            db,
            tmp_path,
            [
                {"type": "webhook", "name": "good", "url": good.url},
                {"type": "webhook", "name": "bad", "url": bad.url},
            ],
        )
        incident_id = _open(db, policy, clock)
        dispatcher = _dispatcher(db, policy.channels, clock)
        try:
            assert dispatcher.dispatch_once() == 1
            assert _statuses(db) == {"good": ("sent", 1), "bad": ("pending", 1)}
            assert dispatcher.dispatch_once() == 0  # not due yet: no hammering
            assert len(bad.requests) == 1
            clock.advance(5)  # first retry after 5 s
            dispatcher.dispatch_once()
            assert len(bad.requests) == 2
            clock.advance(5)  # second retry waits 10 s
            dispatcher.dispatch_once()
            assert len(bad.requests) == 2
            bad.status = 200
            clock.advance(5)
            assert dispatcher.dispatch_once() == 1
            assert _statuses(db) == {"good": ("sent", 1), "bad": ("sent", 3)}
            assert len(good.requests) == 1 and len(bad.requests) == 3
            with db.read_session() as s:
                notified = [e.message for e in queries.timeline(s, incident_id) if e.kind == "notified"]
            assert notified == ["good: firing", "bad: firing"]
        finally:
            dispatcher.close()


def test_a_channel_that_keeps_failing_is_given_up_and_recorded(db: Database, tmp_path: Path) -> None:
    with recorder("127.0.3.32", status=500, answer={"error": "boom"}) as bad:
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "bad", "url": bad.url}])
        incident_id = _open(db, policy, clock)
        dispatcher = _dispatcher(db, policy.channels, clock, max_attempts=3)
        try:
            for _ in range(6):
                dispatcher.dispatch_once()
                clock.advance(700)
            assert _statuses(db) == {"bad": ("failed", 3)}
            assert len(bad.requests) == 3
            with db.read_session() as s:
                row = s.scalars(select(Notification)).one()
                assert row.last_error is not None and "HTTP 500" in row.last_error
                failed = [e.message for e in queries.timeline(s, incident_id) if e.kind == "notify_failed"]
            assert len(failed) == 1 and "after 3 attempt(s)" in failed[0]
        finally:
            dispatcher.close()


def test_a_client_error_is_not_retried(db: Database, tmp_path: Path) -> None:
    with recorder("127.0.3.33", status=400) as bad:
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "bad", "url": bad.url}])
        _open(db, policy, clock)
        dispatcher = _dispatcher(db, policy.channels, clock)
        try:
            dispatcher.dispatch_once()
            assert _statuses(db) == {"bad": ("failed", 1)}
        finally:
            dispatcher.close()


def test_outbox_survives_a_restart_and_never_resends_a_sent_row(database_url: str, tmp_path: Path) -> None:
    with recorder("127.0.3.34") as hook:
        db = Database(database_url)
        db.upgrade()
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "hook", "url": hook.url}])
        _open(db, policy, clock, "portal-01:a")
        first = _dispatcher(db, policy.channels, clock)
        first.dispatch_once()
        _open(db, policy, clock, "portal-01:b")  # enqueued, then the controller dies before sending
        claimed = first.claim()
        _open(db, policy, clock, "portal-01:c")
        first.close()
        db.dispose()
        assert len(claimed) == 1 and len(hook.requests) == 1

        db = Database(database_url)  # "restart"
        second = _dispatcher(db, policy.channels, clock)
        try:
            second.dispatch_once()  # c is due; b is claimed by the dead process until its lease ends
            assert [b["incident"]["key"] for b in hook.bodies()] == ["portal-01:a", "portal-01:c"]
            clock.advance(121)
            second.dispatch_once()
            second.dispatch_once()
            keys = [b["incident"]["key"] for b in hook.bodies()]
            assert keys == ["portal-01:a", "portal-01:c", "portal-01:b"]  # each once
            assert len({b["idempotency_key"] for b in hook.bodies()}) == 3
        finally:
            second.close()
            db.dispose()


def test_two_dispatchers_deliver_each_row_once(db: Database, tmp_path: Path) -> None:
    """Two controllers on one database (PostgreSQL: FOR UPDATE SKIP LOCKED) share the outbox."""
    with recorder("127.0.3.35") as hook:
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "hook", "url": hook.url}])
        for i in range(20):
            _open(db, policy, clock, f"portal-01:k{i}")
        dispatchers = [_dispatcher(db, policy.channels, clock, batch=3) for _ in range(2)]
        delivered = [0, 0]

        def work(n: int) -> None:
            for _ in range(30):
                delivered[n] += dispatchers[n].dispatch_once()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for d in dispatchers:
            d.close()
        keys = sorted(b["incident"]["key"] for b in hook.bodies())
        assert keys == sorted(f"portal-01:k{i}" for i in range(20))
        assert sum(delivered) == 20


def test_outbox_metrics(db: Database, tmp_path: Path) -> None:
    with recorder("127.0.3.36", status=503) as bad:
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "bad", "url": bad.url}])
        _open(db, policy, clock)
        dispatcher = _dispatcher(db, policy.channels, clock)
        dispatcher.dispatch_once()
        dispatcher.close()
    registry = CollectorRegistry()
    registry.register(NotificationCollector(db, clock=lambda: clock() + 30))
    assert registry.get_sample_value("boxkeeper_notifications", {"channel": "bad", "status": "pending"}) == 1
    assert registry.get_sample_value("boxkeeper_notifications_oldest_pending_age_seconds") == 30


def test_resolved_never_overtakes_a_firing_that_is_being_retried(db: Database, tmp_path: Path) -> None:
    with recorder("127.0.3.37", status=503) as hook:
        policy, clock = _setup(db, tmp_path, [{"type": "webhook", "name": "hook", "url": hook.url}])
        incident_id = _open(db, policy, clock)
        dispatcher = _dispatcher(db, policy.channels, clock)
        try:
            dispatcher.dispatch_once()  # firing refused, retry in 5 s
            with db.session() as s:
                service.resolve_incident(s, incident_id=incident_id, now=clock(), policy=policy)
            hook.status = 200
            dispatcher.dispatch_once()  # the resolved is due, but waits for the firing
            assert len(hook.requests) == 1
            clock.advance(5)
            dispatcher.dispatch_once()
            dispatcher.dispatch_once()
            assert [b["event"] for b in hook.bodies()] == ["firing", "firing", "resolved"]
        finally:
            dispatcher.close()
