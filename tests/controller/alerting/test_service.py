"""Incident store and lifecycle, on SQLite and on a real PostgreSQL (``db`` fixture)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from controller import inventory
from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.models import Incident, Notification
from controller.alerting.outbox import NotifyPolicy, sync_pending
from controller.alerting.silences import Owner, silence
from controller.config import ControllerConfig
from controller.store.db import Database
from tests.controller.alerting.support import FakeClock, controller_config

WEBHOOK = {
    "type": "webhook",
    "name": "hook",
    "url": "http://127.0.3.1:9/hook",
    "min_severity": "warning",
    "repeat_interval": "10m",
}


@pytest.fixture
def setup(db: Database, tmp_path: Path) -> tuple[Database, ControllerConfig, NotifyPolicy, FakeClock]:
    clock = FakeClock()
    cfg = controller_config(
        tmp_path,
        hosts=[{"name": "portal-01"}, {"name": "portal-02"}],
        notify=[WEBHOOK],
        maintenance=[
            {
                "name": "saturday",
                "hosts": ["portal-02"],
                "cron": "0 3 * * 6",
                "duration": "2h",
                "timezone": "Europe/Moscow",
            }
        ],
    )
    inventory.sync_config(cfg, db, clock=clock)
    return db, cfg, NotifyPolicy(channels=cfg.notify, windows=cfg.maintenance), clock


def _open(
    db: Database,
    policy: NotifyPolicy | None,
    clock: FakeClock,
    key: str = "portal-01:check:portal",
    severity: str = "critical",
    host: str = "portal-01",
) -> int:
    with db.session() as s:
        incident = service.open_incident(
            s,
            host=host,
            key=key,
            cause="check",
            severity=severity,
            summary="portal down: HTTP 502",
            now=clock(),
            policy=policy,
        )
        return incident.id


def _rows(db: Database, incident_id: int) -> list[tuple[str, str]]:
    with db.read_session() as s:
        rows = s.execute(
            select(Notification.channel, Notification.event)
            .where(Notification.incident_id == incident_id)
            .order_by(Notification.id)
        ).all()
        return [(r.channel, r.event) for r in rows]


def _kinds(db: Database, incident_id: int) -> list[str]:
    with db.read_session() as s:
        return [e.kind for e in queries.timeline(s, incident_id)]


def test_one_open_incident_per_key_and_a_new_one_after_resolve(setup) -> None:
    db, _, policy, clock = setup
    first = _open(db, policy, clock)
    assert _open(db, policy, clock) == first
    with db.session() as s:
        assert service.resolve_incident(s, key="portal-01:check:portal", now=clock.advance(60), policy=policy)
        assert service.resolve_incident(s, key="portal-01:check:portal", now=clock()) is None
    clock.advance(60)
    second = _open(db, policy, clock)
    assert second != first
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 2
        incident = s.get(Incident, first)
        assert incident is not None and incident.status == "resolved" and incident.resolved_by == "auto"
        assert incident.client_name == "acme" and incident.host_name == "portal-01"
    assert _kinds(db, first) == ["opened", "resolved"]


def test_database_refuses_a_second_open_row_for_a_key(setup) -> None:
    db, _, _, clock = setup
    _open(db, None, clock)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(
            Incident(
                dedup_key="portal-01:check:portal",
                cause="check",
                severity="critical",
                status="open",
                summary="dup",
                details={},
                opened_at=clock(),
                updated_at=clock(),
                needs_sync=True,
            )
        )
        s.flush()


def test_racing_openers_make_one_incident(setup) -> None:
    db, _, policy, clock = setup
    barrier = threading.Barrier(4)
    ids: list[int] = []
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait(10)
            ids.append(_open(db, policy, clock, key="portal-01:unreachable"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(set(ids)) == 1
    assert _rows(db, ids[0]) == [("hook", "firing")]  # one page, not four


def test_escalation_pages_again_but_a_lower_severity_does_not(setup) -> None:
    db, _, policy, clock = setup
    incident_id = _open(db, policy, clock, severity="warning")
    clock.advance(5)
    _open(db, policy, clock, severity="critical")
    clock.advance(5)
    _open(db, policy, clock, severity="warning")
    assert _rows(db, incident_id) == [("hook", "firing"), ("hook", "firing")]
    assert _kinds(db, incident_id) == ["opened", "escalated", "severity"]


def test_ack_stops_repeats_until_it_expires(setup) -> None:
    db, _, policy, clock = setup
    incident_id = _open(db, policy, clock)
    with db.session() as s:
        service.acknowledge(
            s, incident_id, actor="alice", expires_in=3600, now=clock.advance(60), policy=policy
        )
    with db.session() as s:
        sync_pending(s, policy, clock.advance(1200))  # repeat interval (10m) passed, but acknowledged
    assert _rows(db, incident_id) == [("hook", "firing")]
    with db.session() as s:
        sync_pending(s, policy, clock.advance(3600))  # the ack expired
    with db.read_session() as s:
        incident = s.get(Incident, incident_id)
        assert incident is not None and incident.status == "open" and incident.acknowledged_by is None
    assert _rows(db, incident_id) == [("hook", "firing"), ("hook", "repeat")]
    assert _kinds(db, incident_id) == ["opened", "acknowledged", "ack_expired"]


def test_resolved_goes_only_to_channels_that_heard_the_firing(setup) -> None:
    db, _, policy, clock = setup
    quiet = _open(db, policy, clock, key="portal-01:info", severity="info")  # below min_severity
    loud = _open(db, policy, clock)
    with db.session() as s:
        service.resolve_incident(s, incident_id=quiet, actor="bob", now=clock.advance(30), policy=policy)
        service.resolve_incident(s, incident_id=loud, actor="bob", now=clock(), policy=policy)
    assert _rows(db, quiet) == []
    assert _rows(db, loud) == [("hook", "firing"), ("hook", "resolved")]


def test_notes_and_the_timeline_are_kept(setup) -> None:
    db, _, _, clock = setup
    incident_id = _open(db, None, clock)
    with db.session() as s:
        service.add_note(s, incident_id, actor="alice", text="nginx restarted", now=clock.advance(10))
    with db.read_session() as s:
        events = queries.timeline(s, incident_id)
        assert [(e.kind, e.actor, e.message) for e in events][-1] == ("note", "alice", "nginx restarted")
        assert queries.open_counts(s) == {("acme", "critical"): 1}
    with pytest.raises(service.IncidentNotFoundError), db.session() as s:
        service.add_note(s, 999, actor="alice", text="nope")


def test_without_a_policy_the_next_pass_enqueues(setup) -> None:
    db, _, policy, clock = setup
    incident_id = _open(db, None, clock)  # e.g. opened by a release workflow
    assert _rows(db, incident_id) == []
    with db.session() as s:
        assert sync_pending(s, policy, clock()) == 1
    assert _rows(db, incident_id) == [("hook", "firing")]


def test_host_level_incident_inhibits_check_incidents_of_the_host(setup) -> None:
    db, _, policy, clock = setup
    with db.session() as s:
        host_incident = service.open_incident(
            s,
            host="portal-01",
            key="portal-01:unreachable",
            cause="unreachable",
            severity="critical",
            summary="unreachable",
            now=clock(),
            policy=policy,
        ).id
    clock.advance(5)
    check_incident = _open(db, policy, clock)
    assert _rows(db, host_incident) == [("hook", "firing")]
    assert _rows(db, check_incident) == []
    with db.read_session() as s:
        incident = s.get(Incident, check_incident)
        assert incident is not None and incident.withheld == f"inhibited by unreachable (#{host_incident})"
    with db.session() as s:
        service.resolve_incident(s, key="portal-01:unreachable", now=clock.advance(60), policy=policy)
        sync_pending(s, policy, clock())
    # the portal is still down after the host came back: now it pages
    assert _rows(db, check_incident) == [("hook", "firing")]
    assert _kinds(db, check_incident) == ["opened", "suppressed", "unsuppressed"]


def test_maintenance_window_and_host_mute_keep_incidents_but_mute_notifications(setup) -> None:
    db, _, policy, clock = setup
    clock.now = 1_764_378_000.0  # Sat 2026-11-29 04:00 Moscow: inside "0 3 * * 6" + 2h
    in_window = _open(db, policy, clock, key="portal-02:check:portal", host="portal-02")
    with db.session() as s:
        silence(s, host="portal-01", until=clock() + 600, reason="update run 7", owner=Owner.run(7),
                now=clock())
    muted = _open(db, policy, clock)
    assert _rows(db, in_window) == [] and _rows(db, muted) == []
    with db.read_session() as s:
        assert (s.get(Incident, in_window) or Incident()).withheld == "maintenance window saturday"
        assert (s.get(Incident, muted) or Incident()).withheld == "muted: update run 7"
    with db.session() as s:
        sync_pending(s, policy, clock.advance(2 * 3600))  # both ended, both still open
    assert _rows(db, in_window) == [("hook", "firing")]
    assert _rows(db, muted) == [("hook", "firing")]
