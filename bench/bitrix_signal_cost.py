"""CPU per run of each Bitrix signal check (the ``bitrix:`` profile) on a test box.

Command (from the repository root, as root; about a minute)::

    .venv/bin/python bench/bitrix_signal_cost.py [--runs 50]

Starts one test box (tests/boxes: real MariaDB, the portal's docroot, PHP error log, backup dir),
expands the profile for its site, and calls each check's ``run()`` ``--runs`` times in this process,
one after the other (no scheduler). The log signals get a few new lines before each run (what a
live box gives them). Reported per run: this process's CPU (``getrusage``, user + system) and the
wall time; each check once more at the end shows its summary. The figures for docs/agent-checks.md
("cost per run"); nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
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


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bkcost-", dir="/tmp"))
    (box,) = fleet.up(state, 1)
    rows = []
    try:
        errors_log = box.layout.logs / "php-errors.log"
        updater_log = Path(box.info.docroot) / "bitrix/modules/updater.log"
        (box.layout.backup_dir / "www_backup_portal.tar.gz").write_bytes(b"\0" * 65536)
        cfg = parse({"host": "bench", "bitrix": [{"docroot": box.info.docroot, "signals": {
            "php_fatals": {"log": str(errors_log)}, "backup": {"archive_dir": str(box.layout.backup_dir)},
        }}]})
        resources = Resources(processes=ProcessTable(), host="bench", state_dir=state / "agent-state")
        for spec in cfg.checks:
            check = build_check(spec, resources)
            check.run(10)  # first run: imports, settings read, log positioned at its end
            spent = 0.0
            started = time.monotonic()
            for i in range(args.runs):
                if spec.type in ("bitrix_php_fatals", "bitrix_updates"):
                    with open(errors_log, "a") as f:
                        f.write(f"[03-Dec-2026 10:00:{i % 60:02d} UTC] PHP Notice:  Undefined index: x in "
                                f"/home/bitrix/www/index.php on line 3\n" * 5)
                    with open(updater_log, "a") as f:
                        f.write(f"2026-12-03 10:00:{i % 60:02d} - UPD_NOTE - nothing\n")
                before = cpu()
                check.run(10)
                spent += cpu() - before
            wall = (time.monotonic() - started) / args.runs
            result = check.run(10)
            rows.append((spec.name, spec.interval, 1000 * spent / args.runs, 1000 * wall, result.status.name,
                         result.summary))
    finally:
        fleet.down(state)
    print(f"{args.runs} runs of each check of the bitrix: profile on a test box "
          "(CPU: this process, getrusage)")
    print()
    print("| check | default interval | CPU per run | wall per run | state | summary |")
    print("|---|---:|---:|---:|---|---|")
    for name, interval, cpu_ms, wall_ms, status, summary in rows:
        print(f"| {name} | {interval:g} s | {cpu_ms:.2f} ms | {wall_ms:.2f} ms | {status} | {summary[:90]} |")
    per_minute = sum(c * 60 / i for _, i, c, _, _, _ in rows)
    print()
    print(f"At the default intervals: {per_minute:.1f} ms of CPU per minute for the whole profile.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
