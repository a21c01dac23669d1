"""Which PostgreSQL client for the agent's ``onec_dbms`` check: ``psql`` spawned, or a driver in
the agent's process (psycopg 3 with libpq, or the pure-Python pg8000)?

Command (from the repository root, as root; about a minute)::

    .venv/bin/python bench/pg_client_micro.py [--runs 50] [--python /path/to/venv/bin/python]

Starts one --with-1c test box (real PostgreSQL 15, scram-sha-256 over TCP, as a Postgres Pro for
1C install has it) and, for each client, in a fresh child process that has first imported the
agent's own modules (psutil, prometheus-client, pyyaml, msgspec): imports the client, runs the
check's statement once, then ``--runs`` times connect + statement + disconnect. Reported: the
resident memory the client added (VmRSS after the runs minus before the import), the child's own
CPU per run (``RUSAGE_SELF``), the CPU of the processes it spawned (``RUSAGE_CHILDREN``: psql) and
the wall time. ``--python``: the interpreter of the children (pg8000 is not a dependency: measure it
from a scratch venv that has it and the agent's packages); a client that interpreter cannot import
is reported as such. Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.checks.onec.dbms import QUERY  # noqa: E402
from tests.boxes import fleet  # noqa: E402
from tests.boxes.postgres import PG_BIN  # noqa: E402

CHILD = r'''
import json, os, resource, subprocess, sys, time
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
import psutil, yaml, msgspec, prometheus_client  # what the agent holds already
kind, host, port, user, password, passfile, psql, query, runs = sys.argv[1:10]
before = rss()
try:
    if kind == "pg8000":
        import pg8000.native
        def one():
            c = pg8000.native.Connection(user, host=host, port=int(port), database="buh", password=password,
                                         timeout=10)
            c.run(query)
            c.close()
    elif kind == "psycopg":
        import psycopg
        def one():
            with psycopg.connect(host=host, port=int(port), user=user, password=password, dbname="buh",
                                 connect_timeout=10, sslmode="disable") as c:
                c.execute(query).fetchall()
    else:
        env = dict(os.environ, PGPASSFILE=passfile, LANG="C", LC_ALL="C")
        argv = [psql, "-X", "-q", "-A", "-t", "-h", host, "-p", port, "-U", user, "-d", "buh", "-w",
                "-c", query]
        def one():
            subprocess.run(argv, env=env, capture_output=True, check=True, timeout=30)
except ImportError as exc:
    print(json.dumps({"error": f"cannot import: {exc}"}))
    sys.exit(0)
one()
s0, c0, t0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.monotonic()
for _ in range(int(runs)):
    one()
n = int(runs)
print(json.dumps({"rss": rss() - before, "own": (cpu(resource.RUSAGE_SELF) - s0) / n,
                  "children": (cpu(resource.RUSAGE_CHILDREN) - c0) / n, "wall": (time.monotonic() - t0) / n}))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs 1..1000")
    state = Path(tempfile.mkdtemp(prefix="bkpg-", dir="/tmp"))
    (box,) = fleet.up(state, 1, with_1c=True)
    rows = []
    try:
        pg = box.info.pg
        assert pg is not None
        passfile = state / "pgpass"
        passfile.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
        passfile.chmod(0o600)
        for kind in ("psql", "psycopg", "pg8000"):
            out = subprocess.run(
                [args.python, "-c", CHILD, kind, pg.host, str(pg.port), pg.user, pg.password, str(passfile),
                 str(PG_BIN / "psql"), QUERY, str(args.runs)],
                capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)))
            lines = out.stdout.strip().splitlines()
            rows.append((kind, json.loads(lines[-1]) if lines else {"error": out.stderr.strip()[-300:]}))
    finally:
        fleet.down(state)
        shutil.rmtree(state, ignore_errors=True)
    print(f"{args.runs} runs of the onec_dbms statement (connect + query + disconnect, scram-sha-256 over "
          f"TCP), children run by {args.python}")
    print()
    print("| client | RSS added | own CPU per run | spawned CPU per run | wall per run |")
    print("|---|---:|---:|---:|---:|")
    for kind, r in rows:
        if "error" in r:
            print(f"| {kind} | {r['error']} | | | |")
            continue
        print(f"| {kind} | {r['rss'] / 2**20:.1f} MiB | {r['own'] * 1000:.2f} ms "
              f"| {r['children'] * 1000:.1f} ms | {r['wall'] * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
