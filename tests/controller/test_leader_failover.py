"""Two ``boxkeeper serve`` processes on one real PostgreSQL, under ingest load from simulated agents
that push to both; the leader is killed (``kill -9``) at random moments (seeded) and started again
as a follower: twice, so that each controller is killed once as the leader and the one restarted
as a follower takes over the second time (a third kill would repeat the first).

What a user would notice, checked: another controller takes over each time (within 30 s, the
issue's bound); every notification reaches the webhook receiver, and one arriving twice is only a
row that a killed leader had sent without recording it (the receiver's idempotency key tells them
apart); each update-window start fires once.
"""

from __future__ import annotations

import collections
import itertools
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from controller import inventory
from controller.alerting.models import Incident, Notification
from controller.config import load
from controller.leader import LOCK_KEY
from controller.store.db import Database
from controller.workflows.models import WindowOccurrence
from controller.workflows.windows import add_window
from tests.controller.alerting.support import recorder
from tests.controller.conftest import PostgresServer
from tests.controller.proc import ControllerProcess
from tests.controller.simagents import SimFleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = [f"h{i:02d}" for i in range(40)]
KILLS = 2  # each of the two controllers killed once while it leads
TAKEOVER_BOUND = 30.0  # the bound on a takeover


def wait_for(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.2)


def leader_pid(db: Database) -> int | None:
    """The pid of the ``serve`` holding the leader lock, from its connection's application_name."""
    with db.read_session() as s:
        name = s.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objid::bigint = :key"), {"key": LOCK_KEY},
        ).scalar()
    found = re.search(r" pid (\d+)$", name or "")
    return int(found.group(1)) if found else None


def test_killing_the_leader_loses_no_notification_and_fires_no_window_twice(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    rng = random.Random(18)
    with recorder("127.0.3.94") as hook:
        config = tmp_path / "controller.yaml"
        url = postgres_server.new_database()
        config.write_text(
            f"database: {url}\nstate_dir: {tmp_path}/state\n"
            f"clients:\n  - name: acme\n    timezone: UTC\n"
            f"    hosts: [{', '.join(f'{{name: {h}}}' for h in HOSTS)}]\n"
            "detection: {evaluate_interval: 1s, silence_after: 20s}\n"
            f'notify:\n  - {{type: webhook, name: hook, url: "{hook.url}", group_wait: 0s}}\n'
        )
        cfg = load(str(config))
        db = Database(cfg.database)
        db.upgrade()
        inventory.sync_config(cfg, db)
        tokens = {h: inventory.add_host(db, h, "acme") for h in HOSTS}
        with db.session() as s:  # every minute; h00 has no SSH address: each start is recorded, runs nothing
            add_window(s, name="every-minute", target="h00", playbook="bitrix-modules-update",
                       cron="* * * * *", duration_minutes=30, timezone="UTC", variables={}, now=time.time())
        controllers = [ControllerProcess(config, tmp_path / "a", listen="127.0.3.92:0"),
                       ControllerProcess(config, tmp_path / "b", listen="127.0.3.93:0")]
        for c in controllers:
            c.workdir.mkdir()
            c.start()  # one after the other: the second finds the schema migrated
        fleet = SimFleet(tokens, lambda: [c.url for c in controllers], interval=1.0, threads=4,
                         max_seconds=500)
        fleet.start()
        takeovers: list[float] = []
        try:
            first = wait_for("a leader", lambda: leader_pid(db), 30)
            assert first in {c.proc.pid for c in controllers if c.proc}
            flips = 0
            for _ in range(KILLS):
                until = time.monotonic() + rng.uniform(6, 16)
                while time.monotonic() < until:  # portals go down and up: incidents, pages, resolves
                    host = rng.choice(HOSTS[1:])
                    fleet.status[host] = 0 if fleet.status.get(host) else 2
                    flips += 1
                    time.sleep(rng.uniform(0.5, 2.0))
                pid = leader_pid(db)
                [victim] = [c for c in controllers if c.proc is not None and c.proc.pid == pid]
                [survivor] = [c for c in controllers if c is not victim]
                killed_at = time.monotonic()
                victim.kill9()
                assert survivor.proc is not None
                heir = survivor.proc.pid
                wait_for("the other controller to take over", lambda h=heir: leader_pid(db) == h,
                         TAKEOVER_BOUND)
                takeovers.append(time.monotonic() - killed_at)
                victim.start()  # back as a follower
                assert leader_pid(db) == survivor.proc.pid
            fleet.status.clear()  # every portal up again: every incident resolves

            def settled() -> bool:
                with db.read_session() as s:
                    unresolved = s.scalars(select(Incident.id).where(Incident.status != "resolved")).all()
                    pending = s.scalars(select(Notification.id).where(Notification.status != "sent")).all()
                return not unresolved and not pending
            # a row a killed leader had claimed waits for its claim's lease (120 s) before it is retried
            wait_for("every incident resolved and every notification sent", settled, 240)
            time.sleep(2)
        finally:
            fleet.stop()
            for c in controllers:
                c.stop()

        with db.read_session() as s:
            attempts = {key: n for key, n in s.execute(select(Notification.dedup_key, Notification.attempts))}
            incidents = s.scalars(select(Incident.id)).all()
            fired = s.execute(select(WindowOccurrence.scheduled_for, WindowOccurrence.status)).all()
        db.dispose()
        assert len(takeovers) == KILLS
        received = collections.Counter(str(r["headers"]["Idempotency-Key"]) for r in hook.requests)
        # nothing lost: every notification of every incident reached the receiver
        assert incidents and flips
        for incident in incidents:
            assert f"{incident}:hook:firing:critical" in received
            assert f"{incident}:hook:resolved" in received
        assert set(received) == set(attempts)
        # nothing sent twice, except a row whose first sender was killed before it could record the send
        twice = [key for key, n in received.items() if n > 1]
        assert all(attempts[key] >= 2 for key in twice), twice
        # each window start fired once, none was missed across the leader changes
        starts = sorted(when for when, _ in fired)
        assert starts and len(starts) == len(set(starts))
        assert all(status in ("done", "started") for _, status in fired)
        assert all(b - a == 60 for a, b in itertools.pairwise(starts))
