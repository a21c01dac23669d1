"""The real agent (``boxkeeper-agent run``) with the ``bitrix:`` profile on a test box: every signal's
series on /metrics with its site label (promtool-clean) and in the pushed reports, a break seen
within one interval, the kept log offsets on disk, and the portal's DB password nowhere — not in
/metrics, a report, the spool, the agent's log, its command line or its environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.checks.registry import sample_help
from agent.spool import unpack
from tests.agent.agentproc import AgentProcess, free_port, wait_for
from tests.agent.pushsink import PushSink
from tests.boxes import mariadb
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME

pytestmark = pytest.mark.integration

HOST = "127.0.1.120"
TOKEN = "bitrix-e2e-token-not-secret"  # a local sink's fixed token
PUSH_MARKER = "push-server-stand-in"


@pytest.fixture
def push_server(spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[str]:
    """A stand-in push server: a process whose command line says push-server, and a listening port."""
    spawn([PUSH_MARKER, "300"], executable="/bin/sleep")
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(16)
    yield f"{HOST}:{listener.getsockname()[1]}"
    listener.close()


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


def status_of(text: str, check: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f'boxkeeper_check_status{{check="{check}"}}'):
            return line.rsplit(" ", 1)[1]
    return None


def test_the_profile_in_the_running_agent(box: Box, tmp_path: Path, push_server: str) -> None:
    sink = PushSink(HOST, token=TOKEN).start()
    token = tmp_path / "agent.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    state = tmp_path / "state"
    config: dict[str, Any] = {
        "host": "portal-01", "interval": "1s", "listen": f"{HOST}:{free_port(HOST)}", "state_dir": str(state),
        "controller": {"url": sink.url, "token_file": str(token), "push_interval": "1s", "timeout": "2s"},
        "spool": {"dir": str(tmp_path / "spool")},
        "bitrix": [{"docroot": box.info.docroot, "interval": "1s", "signals": {
            "php_fatals": {"log": str(box.layout.logs / "php-errors.log")},
            "backup": {"archive_dir": str(box.layout.backup_dir)},
            "push_server": {"address": push_server, "process_regex": PUSH_MARKER},
            "agents": {"max_lag": "10m"},
        }}],
    }
    password = box.info.db.password
    (box.layout.backup_dir / "www_backup_portal.tar.gz").write_bytes(b"\0" * 4096)  # a backup's archive
    subprocess.run(["runuser", "-u", "bitrix", "--", "php", "-f",
                    f"{box.info.docroot}/bitrix/modules/main/tools/cron_events.php"], check=True, timeout=60,
                   capture_output=True)
    agent = AgentProcess(tmp_path, config, "bitrix-agent")
    try:
        agent.start()
        agent.wait_ready()
        signals = ("mysql", "licence", "agents", "mail_queue", "backup", "updates", "site_checker",
                   "php_fatals", "push_server")

        def all_ok() -> str | None:
            text = agent.scrape() or ""
            return text if all(status_of(text, f"bitrix-{s}") == "0.0" for s in signals) else None

        text = wait_for("every Bitrix signal OK on /metrics", all_ok, 30)
        for name in sample_help():
            if name.startswith(("boxkeeper_log_", "boxkeeper_onec_")):
                continue  # the plain log check and the 1C checks are not in the profile
            lines = metric_lines(text, name)
            assert lines, f"{name} missing from /metrics"
            if name.startswith("boxkeeper_bitrix_"):
                assert all('site="default"' in line for line in lines), lines
        assert 'boxkeeper_mysql_threads_connected{check="bitrix-mysql"}' in text
        promtool = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                                  timeout=60, check=False)
        assert (promtool.returncode, promtool.stdout, promtool.stderr) == (0, b"", b"")

        name = "boxkeeper_bitrix_licence_remaining_seconds"
        report = wait_for("a report with the Bitrix samples", lambda: next(
            (r for r in reversed(sink.reports) if any(s["name"] == name for s in r["samples"])), None), 30)
        licence = next(s for s in report["samples"] if s["name"] == name)
        assert licence["labels"] == {"site": "default"} and licence["value"] >= 364 * 86400

        # a break shows within one interval (1 s here): the site's agents stop for 20 minutes
        mariadb.sql(box.layout.mysql_socket, "UPDATE b_agent SET LAST_EXEC = NOW() - INTERVAL 20 MINUTE, "
                    "NEXT_EXEC = NOW() - INTERVAL 19 MINUTE WHERE ACTIVE='Y'", DB_NAME)
        wait_for("bitrix-agents CRITICAL",
                 lambda: status_of(agent.scrape() or "", "bitrix-agents") == "2.0", 5)
        critical = wait_for("the CRITICAL in a report", lambda: next(
            (c for r in reversed(sink.reports) for c in r["checks"]
             if c["name"] == "bitrix-agents" and c["status"] == 2), None), 10)
        assert critical["summary"].startswith(
            "Bitrix agents are not running on portal-01: newest run 20 min ago")

        assert sorted(p.name for p in state.iterdir()) == ["bitrix-php_fatals.json", "bitrix-updates.json"]
        assert agent.proc is not None
        pid = agent.proc.pid
        seen = {
            "/metrics": agent.scrape() or "",
            "reports": json.dumps(sink.reports),
            "spool": "".join(unpack(p.read_bytes()).decode(errors="replace")  # spooled: compressed
                             for p in (tmp_path / "spool").rglob("*") if p.is_file()),
            "state": "".join(p.read_text() for p in state.iterdir()),
            "argv": Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"),
            "environment": Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace"),
            "config": agent.config_path.read_text(),
        }
        assert agent.terminate() == 0
        seen["log"] = agent.log()
        leaked = [where for where, text in seen.items() if password in text]
        assert not leaked, f"the DB password appears in: {leaked}"
        assert os.stat(state).st_mode & 0o777 == 0o700
    finally:
        agent.stop()
        sink.stop()
