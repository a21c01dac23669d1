"""How long a SQLite write transaction holds the writer, with SQLite's automatic WAL checkpoint (it
runs inside the COMMIT that crosses 1,000 WAL pages) against checkpoints run after the transaction
(controller/store/db.py: ``wal_autocheckpoint=0`` and a PASSIVE checkpoint after the write, at most
once a second).

Command (from the repository root; about 20 s):

    .venv/bin/python bench/wal_checkpoint_micro.py

The workload is the pruning's (controller/retention.py): a table of 20,000 rows of ~10 kB (a
stored report body) with an index, deleted in transactions of 40 rows (the adaptive batch size the
db_size bench settles at). Each transaction is timed from ``BEGIN IMMEDIATE`` to the end of
``COMMIT``, which is the time the controller's writer queue is held. Both modes run in the same
process, alternately, ``--rounds`` times. Bounded: fixed rows and rounds, a file under /tmp.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

ROWS, BODY, BATCH = 20_000, 10_000, 40


def one_round(path: Path, automatic: bool) -> list[float]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={1000 if automatic else 0}")
    db.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, host INTEGER, at REAL, body TEXT)")
    db.execute("CREATE INDEX ix ON reports (host, at)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO reports (host, at, body) VALUES (?, ?, ?)",
                   ((i % 4, float(i), "x" * BODY + str(i)) for i in range(ROWS)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    held: list[float] = []
    last_checkpoint = 0.0
    for first in range(1, ROWS * 3 // 5, BATCH):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM reports WHERE id >= ? AND id < ?", (first, first + BATCH))
        db.execute("COMMIT")
        held.append(time.perf_counter() - started)
        if not automatic and time.monotonic() - last_checkpoint >= 1.0:  # after, outside the hold
            last_checkpoint = time.monotonic()
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    db.close()
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"automatic (before)": [], "after the write (now)": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        for _ in range(args.rounds):
            results["automatic (before)"] += one_round(path, automatic=True)
            results["after the write (now)"] += one_round(path, automatic=False)
    load = os.getloadavg()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.1f}; "
          f"{ROWS:,} rows of {BODY / 1000:.0f} kB, transactions deleting {BATCH}, {args.rounds} rounds")
    print("| WAL checkpoint | transactions | writer held: median | p99 | max | over 50 ms |")
    print("|---|---|---|---|---|---|")
    for mode, times in results.items():
        times.sort()
        p99 = times[int(len(times) * 0.99)]
        print(f"| {mode} | {len(times)} | {statistics.median(times) * 1000:.1f} ms | {p99 * 1000:.1f} ms |"
              f" {times[-1] * 1000:.1f} ms | {sum(t > 0.05 for t in times)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
