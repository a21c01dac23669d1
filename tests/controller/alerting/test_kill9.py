"""``kill -9`` of a real ``boxkeeper serve`` while notifications are pending: after a restart each is
delivered exactly once, and a further restart re-sends nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from agent.report import SCHEMA, Facts, Report, to_json
from controller import inventory
from controller.config import load
from controller.store.db import Database
from tests.controller.alerting.support import check, recorder
from tests.controller.proc import ControllerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HOSTS = [f"h{i}" for i in range(5)]


def _keys(requests: list[dict[str, object]]) -> list[str]:
    return [str(r["headers"]["Idempotency-Key"]) for r in requests]  # type: ignore[index]


def _wait(what: str, predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_pending_notifications_survive_kill9_and_sent_ones_are_not_resent(tmp_path: Path) -> None:
    with recorder("127.0.3.70", status=503) as hook:
        config = tmp_path / "controller.yaml"
        hosts = ", ".join(f"{{name: {h}}}" for h in HOSTS)
        config.write_text(
            f"database: sqlite:///{tmp_path}/bk.db\nstate_dir: {tmp_path}/state\n"
            f"clients:\n  - name: acme\n    hosts: [{hosts}]\n"
            f'notify:\n  - {{type: webhook, name: hook, url: "{hook.url}"}}\n'
        )
        cfg = load(str(config))
        db = Database(cfg.database)
        db.upgrade()
        tokens = {h: inventory.add_host(db, h, "acme", cfg=cfg) for h in HOSTS}
        db.dispose()
        controller = ControllerProcess(config, tmp_path, listen="127.0.3.71:0")
        url = controller.start()
        try:
            for host in HOSTS:
                report = Report(
                    schema=SCHEMA,
                    host=host,
                    agent_version="test",
                    seq=1,
                    sent_at=time.time(),
                    push_interval_seconds=15.0,
                    checks=(check("portal", 2, summary="HTTP 502"),),
                    samples=(),
                    facts=Facts(hostname=host, os="Debian 12", kernel="6.1"),
                )
                answer = httpx.post(
                    url + "/api/v1/reports",
                    content=to_json(report),
                    timeout=10,
                    headers={"Authorization": f"Bearer {tokens[host]}", "Content-Type": "application/json"},
                )
                assert answer.status_code == 200
            # every notification was tried once and refused: all still pending
            _wait(
                "a first (refused) attempt of each notification", lambda: len(set(_keys(hook.requests))) == 5
            )
            controller.kill9()
            refused = len(hook.requests)
            hook.status = 200

            controller.start()
            _wait(
                "every pending notification delivered", lambda: len(set(_keys(hook.requests[refused:]))) == 5
            )
            time.sleep(3)  # a few more dispatcher passes: nothing is sent twice
            delivered = _keys(hook.requests[refused:])
            assert sorted(delivered) == sorted(set(delivered))
            controller.stop()

            controller.start()  # sent rows stay sent
            time.sleep(3)
            assert len(hook.requests) == refused + 5
        finally:
            controller.stop()
