"""Reports replayed from an agent's spool (sent long ago, arriving now) update the history but do not
page about states that have already ended; the state the agent reports once it is current does.

Real ingest (the agent's report schema), the real monitor with a fake clock, a real webhook receiver.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from agent.report import SCHEMA, CheckReport, Facts, Report, to_json
from controller.alerting.models import Incident
from controller.ingest import ingest
from controller.monitor import Monitor
from controller.store.db import Database
from controller.store.models import StateChange
from tests.controller.alerting.support import FakeClock, agent_for, check, controller_config, recorder

pytestmark = pytest.mark.integration


def push(db: Database, token: str, seq: int, sent_at: float, clock: FakeClock, *checks: CheckReport) -> str:
    report = Report(schema=SCHEMA, host="box-01", agent_version="test", seq=seq, sent_at=sent_at,
                    push_interval_seconds=15.0, checks=checks, samples=(),
                    facts=Facts(hostname="box-01", os="Debian 12", kernel="6.1"))
    return ingest(db, token, to_json(report), clock=clock).status


@pytest.mark.parametrize("hold", [True, False])
def test_a_replayed_outage_that_already_ended_pages_nobody(tmp_path: Path, hold: bool) -> None:
    clock = FakeClock()
    with recorder("127.0.3.32") as hook:
        cfg = controller_config(
            tmp_path, hosts=[{"name": "box-01"}],
            notify=[{"type": "webhook", "name": "hook", "url": hook.url, "group_wait": "0s",
                     "send_resolved": False}],
            detection={"hold_replays": hold},
        )
        db = Database(cfg.database)
        db.upgrade()
        token = agent_for(db, cfg, "box-01", clock).token
        monitor = Monitor(cfg, db, clock=clock)
        try:
            start = clock()
            assert push(db, token, 1, start, clock, check("portal")) == "stored"
            monitor.evaluate_once()
            # the agent could not reach us for 10 minutes; meanwhile its portal was down from
            # minute 3 to minute 6. Now it replays its spool, one report after the other, with
            # a detection pass between each (as the monitor runs while they arrive).
            clock.advance(600)
            for n in range(1, 41):
                sent = start + n * 15
                down = 180 <= n * 15 < 360
                portal = check("portal", 2 if down else 0, summary="HTTP 502" if down else "HTTP 200")
                clock.advance(0.5)
                push(db, token, 1 + n, sent, clock, portal)
                monitor.evaluate_once()
                monitor.dispatch_once()
            with db.read_session() as s:
                changes = s.scalars(select(StateChange.new_status).where(StateChange.check_name == "portal")
                                    .order_by(StateChange.id)).all()
                portal_incidents = s.scalars(select(Incident.id).where(Incident.cause == "check")).all()
            # the history has the outage (down at minute 3, up at minute 6) ...
            assert list(changes) == [0, 2, 0]
            pages = [b for b in hook.bodies() if b["incident"]["cause"] == "check"]
            if hold:
                # ... but nobody was paged about it, and no incident was opened for it
                assert pages == [] and portal_incidents == []
            else:  # hold_replays: false pages about the old outage (the behaviour this replaces)
                assert pages and pages[0]["incident"]["summary"] == "portal down: HTTP 502"

            # once current, a portal that is down now pages as usual
            if hold:
                clock.advance(1)
                push(db, token, 42, clock(), clock, check("portal", 2, summary="HTTP 503"))
                monitor.evaluate_once()
                monitor.dispatch_once()
                [page] = [b for b in hook.bodies() if b["incident"]["cause"] == "check"]
                assert page["incident"]["summary"] == "portal down: HTTP 503"
        finally:
            monitor.stop()
            db.dispose()
