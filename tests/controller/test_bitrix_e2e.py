"""End to end through the controller: a test box's site cron stops, its Bitrix agents stop with it,
and an operator is paged — then told it is over when cron comes back.

A real ``boxkeeper serve`` (SQLite), a real ``boxkeeper-agent run`` with the ``bitrix:`` profile of
a real test box (MariaDB, the portal's docroot, cron), a webhook receiver. The site's cron line is
commented out as a BitrixVM admin pauses it; the agents' last run is moved 20 minutes back (the
time that would have passed). The agent's ``bitrix-agents`` check goes CRITICAL, the controller
opens the incident and the webhook gets it with the lag; the line is put back, the agents run,
and the webhook gets "resolved".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agent.agentproc import AgentProcess, free_port, wait_for
from tests.boxes import mariadb
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME
from tests.controller.alerting.support import recorder
from tests.controller.proc import ControllerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = "127.0.2.30"
ROOT = Path(__file__).resolve().parents[2]


def _cron_line(box: Box, paused: bool) -> None:
    path = box.layout.cron_file
    lines = [("#" + line.lstrip("#") if paused else line.lstrip("#")) if "cron_events.php" in line else line
             for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


def _cron_events(box: Box) -> None:
    subprocess.run(["runuser", "-u", "bitrix", "--", "php", "-f",
                    f"{box.info.docroot}/bitrix/modules/main/tools/cron_events.php"],
                   check=True, timeout=60, capture_output=True)


def test_a_stopped_site_cron_pages_with_the_lag_and_resolves(box: Box, tmp_path: Path) -> None:
    with recorder("127.0.3.80") as hook:
        cfg_path = tmp_path / "controller.yaml"
        cfg_path.write_text(yaml.safe_dump({
            "state_dir": str(tmp_path / "state"),
            "clients": [{"name": "acme", "hosts": [{"name": "portal-01"}]}],
            "notify": [{"type": "webhook", "name": "ops", "url": hook.url + "/hook"}],
            "detection": {"evaluate_interval": "1s"},
        }))
        added = subprocess.run([sys.executable, "-m", "controller.cli", "--config", str(cfg_path), "hosts",
                                "add", "portal-01", "--client", "acme", "--json"], capture_output=True,
                               text=True, check=True, timeout=60, cwd=ROOT)
        token = tmp_path / "agent.token"
        token.write_text(json.loads(added.stdout)["token"] + "\n")
        token.chmod(0o600)
        controller = ControllerProcess(cfg_path, tmp_path, listen=f"{HOST}:{free_port(HOST)}")
        url = controller.start()
        _cron_events(box)
        others = ("mysql", "licence", "mail_queue", "backup", "updates", "site_checker", "php_fatals",
                  "push_server")
        signals: dict[str, Any] = {name: False for name in others}
        agent = AgentProcess(tmp_path, {
            "host": "portal-01", "interval": "2s", "listen": f"{HOST}:{free_port(HOST)}",
            "state_dir": str(tmp_path / "agent-state"), "spool": {"dir": str(tmp_path / "spool")},
            "controller": {"url": url, "token_file": str(token), "push_interval": "2s"},
            "bitrix": [{"docroot": box.info.docroot, "interval": "2s",
                        "signals": {**signals, "agents": {"max_lag": "10m"}}}],
        }, "bitrix-e2e-agent")
        try:
            agent.start()
            agent.wait_ready()
            _cron_line(box, paused=True)  # cron itself keeps running; the site's line is off
            mariadb.sql(box.layout.mysql_socket, "UPDATE b_agent SET LAST_EXEC = NOW() - INTERVAL 20 MINUTE, "
                        "NEXT_EXEC = NOW() - INTERVAL 19 MINUTE WHERE ACTIVE='Y'", DB_NAME)
            page = wait_for("the page", lambda: next(
                (b for b in hook.bodies() if b["event"] == "firing"), None), 60)
            incident = page["incident"]
            assert incident["host"] == "portal-01" and incident["severity"] == "critical"
            assert "Bitrix agents are not running on portal-01: newest run 20 min ago" in incident["summary"]
            assert "Bitrix agents are not running on portal-01" in page["text"]  # what the operator reads

            _cron_line(box, paused=False)
            _cron_events(box)  # the line's next minute: the agents run again
            resolved = wait_for("the all-clear", lambda: next(
                (b for b in hook.bodies() if b["event"] == "resolved"), None), 60)
            assert resolved["incident"]["id"] == incident["id"]
            assert [b["event"] for b in hook.bodies()] == ["firing", "resolved"]  # one page, one all-clear
        finally:
            _cron_line(box, paused=False)
            agent.stop()
            controller.stop()
