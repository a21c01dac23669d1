"""The real agent process against a real push sink: outages, kill -9, 4xx, token, /metrics.

Addresses: 127.0.1.110-127.0.1.130 (the agent tests' share of 127.0.1.0/24 for the runtime).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.agent.agentproc import AgentProcess, free_port, wait_for
from tests.agent.conftest import pid_alive
from tests.agent.pushsink import PushSink

TOKEN = "t0ken-for-tests-only"
SINK_HOST = "127.0.1.110"
AGENT_HOST = "127.0.1.111"

pytestmark = pytest.mark.integration


@pytest.fixture
def sink() -> Iterator[PushSink]:
    s = PushSink(SINK_HOST, token=TOKEN).start()
    yield s
    s.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def agent_config(
    tmp_path: Path,
    sink: PushSink | None,
    token_file: Path | None,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "host": "test-box",
        "interval": "1s",
        "listen": f"{AGENT_HOST}:{free_port(AGENT_HOST)}",
        "spool": {"dir": str(tmp_path / "spool"), "max_bytes": "8MiB"},
        "checks": [
            {"name": "true", "type": "command", "command": ["/bin/true"], "timeout": "5s"},
            {"name": "agent-proc", "type": "process", "cmdline_regex": "boxkeeper-agent run"},
            {"name": "root-disk", "type": "disk", "path": "/"},
        ],
    }
    if sink is not None and token_file is not None:
        config["controller"] = {
            "url": sink.url,
            "token_file": str(token_file),
            "push_interval": "1s",
            "timeout": "2s",
        }
    config.update(extra)
    return config


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(config: dict[str, Any], name: str = "agent") -> AgentProcess:
        agent = AgentProcess(tmp_path, config, name)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


def spooled(tmp_path: Path) -> list[int]:
    return sorted(int(p.stem) for p in (tmp_path / "spool").glob("*.json"))


def assert_gapless(seqs: list[int]) -> None:
    """Every seq from the first one on, once, in order (a fresh agent starts at unix ms + 1)."""
    assert seqs, "no report arrived"
    assert seqs[0] > 1_700_000_000_000, f"a fresh agent must number after unix ms, got {seqs[0]}"
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"gap, duplicate or disorder in {seqs}"


def test_reports_survive_an_outage_in_order_without_gap_or_duplicate(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents(agent_config(tmp_path, sink, token_file)).start()
    agent.wait_ready()
    wait_for("3 reports at the sink", lambda: len(sink.seqs()) >= 3)
    sink.stop()
    wait_for("3 reports spooled during the outage", lambda: len(spooled(tmp_path)) >= 3)
    waiting = spooled(tmp_path)
    sink.start()
    wait_for("the spooled reports and a newer one", lambda: sink.seqs() and sink.seqs()[-1] > waiting[-1] + 1)
    assert_gapless(sink.seqs())
    assert set(waiting) <= set(sink.seqs())
    report = sink.reports[-1]
    assert report["host"] == "test-box" and report["schema"] == "boxkeeper.report/1"
    assert {c["name"] for c in report["checks"]} == {"true", "agent-proc", "root-disk"}
    assert any(s["name"] == "boxkeeper_load1" for s in report["samples"])
    assert report["facts"]["kernel"]
    metrics = agent.scrape() or ""
    assert 'boxkeeper_push_errors_total{reason="connection"}' in metrics
    assert agent.terminate() == 0
    assert "metrics at " + agent.metrics_url in agent.log()
    assert TOKEN not in agent.log()


def test_kill_9_with_a_full_spool_then_restart_loses_and_repeats_nothing(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    config = agent_config(tmp_path, sink, token_file)
    first = agents(config, "first").start()
    first.wait_ready()
    wait_for("2 reports at the sink", lambda: len(sink.seqs()) >= 2)
    sink.stop()
    wait_for("4 reports spooled", lambda: len(spooled(tmp_path)) >= 4)
    first.kill9()
    left = spooled(tmp_path)
    assert left, "the spool must not be empty for this test"
    highest_before = max(left)

    second = agents(config, "second").start()
    second.wait_ready()
    wait_for("the restarted agent to spool a newer report", lambda: max(spooled(tmp_path)) > highest_before)
    sink.start()
    wait_for("replay and newer reports", lambda: sink.seqs() and sink.seqs()[-1] > highest_before + 2)
    assert_gapless(sink.seqs())
    assert second.terminate() == 0


def test_a_4xx_is_not_retried_forever(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    sink.status = 422
    agent = agents(agent_config(tmp_path, sink, token_file)).start()
    agent.wait_ready()
    wait_for("3 different reports refused", lambda: len(set(sink.posted_seqs())) >= 3)
    posted = sink.posted_seqs()
    assert len(posted) == len(set(posted)), f"a refused report was sent again: {posted}"
    assert posted == sorted(posted)
    rejected = sorted(int(p.stem) for p in (tmp_path / "spool" / "rejected").glob("*.json"))
    assert rejected and set(rejected) <= set(posted)
    log = agent.log()
    assert "ERROR" in log and "REJECTED" in log and "HTTP 422" in log and "forced answer 422" in log
    sink.status = None
    wait_for("delivery once the sink accepts again", lambda: sink.seqs())
    assert min(sink.seqs()) > max(rejected)
    assert agent.terminate() == 0


def test_a_readable_token_file_stops_the_agent_with_exit_2(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    token_file.chmod(0o644)
    agent = agents(agent_config(tmp_path, sink, token_file)).start()
    assert agent.proc is not None
    assert agent.proc.wait(60) == 2
    log = agent.log()
    assert f"chmod 600 {token_file}" in log and "0644" in log
    assert TOKEN not in log
    assert sink.requests == []


def test_live_metrics_of_the_real_agent_pass_promtool(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents(agent_config(tmp_path, sink, token_file)).start()
    agent.wait_ready()
    text = wait_for(
        "check results on /metrics",
        lambda: (t := agent.scrape()) and 'boxkeeper_processes{check="agent-proc"}' in t and t,
    )
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert 'boxkeeper_check_status{check="true"} 0.0' in text
    assert "boxkeeper_spool_reports" in text and 'boxkeeper_agent_info{version="' in text
    assert "process_resident_memory_bytes" in text
    assert agent.terminate() == 0


def test_a_check_that_hangs_forever_is_unknown_and_metrics_keep_answering(
    tmp_path: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    hang = tmp_path / "bk-hanging-plugin"  # /bin/sleep under a name we can find and clean up
    hang.symlink_to("/bin/sleep")
    config = agent_config(tmp_path, None, None)
    config["checks"].append(
        {"name": "hangs", "type": "command", "command": [str(hang), "100000"], "timeout": "1s"}
    )
    agent = agents(config).start()
    try:
        agent.wait_ready()
        # Before the first round every check is a soft UNKNOWN "pending": wait for the hung check's
        # *hard* UNKNOWN (its run timed out) so the assertions below are about real results.
        text = wait_for(
            "the hung check to time out (hard UNKNOWN)",
            lambda: (t := agent.scrape())
            and 'boxkeeper_check_status{check="hangs"} 3.0' in t
            and 'boxkeeper_check_hard_state{check="hangs"} 1.0' in t
            and t,
        )
        assert 'boxkeeper_check_status{check="true"} 0.0' in text
        for _ in range(5):  # and /metrics goes on answering while the check keeps hanging
            again = agent.scrape()
            assert again is not None and 'boxkeeper_check_status{check="hangs"} 3.0' in again
        assert "boxkeeper_spool" not in text  # no controller: no push
        assert agent.terminate() == 0
    finally:
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == hang.name:
                proc.kill()


def test_a_hard_state_change_is_pushed_at_once_not_at_the_next_push_interval(
    tmp_path: Path,
    sink: PushSink,
    token_file: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    flag = tmp_path / "portal-up"
    flag.touch()
    config = agent_config(tmp_path, sink, token_file)
    config["controller"]["push_interval"] = "1h"  # only a hard change can bring a second report
    up = f"test -e {shlex.quote(str(flag))} || exit 2"  # Nagios: exit 2 = CRITICAL
    config["checks"] = [
        {
            "name": "portal",
            "type": "command",
            "command": ["/bin/sh", "-c", up],
            "interval": "1s",
            "retries": 2,
            "retry_interval": "1s",
        }
    ]
    agent = agents(config).start()
    agent.wait_ready()

    def portal(report: dict[str, Any]) -> tuple[int, bool]:
        check = next(c for c in report["checks"] if c["name"] == "portal")
        return int(check["status"]), bool(check["hard"])

    wait_for("a report with the portal OK", lambda: any(portal(r) == (0, True) for r in list(sink.reports)))
    flag.unlink()
    wait_for(
        "a report with the portal hard CRITICAL",
        lambda: any(portal(r) == (2, True) for r in list(sink.reports)),
    )
    assert_gapless(sink.seqs())
    assert agent.terminate() == 0


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_sigterm_kills_the_process_groups_of_hanging_plugins(
    tmp_path: Path,
    agents: Callable[..., AgentProcess],
) -> None:
    plugin_pid, child_pid = tmp_path / "plugin.pid", tmp_path / "child.pid"
    # The plugin leaves a background child in its process group, then hangs; the check's timeout
    # (10 min) is far away, so only the agent's shutdown can end them.
    script = (
        f"sleep 100000 & echo $! > {shlex.quote(str(child_pid))}; "
        f"echo $$ > {shlex.quote(str(plugin_pid))}; exec sleep 100000"
    )
    config = agent_config(tmp_path, None, None)
    config["checks"] = [
        {"name": "hangs", "type": "command", "command": ["/bin/sh", "-c", script], "timeout": "10m"},
        {"name": "root-disk", "type": "disk", "path": "/"},
    ]
    agent = agents(config).start()
    agent.wait_ready()

    def pids() -> tuple[int, int] | None:
        try:
            return int(plugin_pid.read_text()), int(child_pid.read_text())
        except (OSError, ValueError):
            return None

    plugin, child = wait_for("the plugin and its child to start", pids)
    try:
        assert os.getpgid(plugin) == plugin  # the plugin leads its own group (start_new_session)
        assert sorted(_group_members(plugin)) == sorted([plugin, child])
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGTERM)  # not agent.terminate(): that reaps children itself
        assert agent.proc.wait(60) == 0
        wait_for("the plugin and its child to be gone",
                 lambda: not pid_alive(plugin) and not pid_alive(child), timeout=30)
        assert _group_members(plugin) == []
        assert "received SIGTERM, stopping" in agent.log()
    finally:  # leave nothing behind even when the agent did
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(plugin, signal.SIGKILL)
