"""Start-up grace: 200 simulated agents push real reports to a real ``boxkeeper serve``; the
controller is stopped for a while and started again. The agents that come back are never declared
"agent down"; the few that do not come back are, once their grace has passed (one notification per
client, listing them).

Timings are scaled down so that the test takes about two minutes: the agents push every 2 s
(15 s in the example config), a host is silent after 10 s (45 s), the controller is away 25 s or
more (the issue's "2 minutes": about 2.5 liveness timeouts), the start-up grace is 20 s (default:
the liveness timeout + 60 s). The margins are wide because other tests share the machine. The
agents keep what they could not push and replay it (3 reports at most), as the real agent's spool
does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from controller import inventory
from controller.alerting.models import Incident
from controller.config import load
from controller.store.db import Database
from controller.store.models import HostState
from tests.controller.alerting.support import recorder
from tests.controller.proc import ControllerProcess
from tests.controller.simagents import SimFleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = {"acme": [f"acme-{i:03d}" for i in range(100)], "globex": [f"globex-{i:03d}" for i in range(100)]}
GONE = {"acme-007", "acme-042", "acme-077", "acme-090", "acme-099", "acme-003",
        "globex-010", "globex-020", "globex-055", "globex-061"}
OUTAGE = 25.0


def wait_for(what: str, predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.2)


def hosts_in(body: dict[str, Any]) -> list[str]:
    return [i["host"] for i in body.get("incidents") or [body["incident"]]]


def test_no_agent_down_after_an_outage_for_agents_that_come_back(tmp_path: Path) -> None:
    with recorder("127.0.3.90") as hook:
        config = tmp_path / "controller.yaml"
        clients = "".join(f"  - name: {client}\n    hosts: [{', '.join(f'{{name: {h}}}' for h in hosts)}]\n"
                          for client, hosts in CLIENTS.items())
        config.write_text(
            f"database: sqlite:///{tmp_path}/bk.db\nstate_dir: {tmp_path}/state\n"
            f"clients:\n{clients}"
            "detection: {evaluate_interval: 1s, silence_after: 10s, min_silence: 1s, startup_grace: 20s}\n"
            f'notify:\n  - {{type: webhook, name: hook, url: "{hook.url}", group_wait: 3s}}\n'
        )
        cfg = load(str(config))
        db = Database(cfg.database)
        db.upgrade()
        inventory.sync_config(cfg, db)
        tokens = {h: inventory.add_host(db, h, c) for c, hosts in CLIENTS.items() for h in hosts}
        controller = ControllerProcess(config, tmp_path, listen="127.0.3.91:0")
        controller.start()
        up = [True]
        fleet = SimFleet(tokens, lambda: [controller.url] if up[0] else [], interval=2.0, threads=16,
                         max_seconds=400)
        fleet.start()
        try:
            def reported() -> int:
                with db.read_session() as s:
                    return int(s.scalar(select(func.count()).select_from(HostState)
                                        .where(HostState.last_report_at.is_not(None))) or 0)

            wait_for("every host's first report", lambda: reported() == 200, 60)
            time.sleep(5)
            assert hook.bodies() == []

            controller.stop()
            up[0] = False
            fleet.down |= GONE  # these agents never come back
            time.sleep(OUTAGE)  # every host is silent by now, and the agents keep retrying
            up[0] = True
            controller.start()

            def paged() -> set[str]:
                return {h for b in hook.bodies() if b["event"] == "firing" for h in hosts_in(b)}

            wait_for("the pages of the hosts that did not come back", lambda: paged() >= GONE, 120)
            time.sleep(8)  # a few more passes: nothing else pages

            firing = [b for b in hook.bodies() if b["event"] == "firing"]
            assert paged() == GONE  # zero "agent down" for the 190 that came back
            assert all(b["incident"]["cause"] == "agent_down" for b in firing)
            assert len(firing) == 2  # one per client, listing its hosts
            with db.read_session() as s:
                down = s.scalars(select(Incident.host_name).where(Incident.cause == "agent_down")).all()
            assert set(down) == GONE and len(down) == len(GONE)  # not even an unnotified incident
            assert fleet.stored > 200 * 5
        finally:
            fleet.stop()
            controller.stop()
            db.dispose()
