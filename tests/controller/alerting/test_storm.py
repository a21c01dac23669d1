"""A storm: many hosts of one client fail at once (the client's network is down). Each host keeps
its own incident, but each channel hears one notification per client listing the hosts, sent
``group_wait`` after the first of them; recovery is one "resolved" per client too.

Real ingest, a real webhook receiver and a real e-mail-free Telegram-free path: the webhook's JSON
(its ``text`` is what a person reads) and the incidents in the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.alerting.models import Incident, IncidentEvent
from controller.alerting.render import body, subject, telegram_html
from controller.config import parse
from controller.monitor import Monitor
from controller.store.db import Database
from tests.controller.alerting.support import FakeClock, agent_for, check, recorder

pytestmark = pytest.mark.integration

ACME = [f"acme-{i:02d}" for i in range(12)]
GLOBEX = ["globex-01", "globex-02", "globex-03"]


def config(tmp_path: Path, hook: str, **channel: Any) -> Any:
    data = {
        "database": f"sqlite:///{tmp_path}/bk.db",
        "state_dir": str(tmp_path),
        "clients": [
            {"name": "acme", "hosts": [{"name": h} for h in ACME]},
            {"name": "globex", "hosts": [{"name": h} for h in GLOBEX]},
        ],
        "detection": {"silence_after": "45s"},
        "notify": [{"type": "webhook", "name": "hook", "url": hook, **channel}],
    }
    return parse(data, source=str(tmp_path / "controller.yaml"), base_dir=tmp_path)


def test_a_client_network_down_is_one_notification_per_client_listing_its_hosts(tmp_path: Path) -> None:
    clock = FakeClock()
    with recorder("127.0.3.30") as hook:
        cfg = config(tmp_path, hook.url, group_wait="20s")
        db = Database(cfg.database)
        db.upgrade()
        agents = {h: agent_for(db, cfg, h, clock) for h in [*ACME, *GLOBEX]}
        monitor = Monitor(cfg, db, clock=clock)
        try:
            def tick(seconds: float, alive: list[str]) -> None:
                clock.advance(seconds)
                for name in alive:
                    agents[name].push(check("portal"))
                monitor.evaluate_once()
                monitor.dispatch_once()

            everyone = [*ACME, *GLOBEX]
            for _ in range(3):
                tick(15, everyone)
            assert hook.bodies() == []
            # acme's network goes down (acme-00 is elsewhere and stays up); globex's 45 s later
            alive = [h for h in everyone if h not in ACME[1:]]
            for _ in range(3):
                tick(15, alive)
            alive = ["acme-00"]
            for _ in range(24):  # 120 s: all silent, incidents open; group_wait (20 s) passes
                tick(5, alive)

            firing = [b for b in hook.bodies() if b["event"] == "firing"]
            assert len(firing) == 2, [b["subject"] for b in firing]
            by_client = {b["incident"]["client"]: b for b in firing}
            assert sorted(i["host"] for i in by_client["acme"]["incidents"]) == ACME[1:]
            assert sorted(i["host"] for i in by_client["globex"]["incidents"]) == GLOBEX
            assert by_client["acme"]["subject"].startswith("[FIRING] critical acme: 11 hosts agent down")
            for host in ACME[1:]:
                assert host in by_client["acme"]["text"]
            assert "acme-00" not in by_client["acme"]["text"]

            with db.read_session() as s:
                incidents = s.scalars(select(Incident).where(Incident.cause == "agent_down")).all()
                assert sorted(i.host_name or "" for i in incidents) == sorted([*ACME[1:], *GLOBEX])
                notified = s.scalars(select(IncidentEvent).where(IncidentEvent.kind == "notified")).all()
                # each incident's own timeline says it was notified, with the others of its client
                assert len(notified) == len(incidents)
                assert all("other host(s) of the client" in e.message for e in notified)

            # the network comes back: one "resolved" per client
            for _ in range(3):
                tick(15, everyone)
            resolved = [b for b in hook.bodies() if b["event"] == "resolved"]
            assert len(resolved) == 2
            assert sorted(len(b["incidents"]) for b in resolved) == [3, 11]
            assert len(hook.bodies()) == 4
        finally:
            monitor.stop()
            db.dispose()


def test_group_wait_zero_sends_one_notification_per_host(tmp_path: Path) -> None:
    clock = FakeClock()
    with recorder("127.0.3.31") as hook:
        cfg = config(tmp_path, hook.url, group_wait="0s")
        db = Database(cfg.database)
        db.upgrade()
        agents = {h: agent_for(db, cfg, h, clock) for h in GLOBEX}
        monitor = Monitor(cfg, db, clock=clock)
        try:
            for agent in agents.values():
                agent.push(check("portal"))
            for _ in range(12):
                clock.advance(5)
                monitor.evaluate_once()
                monitor.dispatch_once()
            firing = [b for b in hook.bodies() if b["event"] == "firing"]
            assert sorted(b["incident"]["host"] for b in firing) == GLOBEX
            assert all("incidents" not in b for b in firing)
        finally:
            monitor.stop()
            db.dispose()


def test_grouped_text_lists_every_host_in_each_format() -> None:
    members = [
        {"id": n, "key": f"h{n}:agent_down", "cause": "agent_down", "severity": "critical",
         "status": "open", "summary": f"agent down on h{n}: no report for 60 s", "host": f"h{n}",
         "client": "acme", "opened_at": 1_764_300_000.0, "resolved_at": None}
        for n in range(1, 4)
    ]
    members[2]["cause"], members[2]["summary"] = "unreachable", "host h3 unreachable: <probe> failed"
    payload = {"event": "firing", "channel": "x", "idempotency_key": "group:1,2,3", "created_at": 0.0,
               "incident": members[0], "group": members}
    assert subject(payload) == "[FIRING] critical acme: 3 hosts agent down / unreachable: h1, h2, h3"
    text = body(payload)
    assert "#2 acme/h2: agent down on h2: no report for 60 s" in text
    html_text = telegram_html(payload)
    assert "&lt;probe&gt;" in html_text and "<probe>" not in html_text
