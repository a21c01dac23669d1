"""Detection end to end with a fake clock: real ingest, real probes, a real webhook receiver.

Three hosts in the three situations of DESIGN.md "Outage detection":
portal-01's portal check goes CRITICAL (agent alive) → "portal down";
box-02's agent stops, its "SSH" port (a TCP listener) still answers → agent down;
box-03's agent stops and nothing answers → host unreachable.
Each outage pages exactly once, and each recovery sends one "resolved".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.monitor import Monitor
from controller.store.db import Database
from tests.controller.alerting.support import (
    FakeClock,
    agent_for,
    check,
    controller_config,
    free_port,
    recorder,
    tcp_listener,
)

pytestmark = pytest.mark.integration


def test_three_vantage_points_give_three_kinds_and_one_page_each(tmp_path: Path) -> None:
    clock = FakeClock()
    dead = "127.0.3.20"
    with recorder("127.0.3.10") as hook, tcp_listener("127.0.3.11") as ssh_alive:
        cfg = controller_config(
            tmp_path,
            hosts=[
                {"name": "portal-01", "portal_url": "http://127.0.3.12:1/"},
                {"name": "box-02", "ssh": {"address": ssh_alive}},
                {
                    "name": "box-03",
                    "ssh": {"address": f"{dead}:{free_port(dead)}"},
                    "portal_url": f"http://{dead}:{free_port(dead)}/",
                },
            ],
            # one page per host here (grouping of a client's hosts: tests/controller/alerting/test_storm.py)
            notify=[{"type": "webhook", "name": "hook", "url": hook.url + "/hook", "group_wait": "0s"}],
        )
        db = Database(cfg.database)
        db.upgrade()
        agents = {name: agent_for(db, cfg, name, clock) for name in ("portal-01", "box-02", "box-03")}
        monitor = Monitor(cfg, db, clock=clock)
        try:

            def tick(seconds: float) -> None:
                clock.advance(seconds)
                monitor.evaluate_once()
                monitor.dispatch_once()

            for agent in agents.values():
                agent.push(check("portal"), check("disk"))
            tick(2)
            assert hook.bodies() == []

            agents["portal-01"].push(check("portal", 2, summary="HTTP 502 from http://127.0.0.1/"))
            tick(2)
            [page] = hook.bodies()
            assert page["event"] == "firing" and page["incident"]["cause"] == "check"
            assert page["incident"]["summary"] == "portal down: HTTP 502 from http://127.0.0.1/"

            # box-02 and box-03 go silent; portal-01 keeps reporting (still down) every 15 s
            for _ in range(4):
                agents["portal-01"].push()
                tick(15)
            for _ in range(10):  # many more passes: nothing pages twice
                tick(2)
            pages = [b for b in hook.bodies() if b["event"] == "firing"]
            by_host = {p["incident"]["host"]: p["incident"] for p in pages}
            assert len(pages) == 3 and set(by_host) == {"portal-01", "box-02", "box-03"}
            assert by_host["box-02"]["cause"] == "agent_down"
            assert "host answers (TCP" in by_host["box-02"]["summary"]
            assert by_host["box-03"]["cause"] == "unreachable"
            assert by_host["box-03"]["severity"] == "critical"

            # recovery: every resolved once
            for agent in agents.values():
                agent.push(check("portal"), check("disk"))
            tick(2)
            tick(2)
            resolved = [b["incident"]["host"] for b in hook.bodies() if b["event"] == "resolved"]
            assert sorted(resolved) == ["box-02", "box-03", "portal-01"]
        finally:
            monitor.stop()
            db.dispose()


def test_host_unreachable_after_a_check_failed_inhibits_its_repeats(tmp_path: Path) -> None:
    clock = FakeClock()
    dead = "127.0.3.21"
    with recorder("127.0.3.10") as hook:
        cfg = controller_config(
            tmp_path,
            hosts=[{"name": "box-04", "ssh": {"address": f"{dead}:{free_port(dead)}"}}],
            notify=[{"type": "webhook", "name": "hook", "url": hook.url, "repeat_interval": "30s"}],
        )
        db = Database(cfg.database)
        db.upgrade()
        agent = agent_for(db, cfg, "box-04", clock)
        monitor = Monitor(cfg, db, clock=clock)
        try:
            agent.push(check("mysql", 2, summary="connection refused"))
            monitor.evaluate_once()
            monitor.dispatch_once()
            for _ in range(40):  # 80 s without reports: unreachable; the mysql incident stops repeating
                clock.advance(2)
                monitor.evaluate_once()
                monitor.dispatch_once()
            events = [(b["event"], b["incident"]["cause"]) for b in hook.bodies()]
            assert events.count(("firing", "unreachable")) == 1
            last_check_page = max(i for i, e in enumerate(events) if e[1] == "check")
            assert last_check_page < events.index(("firing", "unreachable"))
        finally:
            monitor.stop()
            db.dispose()
