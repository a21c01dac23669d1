"""CPU per run of each 1C check type on a --with-1c test box (rac TEST DOUBLE, real PostgreSQL).

Command (from the repository root, as root; about a minute)::

    .venv/bin/python bench/onec_check_cost.py [--runs 30]

Starts one --with-1c test box, builds the checks ``discover --rac`` writes for it (plus the
infobase's credentials, the DBMS's password file, and a web publication: an Apache config line
naming the box's platform, the box's portal as its URL, a ``ragent`` stand-in process), and calls
each check's ``run()`` ``--runs`` times in this process. Reported per run: this process's CPU (the
agent's share, ``getrusage(RUSAGE_SELF)``), its children's CPU (``RUSAGE_CHILDREN``: ``psql``,
``pg_isready``, and ``rac`` — here the Python TEST DOUBLE, a python3 start each call, so that
column says nothing about the vendor's native rac), and the wall time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.checks.base import Resources  # noqa: E402
from agent.checks.registry import build_check  # noqa: E402
from agent.config import parse  # noqa: E402
from agent.proctable import ProcessTable  # noqa: E402
from tests.boxes import fleet  # noqa: E402
from tests.boxes.doubles import PLATFORM  # noqa: E402
from tests.boxes.postgres import PG_BIN  # noqa: E402


def usage(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if not 1 <= args.runs <= 500:
        parser.error("--runs 1..500")
    state = Path(tempfile.mkdtemp(prefix="bkonec-", dir="/tmp"))
    (box,) = fleet.up(state, 1, with_1c=True)
    work = state / "bench"
    work.mkdir()
    platform = box.layout.root / "opt/1cv8/x86_64" / PLATFORM
    ragent_path = work / "opt/1cv8/x86_64" / PLATFORM / "ragent"  # named ragent, in a version dir
    ragent_path.parent.mkdir(parents=True)
    ragent_path.symlink_to("/bin/sleep")
    ragent = subprocess.Popen([str(ragent_path), "3600"])
    rows = []
    try:
        pg = box.info.pg
        assert pg is not None
        pwd, pgpass, conf = work / "buh.pwd", work / "pgpass", work / "apache2.conf"
        pwd.write_text("secret\n")
        pgpass.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
        for f in (pwd, pgpass):
            f.chmod(0o600)
        conf.write_text(f'LoadModule _1cws_module "{platform}/wsap24.so"\n')
        rac = str(platform / "rac")
        cfg = parse({"host": "bench", "checks": [
            {"name": "1c-cluster", "type": "onec_cluster", "rac": rac},
            {"name": "1c-workers", "type": "onec_workers", "rac": rac, "interval": "1m"},
            {"name": "1c-infobase-buh", "type": "onec_infobase", "rac": rac, "infobase": "buh",
             "interval": "1m", "infobase_user": "Администратор", "infobase_password_file": str(pwd),
             "password_in_argv": True},
            {"name": "1c-dbms", "type": "onec_dbms", "host": pg.host, "port": pg.port, "user": pg.user,
             "database": "buh", "passfile": str(pgpass), "interval": "1m", "bindir": str(PG_BIN)},
            {"name": "1c-publication", "type": "onec_publication", "url": box.info.portal_url,
             "apache_conf": str(conf)},
        ]})
        resources = Resources(processes=ProcessTable(), host="bench", state_dir=work / "state")
        for spec in cfg.checks:
            check = build_check(spec, resources)
            check.run(10)  # first run: imports
            own = children = 0.0
            started = time.monotonic()
            for _ in range(args.runs):
                s0, c0 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
                check.run(10)
                own += usage(resource.RUSAGE_SELF) - s0
                children += usage(resource.RUSAGE_CHILDREN) - c0
            wall = (time.monotonic() - started) / args.runs
            result = check.run(10)
            rows.append((spec.name, spec.interval, 1000 * own / args.runs, 1000 * children / args.runs,
                         1000 * wall, result.status.name, result.summary))
    finally:
        ragent.kill()
        ragent.wait()
        fleet.down(state)
        shutil.rmtree(state, ignore_errors=True)
    print(f"{args.runs} runs of each 1C check on a --with-1c test box (CPU: getrusage; children: rac is "
          "the Python TEST DOUBLE)")
    print()
    print("| check | interval | agent CPU per run | children CPU per run | wall per run | state | summary |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name, interval, own_ms, child_ms, wall_ms, status, summary in rows:
        print(f"| {name} | {interval:g} s | {own_ms:.2f} ms | {child_ms:.1f} ms | {wall_ms:.1f} ms "
              f"| {status} | {summary[:80]} |")
    per_minute = sum(c * 60 / i for _, i, c, _, _, _, _ in rows)
    print()
    print(f"At these intervals: {per_minute:.1f} ms of the agent's CPU per minute for the five checks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
