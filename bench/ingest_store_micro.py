"""CPU per push of the ingest's storage step, in process: the raw statement path against Core.

Command (from the repository root; about 30 s)::

    .venv/bin/python bench/ingest_store_micro.py [--batches 60] [--batch 16]

What it measures: ``controller.ingest.store_batch`` storing batches of reports (20 checks and 100
samples each, as bench/ingest_bench.py pushes them; each host reports once per batch, every report
a new seq), on SQLite (WAL) in a temporary directory, one transaction per batch as the group-commit
writer does. Parsing is done before the clock starts; the figure is this process's CPU (user +
system, ``getrusage``) per stored report, for the raw path (statements compiled once, run with
``exec_driver_sql``, JSON passed already encoded) and for ``core_statements()`` (the same
statements through ``Connection.execute``), alternating ``--rounds`` times. Nothing is asserted;
the figures are indicative (shared machine, ±20 %).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.report import to_json  # noqa: E402
from controller import inventory  # noqa: E402
from controller.config import parse  # noqa: E402
from controller.ingest import core_statements, prepare, store_batch  # noqa: E402
from controller.store.db import Database  # noqa: E402
from tests.controller.reports import make_report  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(path: Callable[[], AbstractContextManager[None]], batches: int, batch: int, tmp: Path,
        name: str) -> float:
    hosts = [f"h{i}" for i in range(batch)]
    cfg = parse({"clients": [{"name": "acme", "hosts": [{"name": h} for h in hosts]}]}, "bench")
    db = Database(f"sqlite:///{tmp}/{name}.db")
    db.upgrade()
    inventory.sync_config(cfg, db)
    tokens = {h: inventory.add_host(db, h, "acme") for h in hosts}
    work = [[(tokens[h], prepare(to_json(make_report(h, b + 1, checks=20, samples=100, status=b % 3))))
             for h in hosts] for b in range(batches)]
    started = cpu()
    for b, jobs in enumerate(work):
        with path(), db.transaction() as conn:
            store_batch(conn, jobs, float(b))
    spent = cpu() - started
    db.dispose()
    return spent / (batches * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"raw": [], "core": []}
    with tempfile.TemporaryDirectory(prefix="bk-ingest-micro-") as tmp:
        for r in range(args.rounds):
            for name, path in (("raw", contextlib.nullcontext), ("core", core_statements)):
                results[name].append(run(path, args.batches, args.batch, Path(tmp), f"{name}{r}"))
    print(f"storage CPU per report, batches of {args.batch}, {args.batches} batches, {args.rounds} rounds:")
    for name, values in results.items():
        print(f"  {name:<5} median {statistics.median(values) * 1000:.3f} ms  "
              f"(runs: {', '.join(f'{v * 1000:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
