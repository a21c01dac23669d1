"""``process`` checks: matching logic on a psutil-like fake, then real processes."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.checks.process import ProcessCheck, ProcessSpec
from agent.report import Status
from tests.agent.builders import process_check
from tests.agent.conftest import FakeProcess, FakePsutil

MiB = 2**20


def _fake() -> FakePsutil:
    return FakePsutil(
        [
            FakeProcess(10, "nginx", ["nginx: master process /usr/sbin/nginx"], "root", 8 * MiB, 1.0, 0.5),
            FakeProcess(11, "nginx", ["nginx: worker process"], "www-data", 16 * MiB, 2.0, 1.0),
            FakeProcess(12, "nginx", ["nginx: worker process"], "www-data", None, 0.0, 0.0),  # no rss
            FakeProcess(
                20, "mysqld", ["/usr/sbin/mysqld", "--basedir=/usr"], "mysql", 512 * MiB, 100.0, 20.0
            ),
            FakeProcess(
                30,
                "node",
                ["node", "/opt/push-server/server.js", "--config", "/etc/push-server/1.json"],
                "bitrix",
                64 * MiB,
                5.0,
                1.0,
            ),
            FakeProcess(99, "python3", ["python3", "-m", "agent", "nginx"], "boxkeeper", MiB, 0.1, 0.1),
        ]
    )


def test_name_match_counts_and_sums_rss_and_cpu() -> None:
    result = process_check("nginx", match="nginx", psutil=_fake(), own_pid=99).run(5)
    assert result.status is Status.OK
    assert result.summary.startswith("3 processes with name 'nginx' (want at least 1)")
    perf = {p.label: p for p in result.perfdata}
    assert perf["count"].value == 3
    assert perf["rss"].value == 24 * MiB and perf["rss"].unit == "B"
    assert perf["cpu"].value == pytest.approx(4.5) and perf["cpu"].unit == "s"
    assert result.details == "pids: 10 11 12"


def test_missing_process_is_critical() -> None:
    result = process_check("httpd", match="httpd", psutil=_fake(), own_pid=99).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary == "0 processes with name 'httpd' (want at least 1)"
    assert {p.label: p.value for p in result.perfdata} == {"count": 0, "rss": 0, "cpu": 0}


def test_name_match_is_exact() -> None:
    assert process_check("x", match="ngin", psutil=_fake(), own_pid=99).run(5).status is Status.CRITICAL


def test_cmdline_regex_and_user() -> None:
    push = process_check("push", cmdline_regex=r"push-server/server\.js", psutil=_fake(), own_pid=99)
    assert push.run(5).status is Status.OK
    workers = process_check("w", match="nginx", user="www-data", min_count=2, psutil=_fake(), own_pid=99).run(
        5
    )
    assert workers.status is Status.OK and workers.summary.startswith("2 processes")
    as_root = process_check("w", cmdline_regex="worker", user="root", psutil=_fake(), own_pid=99).run(5)
    assert as_root.status is Status.CRITICAL


def test_max_count() -> None:
    too_many = process_check("n", match="nginx", min_count=1, max_count=2, psutil=_fake(), own_pid=99).run(5)
    assert too_many.status is Status.CRITICAL
    assert "(want 1..2)" in too_many.summary
    ok = process_check("n", match="nginx", min_count=0, max_count=3, psutil=_fake(), own_pid=99).run(5)
    assert ok.status is Status.OK
    none_wanted = process_check("n", match="httpd", min_count=0, max_count=0, psutil=_fake(), own_pid=99)
    assert none_wanted.run(5).status is Status.OK


def test_the_agent_itself_is_never_counted() -> None:
    # pid 99 is the agent; its own command line mentions "nginx"
    result = process_check("n", cmdline_regex="nginx", psutil=_fake(), own_pid=99).run(5)
    assert result.details == "pids: 10 11 12"


def test_from_config_passes_the_injected_psutil() -> None:
    from agent.config import parse

    cfg = parse({"checks": [{"name": "db", "type": "process", "match": "mysqld", "user": "mysql"}]}).checks[0]
    fake = _fake()
    assert isinstance(cfg, ProcessSpec)
    result = ProcessCheck(cfg, psutil=fake).run(5)
    assert result.status is Status.OK
    assert fake.calls == [["pid", "name", "username"]]  # cmdline is not read when not needed


# -- real processes --------------------------------------------------------------------------


@pytest.mark.integration
def test_real_process_by_cmdline_and_user(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    marker = f"bk-proc-test-{os.getpid()}"
    regex = rf"^{marker} "
    check = process_check("sleepers", cmdline_regex=regex, user=getpass.getuser(), min_count=2)
    assert check.run(5).status is Status.CRITICAL

    first = spawn([marker, "300"], executable="/bin/sleep")
    spawn([marker, "301"], executable="/bin/sleep")
    result = check.run(5)
    assert result.status is Status.OK, result.summary
    perf = {p.label: p.value for p in result.perfdata}
    assert perf["count"] == 2
    assert perf["rss"] > 0
    assert str(first.pid) in result.details

    other_user = process_check("sleepers", cmdline_regex=regex, user="nobody-such-user").run(5)
    assert other_user.status is Status.CRITICAL

    first.kill()
    first.wait(5)
    after = check.run(5)
    assert after.status is Status.CRITICAL and after.summary.startswith("1 process ")


@pytest.mark.integration
def test_real_process_by_exact_name(tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    name = f"bksleep{os.getpid() % 100000}"
    binary = tmp_path / name
    shutil.copy("/bin/sleep", binary)
    spawn([str(binary), "300"])
    result = process_check("renamed", match=name).run(5)
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith(f"1 process with name '{name}'")
