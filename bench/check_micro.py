"""CPU of each check of config/agent.example.yaml when called directly (no scheduler, no agent).

Command (from the repository root; about 90 s; needs monitoring-plugins-basic)::

    .venv/bin/python bench/check_micro.py

What the agent's per-cycle CPU is made of: each check's ``run()`` is called ``--runs`` times in this
process, one after the other, against local stand-ins (an HTTP server subprocess for the two http
checks, a listening socket for the tcp check, ``sleep`` processes under the service names for the
process checks, a 1 MiB backup file). Process checks share one ProcessTable, rescanned every seven
runs as in one agent cycle. Reported per run: this process's CPU (user + system, ``getrusage``)
and the CPU of the child processes (the plugins of command checks). A second part runs all
checks as one round, sequentially and on 8 threads, to show what running them concurrently adds;
a third runs the agent's CheckScheduler with every check due every second, with its lanes (due
checks one after the other on one worker) and without (each due check to a free worker at once),
alternating, ``--scheduler-seconds`` each. Nothing is asserted; the figures are indicative (shared
machine, ±20 %).
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent_bench import PORTAL_PAGE, bench_checks, closing_listener, stand_in_processes

from agent.checks.base import Resources
from agent.checks.registry import build_check
from agent.config import parse
from agent.proctable import ProcessTable
from agent.scheduler import SPILL_SECONDS, CheckScheduler

HOST = "127.0.0.1"


class _StaticPortal:
    """The portal page served by ``python -m http.server`` in a child process, so that serving it
    does not count in this process's CPU (agent_bench's Portal runs in the bench's own process)."""

    def __init__(self, directory: Path) -> None:
        for sub in ("", "backend"):
            (directory / sub).mkdir(exist_ok=True)
            (directory / sub / "index.html").write_bytes(PORTAL_PAGE)
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", HOST, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _make(table: ProcessTable, c: Any) -> Any:
    return build_check(c, Resources(processes=table))


def _measure(objs: list[tuple[Any, Any]], table: ProcessTable, runs: int) -> None:
    print(f"{'check':20s} {'type':9s} {'CPU ms/run':>10s} {'children ms/run':>16s}")
    total = 0.0
    for c, check in objs:
        check.run(c.timeout)
        own, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        for i in range(runs):
            if c.type == "process" and i % 7 == 0:
                table._taken = None  # a new scan, as once per agent cycle
            check.run(c.timeout)
        ms = (_cpu(resource.RUSAGE_SELF) - own) / runs * 1000
        child_ms = (_cpu(resource.RUSAGE_CHILDREN) - children) / runs * 1000
        total += ms
        print(f"{c.name:20s} {c.type:9s} {ms:10.2f} {child_ms:16.2f}")
    print(f"{'all checks, one run each':30s} {total:10.2f}")
    rounds = max(5, runs // 2)
    for mode in ("sequential", "8 threads"):
        with ThreadPoolExecutor(8) as pool:
            own = _cpu(resource.RUSAGE_SELF)
            for _ in range(rounds):
                table._taken = None
                if mode == "sequential":
                    for c, check in objs:
                        check.run(c.timeout)
                else:
                    list(pool.map(lambda pair: pair[1].run(pair[0].timeout), objs))
            ms = (_cpu(resource.RUSAGE_SELF) - own) / rounds * 1000
        print(f"one round of all checks, {mode:10s}: {ms:.2f} ms")


def _scheduler(objs: list[tuple[Any, Any]], seconds: float) -> None:
    """The agent's CheckScheduler running every check every second, as in the agent, with its
    lanes and with every due check handed to a free worker at once (spill 0)."""
    for spill in (SPILL_SECONDS, 0.0, SPILL_SECONDS, 0.0):
        sched = CheckScheduler(objs, max_workers=8, spill=spill)
        sched.start()
        time.sleep(2.0)  # warm-up: every worker thread started
        own, start = _cpu(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(seconds)
        ms = (_cpu(resource.RUSAGE_SELF) - own) / (time.monotonic() - start) * 1000
        sched.stop()
        how = f"lanes (spill after {spill * 1000:g} ms)" if spill else "all due checks at once    "
        print(f"CheckScheduler, every check every 1 s, {how}: {ms:.2f} ms CPU per second, "
              f"{sched.worker_threads_started} worker thread(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--scheduler-seconds", type=float, default=15.0,
                        help="seconds per scheduler run (four runs; 0 to skip)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000 or not 0 <= args.scheduler_seconds <= 120:
        parser.error("--runs 1..1000, --scheduler-seconds 0..120")
    tmp = Path(tempfile.mkdtemp(prefix="bk-check-micro-"))
    portal = _StaticPortal(tmp / "www")
    listener = closing_listener(HOST)
    (tmp / "backup").mkdir()
    (tmp / "backup" / "bench.tar.gz").write_bytes(b"\0" * (1024 * 1024 + 1))
    checks = bench_checks(portal, listener.getsockname()[1], str(tmp / "backup" / "*.tar.gz"))
    try:
        with stand_in_processes(tmp):
            time.sleep(1.0)  # the HTTP server starts
            table = ProcessTable()
            cfg = parse({"host": "bench", "interval": "1s", "checks": checks}, "<bench>")
            objs = [(c, _make(table, c)) for c in cfg.checks]
            _measure(objs, table, args.runs)
            if args.scheduler_seconds:
                _scheduler(objs, args.scheduler_seconds)
    finally:
        portal.proc.kill()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
