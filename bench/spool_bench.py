"""Spool bench: how many hours of reports the agent's spool holds, with and without compression.

Command (from the repository root; ``--reports 12`` at the example's 15 s: about 3.5 minutes)::

    .venv/bin/python bench/spool_bench.py --reports 12

Runs the real agent with the example config's 16 checks (retargeted at local stand-ins exactly as
bench/agent_bench.py does, at their own intervals, push every 15 s) with the controller
unreachable (a closed port), so every report it makes stays in ``spool.dir``. Then, for the
spooled files: the bytes on disk (zlib, as the agent writes them), the JSON they hold, what zlib
levels 1, 6 and 9 would give, and the CPU per report of compressing (each level) and of
decompressing, best of 5 rounds over all reports (``time.process_time``). From the mean sizes:
the hours the default ``spool.max_bytes`` (64 MiB) holds at one report per 15 s. Nothing is
asserted; results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import agent_bench as bench

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.spool import COMPRESS_LEVEL, unpack  # noqa: E402
from tests.agent.agentproc import AgentProcess, free_port, wait_for  # noqa: E402

MAX_BYTES = 64 * 1024 * 1024
PUSH_SECONDS = 15.0


def spool_reports(workdir: Path, reports: int, period: float) -> list[bytes]:
    portal = bench.Portal(bench.HOST)
    portal.start()
    listener = bench.closing_listener(bench.HOST)
    backup = workdir / "backup" / "bench.tar.gz"
    backup.parent.mkdir()
    backup.write_bytes(os.urandom(1024 * 1024 + 1))
    token = workdir / "agent.token"
    token.write_text(bench.TOKEN + "\n")
    token.chmod(0o600)
    every = None if period == 15.0 else f"{period:g}s"
    spool = workdir / "spool"
    config: dict[str, Any] = {
        "host": "bench-box", "interval": f"{period:g}s", "listen": f"127.0.0.1:{free_port('127.0.0.1')}",
        "controller": {"url": f"http://{bench.HOST}:{free_port(bench.HOST)}", "token_file": str(token),
                       "push_interval": f"{period:g}s"},
        "spool": {"dir": str(spool), "max_bytes": "64MiB"},
        "state_dir": str(workdir / "state"),
        "checks": bench.bench_checks(portal, listener.getsockname()[1], str(backup.parent / "*.tar.gz"),
                                     every),
    }
    agent = AgentProcess(workdir, config, "spool-bench-agent")
    try:
        with bench.stand_in_processes(workdir):
            agent.start()
            agent.wait_ready()
            wait_for(f"{reports} spooled reports", lambda: len(list(spool.glob("*.json"))) >= reports + 1,
                     period * (reports + 4) + 60)
    finally:
        agent.terminate()
        listener.close()
        portal.stop()
    files = sorted(spool.glob("*.json"))[1:reports + 1]  # the first report has no samples yet
    return [path.read_bytes() for path in files]


def best_cpu(work: Any, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reports", type=int, default=12)
    parser.add_argument("--period", type=float, default=15.0, help="check and push interval (example: 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmp:
        stored = spool_reports(Path(tmp), args.reports, args.period)
    raw = [unpack(data) for data in stored]
    assert all(data[:1] == b"\x78" for data in stored), "the agent did not compress its spool"
    n = len(raw)
    mean_raw = statistics.mean(len(r) for r in raw)
    print(f"{n} reports of the example config (push every {args.period:g} s), controller unreachable")
    print(f"  JSON: mean {mean_raw:,.0f} B (min {min(map(len, raw)):,}, max {max(map(len, raw)):,})")
    hours = {}
    for level in (1, 6, 9):
        sizes = [len(zlib.compress(r, level)) for r in raw]
        cpu = best_cpu(lambda level=level: [zlib.compress(r, level) for r in raw]) / n
        mean = statistics.mean(sizes)
        hours[level] = MAX_BYTES / mean * PUSH_SECONDS / 3600
        mark = "  <- the agent's level" if level == COMPRESS_LEVEL else ""
        print(f"  zlib level {level}: mean {mean:,.0f} B (×{mean / mean_raw:.3f}), "
              f"compress {cpu * 1e3:.3f} ms CPU per report, "
              f"64 MiB hold {hours[level]:,.0f} h ({hours[level] / 24:.1f} days){mark}")
    on_disk = statistics.mean(len(s) for s in stored)
    print(f"  on disk as spooled: mean {on_disk:,.0f} B; decompress "
          f"{best_cpu(lambda: [zlib.decompress(s) for s in stored]) / n * 1e3:.3f} ms CPU per report")
    plain_hours = MAX_BYTES / mean_raw * PUSH_SECONDS / 3600
    print(f"  uncompressed, 64 MiB hold {plain_hours:,.1f} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
