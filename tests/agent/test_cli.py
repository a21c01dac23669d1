"""``boxkeeper-agent`` as a user runs it: the installed entry point, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli import main
from tests.agent.conftest import LOOPBACK, PLUGINS, REPO, HttpServer, closed_port, pid_alive, respond

pytestmark = pytest.mark.integration

AGENT = REPO / ".venv" / "bin" / "boxkeeper-agent"
DUMMY = PLUGINS / "check_dummy"


def agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    exe = [str(AGENT)] if AGENT.exists() else [sys.executable, "-m", "agent.cli"]
    return subprocess.run(
        [*exe, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


def dummy(name: str, code: int, text: str) -> str:
    return f'  - {{name: {name}, type: command, command: ["{DUMMY}", "{code}", "{text}"]}}\n'


def test_validate_ok(write_config: Callable[[str], Path]) -> None:
    path = write_config(
        "host: box\nchecks:\n"
        + dummy("a", 0, "x")
        + dummy("b", 0, "y")
        + f"  - {{name: c, type: tcp, address: '{LOOPBACK}:1'}}\n"
    )
    result = agent("validate", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config OK: 3 checks"


def test_validate_the_shipped_example() -> None:
    result = agent("validate", "--config", str(REPO / "config" / "agent.example.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK: ")


def test_broken_config_exits_2_naming_file_and_key(write_config: Callable[[str], Path]) -> None:
    path = write_config(
        "checks:\n"
        + dummy("a", 0, "x")
        + dummy("b", 0, "y")
        + "  - {name: c, type: tcp, address: 'x:1', timeout: ten}\n"
    )
    for command in ("validate", "check", "run"):
        result = agent(command, "--config", str(path))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert (
            f"{path}: checks[2].timeout: expected a duration such as 10s, 5m or 1h, got 'ten'"
            in result.stderr
        )
        assert result.stdout == ""


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = agent("validate", "--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr and "No such file" in result.stderr


def test_usage_error_exits_2_with_usage() -> None:
    result = agent("frobnicate")
    assert result.returncode == 2
    assert "usage: boxkeeper-agent" in result.stderr


@pytest.mark.skipif(not DUMMY.exists(), reason="monitoring-plugins missing")
@pytest.mark.parametrize(
    ("codes", "exit_code"),
    [
        ((0, 0), 0),
        ((0, 1), 1),
        ((1, 2), 2),
        ((0, 3), 3),
        ((3, 2), 2),
        ((1, 3), 3),
    ],
)
def test_check_exits_with_the_worst_nagios_code(
    write_config: Callable[[str], Path],
    codes: tuple[int, int],
    exit_code: int,
) -> None:
    path = write_config("checks:\n" + dummy("first", codes[0], "one") + dummy("second", codes[1], "two"))
    result = agent("check", "--config", str(path))
    assert result.returncode == exit_code, result.stdout + result.stderr


@pytest.mark.skipif(not DUMMY.exists(), reason="monitoring-plugins missing")
def test_check_table_and_json(
    write_config: Callable[[str], Path],
    http_server: Callable[..., HttpServer],
) -> None:
    srv = http_server({"/": respond(200, "<title>Bitrix24</title>")})
    port = closed_port()
    path = write_config(
        "checks:\n"
        f"  - {{name: portal, type: http, url: '{srv.url('/')}', body_regex: Bitrix, retries: 3}}\n"
        f"  - {{name: mysql-port, type: tcp, address: '{LOOPBACK}:{port}', retries: 3}}\n"
        + dummy("warn", 1, "disk getting full")
    )
    table = agent("check", "--config", str(path))
    assert table.returncode == 2, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "DURATION", "SUMMARY"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert rows["portal"].split()[1] == "OK" and f"HTTP 200 from {srv.url('/')}" in rows["portal"]
    assert rows["mysql-port"].split()[1] == "CRITICAL" and "Connection refused" in rows["mysql-port"]
    assert rows["warn"].split()[1] == "WARNING" and "disk getting full" in rows["warn"]
    assert lines[4] == "1 OK, 1 WARNING, 1 CRITICAL"

    as_json = agent("check", "--config", str(path), "--json")
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert [set(item) for item in data] == [{"name", "status", "summary", "duration_seconds"}] * 3
    assert [(d["name"], d["status"]) for d in data] == [
        ("portal", "OK"),
        ("mysql-port", "CRITICAL"),
        ("warn", "WARNING"),
    ]
    assert all(isinstance(d["duration_seconds"], float) and d["duration_seconds"] >= 0 for d in data)


def test_check_with_a_hanging_command_reports_unknown_and_leaves_nothing_behind(
    write_config: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pid"
    path = write_config(
        "checks:\n"
        f"  - {{name: hang, type: command, command: [/bin/sh, -c, 'echo $$ > {pidfile}; exec sleep 1000'],"
        " timeout: 1s}\n" + dummy("fine", 0, "all good")
    )
    result = agent("check", "--config", str(path), "--json")
    assert result.returncode == 3, result.stderr
    data = {d["name"]: d for d in json.loads(result.stdout)}
    assert (data["hang"]["status"], data["hang"]["summary"]) == ("UNKNOWN", "timed out after 1s")
    assert data["fine"]["status"] == "OK"
    pid = int(pidfile.read_text())
    end = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not pid_alive(pid), "the timed-out plugin outlived the agent"


def test_check_with_no_checks(write_config: Callable[[str], Path]) -> None:
    result = agent("check", "--config", str(write_config("host: box\n")))
    assert result.returncode == 0
    assert result.stdout == "no checks configured\n"


def test_run_refuses_a_world_readable_token_file(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    token = tmp_path / "agent.token"
    token.write_text("secret-token-value\n")
    token.chmod(0o644)
    path = write_config(
        f"listen: {LOOPBACK}:{closed_port()}\n"
        f"controller: {{url: 'http://{LOOPBACK}:1', token_file: '{token}'}}\n"
        f"spool: {{dir: '{tmp_path / 'spool'}'}}\n"
    )
    result = agent("run", "--config", str(path), timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(token) in result.stderr
    assert "secret-token-value" not in result.stdout + result.stderr


def test_run_maps_token_errors_to_exit_2(
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process: a TokenFileError escaping run_agent is still exit 2 with its message."""
    import types

    from agent.errors import TokenFileError

    seen: dict[str, object] = {}

    def run_agent(cfg: object) -> int:
        seen["listen"] = getattr(cfg, "listen", None)
        raise TokenFileError("/etc/boxkeeper/agent.token is readable by others; chmod 600 it")

    monkeypatch.setitem(sys.modules, "agent.service", types.SimpleNamespace(run_agent=run_agent))
    path = write_config("host: box\n")
    assert main(["run", "--config", str(path), "--listen", f"{LOOPBACK}:19999"]) == 2
    assert seen["listen"] == f"{LOOPBACK}:19999"  # --listen overrides the config
    assert "chmod 600" in capsys.readouterr().err


def test_environment_overrides_reach_the_cli(write_config: Callable[[str], Path]) -> None:
    path = write_config("host: box\n")
    env = {**os.environ, "BOXKEEPER_AGENT_INTERVAL": "never"}
    exe = [str(AGENT)] if AGENT.exists() else [sys.executable, "-m", "agent.cli"]
    result = subprocess.run(
        [*exe, "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "interval: expected a duration" in result.stderr
