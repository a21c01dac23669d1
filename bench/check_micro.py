"""CPU of each check of config/agent.example.yaml when called directly (no scheduler, no agent).

Command (from the repository root; about 30 s; needs monitoring-plugins-basic)::

    .venv/bin/python bench/check_micro.py

What the agent's per-cycle CPU is made of: each check's ``run()`` is called ``--runs`` times in this
process, one after the other, against local stand-ins (an HTTP server subprocess for the two http
checks, a listening socket for the tcp check, ``sleep`` processes under the service names for the
process checks, a 1 MiB backup file). Process checks share one ProcessTable, rescanned every seven
runs as in one agent cycle. Reported per run: this process's CPU (user + system, ``getrusage``)
and the CPU of the child processes (the plugins of command checks). A second part runs all
checks as one round, sequentially and on 8 threads, to show what running them concurrently adds.
Nothing is asserted; the figures are indicative (shared machine, ±20 %).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.checks import build_check  # noqa: E402
from agent.checks.process import ProcessCheck  # noqa: E402
from agent.config import parse  # noqa: E402
from agent.proctable import ProcessTable  # noqa: E402

HOST = "127.0.0.1"
PLUGINS = Path("/usr/lib/nagios/plugins")
NAMES = ("nginx", "httpd", "mysqld", "redis-server", "memcached", "crond")


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs 1..1000")
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        http_port = probe.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="bk-check-micro-"))
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", HOST, str(http_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(64)

    def accept_forever() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept_forever, daemon=True).start()
    (tmp / "backup.tar.gz").write_bytes(os.urandom(1024 * 1024 + 1))
    sleepers = [subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 600"]) for name in NAMES]
    try:
        time.sleep(1.0)  # the HTTP server starts
        example = yaml.safe_load((REPO / "config" / "agent.example.yaml").read_text())
        checks: list[dict[str, Any]] = []
        for check in example["checks"]:
            check = dict(check)
            if check["type"] == "http":
                check["url"] = f"http://{HOST}:{http_port}/"
                check.pop("body_regex", None)
                check.pop("body_not_regex", None)
            elif check["name"] == "mysql-port":
                check["address"] = f"{HOST}:{listener.getsockname()[1]}"
            elif check["name"] == "backup-fresh":
                check["glob"] = str(tmp / "*.tar.gz")
            elif check["type"] == "command":
                check["command"] = [str(PLUGINS / Path(check["command"][0]).name), *check["command"][1:]]
            checks.append(check)
        cfg = parse({"host": "bench", "checks": checks}, "<bench>")
        table = ProcessTable()

        def make(c: Any) -> Any:
            if c.type == "process":
                match = c.options.get("match")
                return ProcessCheck.from_config(c, psutil=table.named(match) if match else table)
            return build_check(c)

        objs = [(c, make(c)) for c in cfg.checks]
        print(f"{'check':20s} {'type':9s} {'CPU ms/run':>10s} {'children ms/run':>16s}")
        total = 0.0
        for c, check in objs:
            check.run(c.timeout)
            own, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
            for i in range(args.runs):
                if c.type == "process" and i % 7 == 0:
                    table._taken = None  # a new scan, as once per agent cycle
                check.run(c.timeout)
            ms = (_cpu(resource.RUSAGE_SELF) - own) / args.runs * 1000
            child_ms = (_cpu(resource.RUSAGE_CHILDREN) - children) / args.runs * 1000
            total += ms
            print(f"{c.name:20s} {c.type:9s} {ms:10.2f} {child_ms:16.2f}")
        print(f"{'all checks, one run each':30s} {total:10.2f}")
        rounds = max(5, args.runs // 2)
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
    finally:
        server.kill()
        for proc in sleepers:
            proc.kill()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
