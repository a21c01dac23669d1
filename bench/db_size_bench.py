"""Database size per host per day, before and after retention, on SQLite and PostgreSQL; and how long
a pruning batch holds the database's writer.

Command (from the repository root; about 5 minutes; root, for the PostgreSQL test server):

    git archive c115c4c | tar -x -C /tmp/bk-before      # the code before (main without retention)
    .venv/bin/python bench/db_size_bench.py --before /tmp/bk-before --out bench/results/db_size.md

The report: the example agent config (``config/agent.example.yaml``: 16 checks and the ``bitrix:``
profile, 25 checks in all) run once on this machine by the agent's own code, with its host samples
and the checks' series — what that agent would push every 15 s here (most of its checks are
CRITICAL or UNKNOWN on this machine, which has no Bitrix: their summaries are error texts about as
long as a healthy box's). One check goes WARNING for a minute every hour (two status changes an hour).

For each database and each code tree (``before``: ``--before DIR``, run with its own ``controller``
package; ``after``: this checkout), a child process stores ``--days`` days of reports of ``--hosts``
hosts through ``controller.ingest.store_batch`` (one transaction per 15 s round, all hosts), with
the controller clock stepped 15 s per round. Then:

- before: bytes per host per day = the database's growth / hosts / days (it keeps every report);
- after: the backlog is pruned as ``serve`` would on its first run (``retention.raw_reports`` =
  ``--raw-hours``, 1 day by default, so that the bench is short: the rest becomes summaries). The
  write transaction of each batch is timed (the time the SQLite writer is held) at several batch
  sizes, then the rest is
  pruned at the default size. Bytes per host per day of raw reports and of summaries are measured
  separately, and the database at the default retention (7 days raw, 400 days of summaries) is
  computed from them: 7 × raw + 400 × summaries per host (+ the per-host state, which does not grow).

Sizes: SQLite, pages in use (``page_count - freelist_count``) × page size after a WAL checkpoint
(freed pages are reused, the file does not shrink); PostgreSQL, ``pg_total_relation_size`` of each
table (with indexes and TOAST) after ``VACUUM FULL`` (the bytes in use; plain autovacuum makes dead
rows' space reusable without returning it). Also timed: ``prepare`` (validate + encode, outside the
write lock) per report, before and after (the body is now re-encoded without its samples).
Bounded: fixed hosts × days, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROUND = 15.0  # seconds between two reports of a host (the example config's push_interval)
DAY = 86400.0
START = 1_764_288_000.0  # a day's start (UTC)
SWEEP = (50, 100, 200, 500)  # batch sizes timed
SWEEP_BATCHES = 4  # batches per size


# -- the report ----------------------------------------------------------------------------------


def example_report() -> dict[str, Any]:
    """One report of the example agent config, built by the agent's code on this machine."""
    import psutil

    from agent.checks.base import Resources
    from agent.checks.registry import build_check
    from agent.collectors import HostSampler
    from agent.collectors.facts import FactsCollector
    from agent.collectors.registry import HostSources, build_collectors
    from agent.config import load
    from agent.proctable import ProcessTable
    from agent.report import SCHEMA, Report, to_json
    from agent.scheduler import CheckScheduler

    cfg = load(ROOT / "config" / "agent.example.yaml")
    with tempfile.TemporaryDirectory() as state:
        resources = Resources(processes=ProcessTable(), host=cfg.host, state_dir=Path(state),
                              save_state=False)
        scheduler = CheckScheduler([(c, build_check(c, resources)) for c in cfg.checks], max_workers=8)
        try:
            checks = scheduler.run_once()
            check_samples = scheduler.samples()
        finally:
            scheduler.stop()
    facts = FactsCollector(psutil)
    sampler = HostSampler(build_collectors(HostSources(psutil, facts=facts, partitions=None)))
    sampler.samples()
    time.sleep(1.0)  # rates need two readings
    report = Report(schema=SCHEMA, host="bench", agent_version="0.1.0", seq=1, sent_at=START,
                    push_interval_seconds=ROUND, checks=tuple(checks),
                    samples=(*sampler.for_report(ROUND), *check_samples), facts=facts.facts())
    data: dict[str, Any] = json.loads(to_json(report))
    return data


# -- the child: one tree, one database -----------------------------------------------------------


def _sizes(db: Any) -> dict[str, int]:
    from sqlalchemy import text

    if db.is_sqlite:
        import sqlite3

        conn = sqlite3.connect(db.url.database, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes = {str(name): int(n) for name, n in
                     conn.execute("SELECT name, SUM(pgsize - unused) FROM dbstat GROUP BY name")}
            page, count, free = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("page_size", "page_count", "freelist_count"))
            sizes["(database)"] = int(page) * (int(count) - int(free))
            return sizes
        finally:
            conn.close()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM FULL")
        rows = conn.execute(text(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")).all()
        sizes = {str(name): int(n) for name, n in rows}
        sizes["(database)"] = sum(sizes.values())
        return sizes


def _group(sizes: dict[str, int], table: str) -> int:
    """A table with its indexes (SQLite's dbstat lists each b-tree by name; PostgreSQL's figure of a
    table already counts its indexes and TOAST)."""
    prefixes = (f"ix_{table}_", f"uq_{table}_", f"sqlite_autoindex_{table}_")
    return sum(n for name, n in sizes.items() if name == table or name.startswith(prefixes))


def child(args: argparse.Namespace) -> dict[str, Any]:
    from controller import ingest, inventory
    from controller.config import parse
    from controller.store.db import Database

    template = json.loads(Path(args.template).read_text())
    db = Database(args.url)
    db.upgrade()
    cfg = parse({"clients": [{"name": "acme"}]}, "bench.yaml")
    hosts = [f"bench-{i:03d}" for i in range(args.hosts)]
    tokens = [inventory.add_host(db, host, "acme", cfg=cfg, clock=lambda: START) for host in hosts]
    empty = _sizes(db)
    flip = next(i for i, c in enumerate(template["checks"]) if c["status"] == 0)

    rounds = int(args.days * DAY / ROUND)
    prepare_seconds: list[float] = []
    store_seconds = 0.0
    for n in range(rounds):
        now = START + n * ROUND
        jobs = []
        for host, token in zip(hosts, tokens, strict=True):
            report = dict(template, host=host, seq=n + 1, sent_at=now)
            if now % 3600 < 60:  # WARNING for the first minute of every hour
                checks = list(report["checks"])
                checks[flip] = dict(checks[flip], status=1)
                report["checks"] = checks
            raw = json.dumps(report).encode()
            started = time.perf_counter()
            parsed = ingest.prepare(raw)
            if n < 500:
                prepare_seconds.append(time.perf_counter() - started)
            jobs.append((token, parsed))
        started = time.perf_counter()
        with db.transaction() as conn:
            outcomes = ingest.store_batch(conn, jobs, now)
        store_seconds += time.perf_counter() - started
        assert all(getattr(o, "status", None) == "stored" for o in outcomes), outcomes
    end = START + rounds * ROUND
    grown = _sizes(db)
    out: dict[str, Any] = {
        "code": str(Path(ingest.__file__).resolve().parents[1]),
        "hosts": args.hosts, "days": args.days, "raw_hours": args.raw_hours, "reports": rounds * args.hosts,
        "body_bytes": len(json.dumps(template)),
        "prepare_ms": statistics.median(prepare_seconds) * 1000,
        "store_ms_per_report": store_seconds / (rounds * args.hosts) * 1000,
        "empty": empty, "grown": grown,
    }
    if args.mode == "after":
        from controller.retention import RetentionSettings, prune_batch

        sweep: dict[int, list[float]] = {}
        for size in SWEEP:
            cfg_r = RetentionSettings(raw_reports=args.raw_hours * 3600, batch=size)
            for _ in range(SWEEP_BATCHES):
                batch = prune_batch(db, cfg_r, end)
                if batch is None or batch.kind != "reports":
                    break
                sweep.setdefault(size, []).append(batch.write_seconds)
        default = RetentionSettings(raw_reports=args.raw_hours * 3600)
        writes: dict[str, list[float]] = {}
        sizes: list[int] = []
        started = time.perf_counter()
        if hasattr(default, "max_write"):  # batches adapt to retention.max_write, as serve's Pruner does
            from controller.retention import Pruner

            pruner = Pruner(db, default, clock=lambda: end)
            for _ in range(100_000):
                if not pruner.step() or pruner.last is None:
                    break
                writes.setdefault(pruner.last.kind, []).append(pruner.last.write_seconds)
                sizes.append(pruner.last.rows)
        else:
            for _ in range(100_000):
                batch = prune_batch(db, default, end)
                if batch is None:
                    break
                writes.setdefault(batch.kind, []).append(batch.write_seconds)
        out["adaptive_sizes"] = sizes
        out["prune_wall_seconds"] = time.perf_counter() - started
        out["sweep"] = {str(k): v for k, v in sweep.items()}
        out["default_batch"] = default.batch
        out["default_writes"] = writes
        out["pruned"] = _sizes(db)
    db.dispose()
    return out


# -- the parent ----------------------------------------------------------------------------------


def run_child(tree: Path, mode: str, url: str, template: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--url", url,
            "--template", str(template), "--hosts", str(args.hosts), "--days", str(args.days),
            "--raw-hours", str(args.raw_hours)]
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=str(tree), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.monotonic() - started
    return result


def per_host_day(n: float, hosts: int, days: float) -> float:
    return n / hosts / days


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def summarise(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| database | code | report body stored | DB growth per host per day"
             " | raw reports per host-day | summaries per host-day"
             " | at the defaults (7 d raw + 400 d summaries) per host |"
             " prepare per report |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        backend, mode = key.split("/")
        hosts, days = r["hosts"], r["days"]
        if mode == "before":
            growth = per_host_day(r["grown"]["(database)"] - r["empty"]["(database)"], hosts, days)
            raw = per_host_day(_group(r["grown"], "reports"), hosts, days)
            lines.append(f"| {backend} | before | {r['body_bytes']:,} B as received | {mb(growth)}"
                         f" | {mb(raw)} | — (kept forever) | {mb(growth * 400)} after 400 days, growing |"
                         f" {r['prepare_ms']:.3f} ms |")
        else:
            grown_raw = per_host_day(_group(r["grown"], "reports"), hosts, days)
            raw_days = r["raw_hours"] / 24
            raw = per_host_day(_group(r["pruned"], "reports"), hosts, raw_days)
            summ = per_host_day(_group(r["pruned"], "check_hours"), hosts, days - raw_days)
            growth = per_host_day(r["grown"]["(database)"] - r["empty"]["(database)"], hosts, days)
            steady = 7 * raw + 400 * summ
            lines.append(f"| {backend} | after | without samples | {mb(growth)} before pruning |"
                         f" {mb(raw)} (unpruned: {mb(grown_raw)}) | {summ / 1e3:.1f} kB | **{mb(steady)}** |"
                         f" {r['prepare_ms']:.3f} ms |")
    return "\n".join(lines)


def batch_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| database | batch (reports) | batches | write transaction median | max"
             " | reports/s while pruning |",
             "|---|---|---|---|---|---|"]
    for key, r in results.items():
        if "sweep" not in r:
            continue
        backend = key.split("/")[0]
        for size, times in r["sweep"].items():
            med, top = statistics.median(times), max(times)
            lines.append(f"| {backend} | {size} | {len(times)} | {med * 1000:.1f} ms | {top * 1000:.1f} ms |"
                         f" {int(size) / med:,.0f} (write only) |")
        label = "adaptive, at most" if r.get("adaptive_sizes") else "default"
        for kind, times in r["default_writes"].items():
            over = sum(t > 0.05 for t in times)
            lines.append(f"| {backend} | {label} {r['default_batch']} ({kind}) | {len(times)} |"
                         f" {statistics.median(times) * 1000:.1f} ms | {max(times) * 1000:.1f} ms"
                         f" ({over} over 50 ms) | |")
        if r.get("adaptive_sizes"):
            sizes = r["adaptive_sizes"]
            lines.append(f"| {backend} | adaptive batch sizes seen | | median {statistics.median(sizes):.0f}"
                         f" | {min(sizes)}–{max(sizes)} | |")
        lines.append(f"| {backend} | whole backlog at the default | | | |"
                     f" {r['prune_wall_seconds']:.1f} s wall |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="a checkout of the code before (git archive c115c4c)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--raw-hours", type=float, default=24.0,
                        help="retention.raw_reports in the after run (the rest of --days is summarised)")
    parser.add_argument("--only", default="sqlite,postgresql")
    parser.add_argument("--modes", default="after,before", help="after and/or before")
    parser.add_argument("--pg-fsync", default="on", choices=("on", "off"),
                        help="off: sizes only (the batch times then leave out the commit's fsync)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--template", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        sys.path.insert(0, os.getcwd())
        print(json.dumps(child(args)))
        return 0
    if not 1 <= args.hosts <= 100 or not args.raw_hours + 1 <= args.days * 24 <= 240 or args.raw_hours < 1:
        parser.error("--hosts 1..100, --raw-hours at least 1, --days at most 10 and at least an hour more")
    sys.path.insert(0, str(ROOT))
    base = Path(tempfile.mkdtemp(prefix="bk-dbsize-"))
    base.chmod(0o755)
    template = base / "report.json"
    report = example_report()
    template.write_text(json.dumps(report))
    print(f"report: {len(report['checks'])} checks, {len(report['samples'])} samples,"
          f" {len(json.dumps(report)):,} bytes", flush=True)
    modes = set(args.modes.split(","))
    trees = [("after", ROOT)] if "after" in modes else []
    if args.before and "before" in modes:
        trees.append(("before", args.before.resolve()))
    results: dict[str, dict[str, Any]] = {}
    only = set(args.only.split(","))
    try:
        if "sqlite" in only:
            for mode, tree in trees:
                url = f"sqlite:///{base}/{mode}.db"
                results[f"SQLite/{mode}"] = run_child(tree, mode, url, template, args)
                print(mode, "SQLite:", json.dumps(results[f"SQLite/{mode}"]), flush=True)
        if "postgresql" in only:
            from tests.controller.conftest import PostgresServer, free_port

            pg = PostgresServer(base / "pg", free_port("127.0.2.11"),
                                settings={"fsync": args.pg_fsync, "max_connections": "50"})
            (base / "pg").mkdir()
            pg.start()
            try:
                for mode, tree in trees:
                    results[f"PostgreSQL/{mode}"] = run_child(tree, mode, pg.new_database(), template, args)
                    print(mode, "PostgreSQL:", json.dumps(results[f"PostgreSQL/{mode}"]), flush=True)
            finally:
                pg.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = "\n".join([
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()},"
        f" load average {os.getloadavg()[0]:.1f}; {args.hosts} hosts × {args.days:g} days at 15 s;"
        f" report {len(report['checks'])} checks + {len(report['samples'])} samples"
        f" = {len(json.dumps(report)):,} B",
        "", summarise(results), "", batch_table(results), "",
        "```json", json.dumps(results, indent=1)[:200_000], "```",
    ])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
