"""Which MySQL client for the agent's mysql and Bitrix checks: PyMySQL in-process, or the ``mysql`` CLI?

Command (from the repository root, as root; about a minute)::

    .venv/bin/python bench/mysql_client_micro.py [--runs 200]

Starts one test box (tests/boxes: real MariaDB on 127.0.0.N) and measures, per connect + query +
disconnect (the Bitrix mail-queue query, as the checks run it):

- **PyMySQL** through ``agent.mysqlclient.run_statements`` (what the checks use: no TLS, no
  ``cryptography``), over TCP and over the unix socket; and PyMySQL as its defaults would have
  it (TLS "preferred": a TLS context with the system CA store built for every connection);
- **the mysql CLI** (``mysql --defaults-extra-file=<0600 file> --batch -e ...``, the password never
  in argv), spawned with ``subprocess`` like the command check spawns plugins;

CPU per run from ``getrusage``: the bench process's own (RUSAGE_SELF) and its children's
(RUSAGE_CHILDREN: the CLI processes), and wall time. Then the resident memory that importing the
driver adds to a process that already holds the agent's modules: PyMySQL as the agent loads it
(without ``cryptography``), and PyMySQL loading ``cryptography`` (what it does by itself when that
package is installed, as in the development venv). Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.mysqlclient import DbSettings, run_statements  # noqa: E402
from tests.boxes import fleet  # noqa: E402

QUERY = "SELECT COUNT(*), TIMESTAMPDIFF(SECOND, MIN(DATE_INSERT), NOW()) FROM b_event WHERE SUCCESS_EXEC='N'"
RSS_PROBE = """
import sys
import agent.service, agent.checks.registry  # the agent as it runs
def rss(): return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])
before = rss()
{load}
print(before, rss())
"""


def usage() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def measure(runs: int, once: Callable[[], object]) -> tuple[float, float, float]:
    """(own CPU ms, children's CPU ms, wall ms) per run."""
    once()  # warm: imports, caches
    own0, kids0 = usage()
    t0 = time.monotonic()
    for _ in range(runs):
        once()
    own1, kids1 = usage()
    wall = time.monotonic() - t0
    return 1000 * (own1 - own0) / runs, 1000 * (kids1 - kids0) / runs, 1000 * wall / runs


def rss_added(load: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", RSS_PROBE.format(load=load)], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120).stdout.split()
    return int(out[0]), int(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bkmy-", dir="/tmp"))
    (box,) = fleet.up(state, 1)
    try:
        db = box.info.db
        tcp = DbSettings(user=db.user, password=db.password, host=db.host, port=db.port, database=db.name)
        sock = DbSettings(user=db.user, password=db.password, socket=db.socket, database=db.name)
        import pymysql

        def pymysql_defaults() -> object:
            conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                                   database=db.name, connect_timeout=5, read_timeout=5)
            try:
                with conn.cursor() as cursor:
                    cursor.execute(QUERY)
                    return cursor.fetchall()
            finally:
                conn.close()

        with tempfile.TemporaryDirectory() as private:
            defaults = Path(private) / "client.cnf"
            fd = os.open(defaults, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, f"[client]\npassword={db.password}\n".encode())
            os.close(fd)

            def cli(*where: str) -> Callable[[], object]:
                argv = ["mysql", f"--defaults-extra-file={defaults}", *where, f"-u{db.user}", "--batch",
                        "--skip-column-names", "--connect-timeout=5", db.name, "-e", QUERY]
                return lambda: subprocess.run(argv, capture_output=True, check=True, timeout=10).stdout

            rows = [
                ("PyMySQL, as the agent uses it, TCP",
                 measure(args.runs, lambda: run_statements(tcp, [QUERY], 5))),
                ("PyMySQL, as the agent uses it, unix socket",
                 measure(args.runs, lambda: run_statements(sock, [QUERY], 5))),
                ("PyMySQL with its defaults (TLS preferred), TCP",
                 measure(max(args.runs // 10, 5), pymysql_defaults)),
                ("mysql CLI, TCP", measure(args.runs, cli(f"-h{db.host}", f"-P{db.port}", "--protocol=tcp"))),
                ("mysql CLI, unix socket", measure(args.runs, cli(f"-S{db.socket}"))),
            ]
    finally:
        fleet.down(state)
    base, without = rss_added("from agent.mysqlclient import _driver; _driver()")
    _, with_crypto = rss_added("import pymysql")
    print(f"{args.runs} runs of connect + `{QUERY[:40]}…` + disconnect against the test box's MariaDB")
    print()
    print("| client | own CPU per run | child processes' CPU per run | wall per run |")
    print("|---|---:|---:|---:|")
    for name, (own, kids, wall) in rows:
        print(f"| {name} | {own:.2f} ms | {kids:.2f} ms | {wall:.2f} ms |")
    print()
    print(f"Resident memory of a process holding the agent's modules: {base / 1024:.1f} MiB; + PyMySQL as "
          f"the agent loads it: +{(without - base) / 1024:.1f} MiB; + PyMySQL loading cryptography: "
          f"+{(with_crypto - base) / 1024:.1f} MiB; the mysql CLI: +0 (a separate process per run).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
