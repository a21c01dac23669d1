"""``command`` checks with real monitoring-plugins and real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.checks.command import interpret, plugin_environment
from agent.report import Status
from tests.agent.builders import command_check
from tests.agent.conftest import LOOPBACK, PLUGINS, closed_port, pid_alive

pytestmark = pytest.mark.integration

needs_plugins = pytest.mark.skipif(
    not (PLUGINS / "check_dummy").exists(), reason="monitoring-plugins missing"
)


def _wait_until(predicate: Callable[[], bool], deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@needs_plugins
@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("0", Status.OK),
        ("1", Status.WARNING),
        ("2", Status.CRITICAL),
        ("3", Status.UNKNOWN),
    ],
)
def test_check_dummy_exit_codes_map_to_statuses(code: str, status: Status) -> None:
    result = command_check("dummy", (str(PLUGINS / "check_dummy"), code, "text from the plugin")).run(10)
    assert result.status is status
    assert result.summary.endswith("text from the plugin")


@needs_plugins
def test_check_load_summary_and_perfdata() -> None:
    result = command_check(
        "load", (str(PLUGINS / "check_load"), "-w", "400,300,200", "-c", "800,600,400")
    ).run(10)
    assert result.status is Status.OK
    assert result.summary.startswith("LOAD OK")
    assert "|" not in result.summary
    labels = {p.label for p in result.perfdata}
    assert {"load1", "load5", "load15"} <= labels


@needs_plugins
def test_check_tcp_against_a_closed_port_is_critical() -> None:
    port = closed_port()
    result = command_check("tcp", (str(PLUGINS / "check_tcp"), "-H", LOOPBACK, "-p", str(port))).run(10)
    assert result.status is Status.CRITICAL
    assert "Connection refused" in result.summary


@needs_plugins
def test_check_procs_counts_a_real_process(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    marker = f"bk-cmd-{os.getpid()}"
    child = spawn([marker, "300"], executable="/bin/sleep")  # argv[0] is the marker
    result = command_check("procs", (str(PLUGINS / "check_procs"), "-a", marker, "-c", "1:1")).run(10)
    assert result.status is Status.OK, result.summary
    assert "1 process" in result.summary
    assert [p.value for p in result.perfdata if p.label == "procs"] == [1.0]
    assert child.poll() is None


def test_exit_codes_outside_0_to_3_are_unknown() -> None:
    result = command_check("sh", ("/bin/sh", "-c", "echo 'weird plugin'; exit 7")).run(10)
    assert result.status is Status.UNKNOWN
    assert "exit code 7" in result.summary and "weird plugin" in result.summary


def test_long_output_goes_to_details_and_stderr_is_kept() -> None:
    script = "printf 'WARN - two things|a=1;2;3\\nfirst thing\\nsecond thing\\n'; echo oops >&2; exit 1"
    result = command_check("sh", ("/bin/sh", "-c", script)).run(10)
    assert result.status is Status.WARNING
    assert result.summary == "WARN - two things"
    assert result.details.splitlines() == ["first thing", "second thing", "stderr: oops"]
    assert [(p.label, p.value, p.warn, p.crit) for p in result.perfdata] == [("a", 1.0, 2.0, 3.0)]


def test_never_a_shell_metacharacters_are_plain_arguments(tmp_path: Path) -> None:
    target = tmp_path / "should-not-exist"
    result = command_check("echo", ("/bin/echo", f"OK; touch {target}")).run(10)
    assert result.status is Status.OK
    assert result.summary == f"OK; touch {target}"
    assert not target.exists()


def test_child_runs_with_c_locale_and_configured_env() -> None:
    check = command_check("env", ("/usr/bin/env",), env={"BK_EXTRA": "1"})
    old = os.environ.get("LC_MESSAGES")
    os.environ["LC_MESSAGES"] = "ru_RU.UTF-8"
    try:
        result = check.run(10)
    finally:
        if old is None:
            del os.environ["LC_MESSAGES"]
        else:
            os.environ["LC_MESSAGES"] = old
    lines = set((result.summary + "\n" + result.details).splitlines())
    assert {"LANG=C", "LC_ALL=C", "BK_EXTRA=1"} <= lines
    assert not any(line.startswith("LC_MESSAGES=") for line in lines)


def test_missing_executable_is_unknown() -> None:
    result = command_check("missing", ("/nonexistent/check_thing",)).run(10)
    assert result.status is Status.UNKNOWN
    assert "cannot run /nonexistent/check_thing" in result.summary


def test_hanging_plugin_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    # a plugin that starts a grandchild and then hangs: both must be gone after the timeout
    script = f"sleep 1000 & echo $! > {pidfile}; echo $$ >> {pidfile}; exec sleep 1000"
    result = command_check("hang", ("/bin/sh", "-c", script)).run(1.0)
    assert result.status is Status.UNKNOWN
    assert result.summary == "timed out after 1s"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    assert _wait_until(lambda: not any(pid_alive(p) for p in pids)), "the plugin's process group survived"


def test_a_plain_sleep_with_timeout_is_unknown_and_gone() -> None:
    before = _sleepers("1000.5")
    result = command_check("sleep", ("sleep", "1000.5")).run(1)
    assert result.status is Status.UNKNOWN and "timed out after 1s" in result.summary
    assert _wait_until(lambda: _sleepers("1000.5") <= before)


def _sleepers(arg: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", arg.encode()] and pid_alive(int(entry)):
                        found.add(int(entry))
            except OSError:
                continue
    return found


def test_killed_by_signal_is_unknown() -> None:
    result = command_check(
        "sig", (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    ).run(10)
    assert result.status is Status.UNKNOWN
    assert "SIGTERM" in result.summary


def test_interpret_is_pure_and_handles_no_output() -> None:
    assert interpret(0, b"", b"").summary == "(no output)"
    assert interpret(2, b"", b"boom\nmore").summary == "boom"
    assert interpret(0, "ОК: база доступна\n".encode(), b"").summary == "ОК: база доступна"


def test_plugin_environment_drops_locale_and_adds_extra() -> None:
    env = plugin_environment(
        {"LANG": "ru_RU.UTF-8", "LC_ALL": "ru_RU", "LANGUAGE": "ru", "HOME": "/h"}, {"X": "1"}
    )
    assert env["LANG"] == "C" and env["LC_ALL"] == "C" and "LANGUAGE" not in env
    assert env["HOME"] == "/h" and env["X"] == "1" and "PATH" in env
