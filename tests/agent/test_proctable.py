"""All process checks share one cheap scan of /proc; per-process details are read lazily."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from agent.checks.base import Resources
from agent.checks.process import ProcessCheck
from agent.checks.registry import build_check
from agent.config import parse
from agent.proctable import CLOCK_TICKS, PAGE_SIZE, NamedView, ProcessTable
from agent.report import Status
from tests.agent.builders import process_check


def fake_proc(
    root: Path,
    pid: int,
    comm: str,
    cmdline: list[str],
    *,
    uid: int = 0,
    rss_pages: int = 10,
    utime: int = 0,
    stime: int = 0,
) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "comm").write_text(comm[:15] + "\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")
    (d / "status").write_text(f"Name:\t{comm[:15]}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "statm").write_text(f"1000 {rss_pages} 50 1 0 100 0\n")
    fields = ["S", "1", str(pid), str(pid), "0", "-1", "0", "0", "0", "0", "0", str(utime), str(stime)]
    fields += ["0", "0", "20", "0", "1", "0", "100", "1000", str(rss_pages)]  # ... starttime vsize rss
    (d / "stat").write_text(f"{pid} ({comm[:15]}) " + " ".join(fields + ["0"] * 30) + "\n")


def test_checks_falling_due_together_share_one_scan(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "nginx", ["nginx: master process /usr/sbin/nginx"], rss_pages=100)
    fake_proc(
        tmp_path,
        11,
        "node",
        ["node", "/opt/push-server/server.js"],
        uid=0,
        rss_pages=200,
        utime=3 * CLOCK_TICKS,
        stime=CLOCK_TICKS,
    )
    fake_proc(tmp_path, 12, "crond", ["/usr/sbin/crond", "-n"])
    (tmp_path / "self").mkdir()  # not a pid: ignored
    now = [0.0]
    table = ProcessTable(tmp_path, max_age=1.0, clock=lambda: now[0])
    by_name = process_check("nginx", match="nginx", psutil=table, own_pid=1).run(5)
    by_cmdline = process_check("push", cmdline_regex="push-server", user="root", psutil=table, own_pid=1)
    by_cmdline = by_cmdline.run(5)
    missing = process_check("httpd", match="httpd", psutil=table, own_pid=1).run(5)
    assert table.scans == 1
    assert (by_name.status, by_cmdline.status, missing.status) == (Status.OK, Status.OK, Status.CRITICAL)
    perf = {p.label: p.value for p in by_cmdline.perfdata}
    assert perf == {"count": 1, "rss": 200 * PAGE_SIZE, "cpu": 4.0}
    now[0] += 1.0
    process_check("nginx", match="nginx", psutil=table, own_pid=1).run(5)
    assert table.scans == 2


def test_the_process_plugin_builds_its_checks_on_the_agents_shared_table(tmp_path: Path) -> None:
    """agent/checks/process.py ``build``: with Resources(processes=table), a ``match`` check reads the
    table's index of that name, a ``cmdline_regex`` check the whole table; one scan for both."""
    fake_proc(tmp_path, 10, "nginx", ["nginx: master process"])
    fake_proc(tmp_path, 11, "node", ["node", "/opt/push-server/server.js"])
    table = ProcessTable(tmp_path, max_age=60.0)
    cfg = parse({"checks": [{"name": "nginx", "type": "process", "match": "nginx"},
                            {"name": "push", "type": "process", "cmdline_regex": "push-server"}]})
    by_name, by_cmdline = (build_check(spec, Resources(processes=table)) for spec in cfg.checks)
    assert isinstance(by_name, ProcessCheck) and isinstance(by_cmdline, ProcessCheck)
    assert isinstance(by_name.psutil, NamedView) and by_cmdline.psutil is table
    assert by_name.run(5).status is by_cmdline.run(5).status is Status.OK
    assert table.scans == 1
    standalone = build_check(cfg.checks[0])  # no shared table: the check reads psutil itself
    assert isinstance(standalone, ProcessCheck) and standalone.psutil is None


def test_truncated_names_are_extended_like_psutil_and_vanished_processes_skipped(tmp_path: Path) -> None:
    fake_proc(tmp_path, 20, "kworker/u4:1-events_unbound", [])  # kernel thread, no cmdline: truncated
    fake_proc(tmp_path, 21, "bk-very-long-daemon-name", ["/opt/x/bk-very-long-daemon-name", "--flag"])
    (tmp_path / "22").mkdir()  # exited between listdir and open
    names = {p.info["pid"]: p.info["name"] for p in ProcessTable(tmp_path).process_iter()}
    assert names == {20: "kworker/u4:1-ev", 21: "bk-very-long-daemon-name"}


def settled(proc: psutil.Process, timeout: float = 5.0) -> None:
    """Wait (bounded) until a just-started process sleeps with the same RSS twice 50 ms apart."""
    end = time.monotonic() + timeout
    last = -1
    while time.monotonic() < end:
        rss = proc.memory_info().rss
        if proc.status() == psutil.STATUS_SLEEPING and rss == last:
            return
        last = rss
        time.sleep(0.05)


def test_same_answers_as_psutil_for_real_processes(tmp_path: Path) -> None:
    marker = tmp_path / "bk-proctable-marker"
    marker.symlink_to("/bin/sleep")
    procs = [subprocess.Popen([str(marker), "300"]) for _ in range(2)]
    try:
        for proc in procs:  # compare settled processes: while ld.so maps libc the RSS still grows
            settled(psutil.Process(proc.pid))
        table = ProcessTable(max_age=10)
        results: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    process_check("m", match="bk-proctable-marker", psutil=table).run(5)
                )
            )
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert table.scans == 1
        ours = {p.info["pid"]: p.info for p in table.process_iter()}
        for proc in procs:
            ps = psutil.Process(proc.pid)
            info = ours[proc.pid]
            assert info["name"] == ps.name() == "bk-proctable-marker"
            assert info["cmdline"] == ps.cmdline()
            assert info["username"] == ps.username()
            assert abs(info["memory_info"].rss - ps.memory_info().rss) < 1024 * 1024
        for result in results:
            perf = {p.label: p.value for p in result.perfdata}
            assert result.status is Status.OK and perf["count"] == 2 and perf["rss"] > 0
        own = process_check("own", cmdline_regex="pytest", psutil=table).run(5)
        assert str(os.getpid()) not in own.details.removeprefix("pids: ").split()
    finally:
        for p in procs:
            p.kill()
            p.wait()
