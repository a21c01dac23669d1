"""Ingest benchmark: simulated agents push reports to one controller; Pushgateway as the peer.

Command (from the repository root; about 3 minutes; needs PostgreSQL 15 and prometheus-pushgateway):

    .venv/bin/python bench/ingest_bench.py --out bench/results/ingest.md

Each report has 20 checks and 100 samples (about 15 KB of JSON); every simulated agent is a
distinct host with its own token. For each target the same two phases run:

1. closed loop: ``--concurrency`` keep-alive connections push back to back for ``--seconds``
   (the most the target sustains);
2. open loop: pushes are scheduled at ``--rate`` per second for ``--seconds``; latency is measured
   from the scheduled time (so queueing in the client counts, no coordinated omission).

Targets: the controller on SQLite (WAL, synchronous=NORMAL), the controller on PostgreSQL 15
(fsync on, default settings, started here on 127.0.0.1), and prometheus-pushgateway receiving the
equivalent pushes (the same 100 samples + 20 check gauges in the text format, PUT
/metrics/job/boxkeeper/instance/<host>). The load generator runs on the same 2-core machine.
Everything is bounded: fixed duration per phase, fixed number of hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.report import SCHEMA, CheckReport, Facts, PerfValue, Report, Sample, Status, to_json  # noqa: E402

SEQ_MARK = 987654321987654


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def build_report(host: str) -> Report:
    checks = tuple(
        CheckReport(name=f"check_{i:02d}", type="http" if i % 2 else "process",
                    status=Status(2 if i == 7 else 0), hard=True, flapping=False,
                    summary=f"HTTP 200 from http://127.0.0.1/{i} in 0.012 s, 5123 bytes",
                    duration_seconds=0.012,
                    attempt=1, max_attempts=3, last_change=1764300000.0,
                    perfdata=(PerfValue("time", 0.012, "s", 1.0, 2.0, 0.0, None),
                              PerfValue("size", 5123.0, "B", None, None, 0.0, None)))
        for i in range(20)
    )
    samples = []
    for i in range(100):
        family = i // 10
        kind = "counter" if family % 3 == 0 else "gauge"
        name = f"boxkeeper_bench_family_{family}" + ("_total" if kind == "counter" else "_bytes")
        samples.append(Sample(name=name, value=float(1000 + i), kind=kind,  # type: ignore[arg-type]
                              labels={"device": f"dev{i % 10}", "mode": "user"}))
    return Report(schema=SCHEMA, host=host, agent_version="0.1.0", seq=SEQ_MARK, sent_at=1764300000.5,
                  push_interval_seconds=15.0, checks=checks, samples=tuple(samples),
                  facts=Facts(hostname=f"{host}.bench.local", os="Rocky Linux 9.4", kernel="5.14.0",
                              boot_time=1764200000.0))


def exposition(report: Report) -> bytes:
    """The same data as a Pushgateway push: 100 samples + 20 check gauges, text format 0.0.4."""
    lines: list[str] = []
    by_name: dict[str, list[Sample]] = {}
    for s in report.samples:
        by_name.setdefault(s.name, []).append(s)
    for name, items in by_name.items():
        lines.append(f"# TYPE {name} {items[0].kind}")
        for s in items:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{name}{{{labels}}} {s.value}")
    lines.append("# TYPE boxkeeper_check_status gauge")
    for c in report.checks:
        lines.append(f'boxkeeper_check_status{{check="{c.name}",type="{c.type}"}} {int(c.status)}')
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Target:
    name: str
    host: str
    port: int
    requests: list[tuple[bytes, bytes]]  # per simulated agent: (request head template, body template)
    kind: str  # "controller" | "pushgateway"


def controller_requests(hosts: list[str], tokens: dict[str, str], port: int) -> list[tuple[bytes, bytes]]:
    result = []
    for host in hosts:
        body = to_json(build_report(host))
        assert body.count(str(SEQ_MARK).encode()) == 1
        head = (f"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {tokens[host]}\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n").encode()
        result.append((head, body))
    return result


def pushgateway_requests(hosts: list[str], port: int) -> list[tuple[bytes, bytes]]:
    result = []
    for host in hosts:
        body = exposition(build_report(host))
        head = (f"PUT /metrics/job/boxkeeper/instance/{host} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n").encode()
        result.append((head, body))
    return result


class Load:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.seq = [1_000_000 * (int(time.time()) % 1000)] * len(target.requests)
        self.next_host = 0
        self.latencies: list[float] = []
        self.codes: dict[int, int] = {}
        self.unsent = 0

    def next_request(self) -> bytes:
        i = self.next_host
        self.next_host = (i + 1) % len(self.target.requests)
        self.seq[i] += 1
        head, body = self.target.requests[i]
        if self.target.kind == "controller":
            body = body.replace(str(SEQ_MARK).encode(), str(self.seq[i]).encode(), 1)
        return head % len(body) + body

    async def _roundtrip(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
    ) -> int:
        writer.write(data)
        status_line = await reader.readline()
        code = int(status_line.split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        return code

    async def closed(self, concurrency: int, seconds: float) -> float:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
            while time.perf_counter() < end:
                started = time.perf_counter()
                code = await self._roundtrip(reader, writer, self.next_request())
                self.latencies.append(time.perf_counter() - started)
                self.codes[code] = self.codes.get(code, 0) + 1
            writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0

    async def open(self, rate: float, seconds: float, connections: int) -> float:
        queue: asyncio.Queue[float] = asyncio.Queue()
        total = int(rate * seconds)
        t0 = time.perf_counter()

        async def producer() -> None:
            for i in range(total):
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait(due)
            for _ in range(connections):
                queue.put_nowait(-1.0)

        hard_end = t0 + seconds * 2 + 5  # bounded: what is not sent by then is counted as not sent

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
            while True:
                due = await queue.get()
                if due < 0:
                    break
                if time.perf_counter() > hard_end:
                    self.unsent += 1
                    continue
                code = await self._roundtrip(reader, writer, self.next_request())
                self.latencies.append(time.perf_counter() - due)
                self.codes[code] = self.codes.get(code, 0) + 1
            writer.close()

        await asyncio.gather(producer(), *(worker() for _ in range(connections)))
        return time.perf_counter() - t0

    def summary(self, elapsed: float) -> dict[str, float]:
        lat = sorted(self.latencies)
        n = len(lat)
        ok = sum(v for k, v in self.codes.items() if 200 <= k < 300)
        return {
            "requests": n, "ok": ok, "errors": n - ok, "seconds": elapsed, "rate": ok / elapsed,
            "p50_ms": 1000 * lat[n // 2] if n else float("nan"),
            "p99_ms": 1000 * lat[min(n - 1, int(n * 0.99))] if n else float("nan"),
            "mean_ms": 1000 * statistics.fmean(lat) if n else float("nan"),
            "unsent": self.unsent,
        }


def run_phases(target: Target, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {"load": {"before": os.getloadavg()[0]}}
    warm = Load(target)
    asyncio.run(warm.closed(min(4, args.concurrency), 2.0))  # warm-up, not reported
    load = Load(target)
    load.seq = [s + 10_000_000 for s in warm.seq]
    elapsed = asyncio.run(load.closed(args.concurrency, args.seconds))
    results["closed"] = load.summary(elapsed)
    print(f"  closed loop ({args.concurrency} connections): {results['closed']}", flush=True)
    for n, rate in enumerate(args.rates):
        load2 = Load(target)
        load2.seq = [s + 20_000_000 * (n + 1) for s in warm.seq]
        elapsed = asyncio.run(load2.open(rate, args.seconds, args.concurrency))
        results[f"open {rate:g}/s"] = load2.summary(elapsed)
        print(f"  open loop ({rate:g}/s offered): {results[f'open {rate:g}/s']}", flush=True)
    results["load"]["after"] = os.getloadavg()[0]
    return results


def start_controller(
    tmp: Path, database: str, hosts: list[str], workers: int,
) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    from controller import inventory
    from controller.config import parse
    from controller.store.db import Database

    config = tmp / "controller.yaml"
    config.write_text(f"state_dir: {tmp}/state\ndatabase: {database}\nclients: [{{name: bench}}]\n")
    cfg = parse({"state_dir": str(tmp / "state"), "database": database, "clients": [{"name": "bench"}]})
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    tokens = {h: inventory.add_host(db, h, "bench") for h in hosts}
    db.dispose()
    ready = tmp / "ready"
    port = free_port()
    cmd = [sys.executable, "-m", "controller.cli", "serve", "--config", str(config), "--no-monitor",
           "--listen", f"127.0.0.1:{port}", "--ready-file", str(ready), "--log-level", "warning"]
    env = {**os.environ, "BOXKEEPER_WORKERS": str(workers)}
    with open(tmp / "controller.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    _wait_http(port, "/healthz", proc)
    return proc, port, tokens


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on {port}{path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def bench_controller(
    name: str, database: str, tmp: Path, hosts: list[str], args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    print(f"{name}: starting controller", flush=True)
    proc, port, tokens = start_controller(tmp, database, hosts, args.workers)
    try:
        target = Target(name, "127.0.0.1", port, controller_requests(hosts, tokens, port), "controller")
        results = run_phases(target, args)
        from sqlalchemy import create_engine, text

        engine = create_engine(database)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM reports")).scalar()
        engine.dispose()
        results["stored"] = {"reports": float(stored or 0)}
        return results
    finally:
        stop(proc)


def bench_pushgateway(tmp: Path, hosts: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    binary = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
    port = free_port()
    with open(tmp / "pushgateway.log", "wb") as log:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, "/-/ready", proc)
        target = Target("pushgateway", "127.0.0.1", port, pushgateway_requests(hosts, port), "pushgateway")
        return run_phases(target, args)
    finally:
        stop(proc)


def write_markdown(path: Path, results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace,
                   sizes: dict[str, int]) -> None:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    lines = [
        "# Ingest benchmark", "",
        f"Command: `.venv/bin/python bench/ingest_bench.py --hosts {args.hosts} --seconds {args.seconds} "
        f"--concurrency {args.concurrency} --rate {args.rate} --workers {args.workers}`", "",
        f"Machine: {os.cpu_count()} CPU ({model}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; the load generator (asyncio, keep-alive connections) runs on the same "
        "machine and competes for the same 2 cores.", "",
        f"Payload: 20 checks + 100 samples per report, {args.hosts} distinct hosts; controller body "
        f"{sizes['controller']} bytes of JSON, Pushgateway body {sizes['pushgateway']} bytes of text "
        "format.", "",
        "| target | phase | offered | sustained reports/s | p50 ms | p99 ms | errors | not sent in time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target, phases in results.items():
        for phase, r in phases.items():
            if phase in ("stored", "load"):
                continue
            if phase == "closed":
                kind, offered = "closed loop", f"{args.concurrency} conns, back to back"
            else:
                kind, offered = "open loop", phase.removeprefix("open ")
            lines.append(f"| {target} | {kind} | {offered} | {r['rate']:.0f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['errors']:.0f} | {r.get('unsent', 0):.0f} |")
    lines.append("")
    for target, phases in results.items():
        load = phases.get("load", {})
        lines.append(f"- {target}: 1-minute load average {load.get('before', 0):.1f} before, "
                     f"{load.get('after', 0):.1f} after (other jobs share this machine).")
        if "stored" in phases:
            stored = phases["stored"]["reports"]
            lines.append(f"- {target}: {stored:.0f} reports in the `reports` table after the run.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", default="1000,200",
                        help="offered rates of the open-loop phases, comma-separated (reports/s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the controller")
    parser.add_argument("--only", default="sqlite,postgresql,pushgateway")
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown table here")
    args = parser.parse_args()
    args.rates = [float(r) for r in str(args.rate).split(",") if r]
    hosts = [f"bench-{i:05d}" for i in range(args.hosts)]
    only = set(args.only.split(","))
    results: dict[str, dict[str, dict[str, float]]] = {}
    sample = build_report(hosts[0])
    sizes = {"controller": len(to_json(sample)), "pushgateway": len(exposition(sample))}
    base = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    base.chmod(0o755)  # PostgreSQL runs as user postgres and must reach its data dir
    try:
        if "sqlite" in only:
            tmp = base / "sqlite"
            tmp.mkdir()
            results["controller, SQLite"] = bench_controller(
                "sqlite", f"sqlite:///{tmp}/bench.db", tmp, hosts, args)
        if "postgresql" in only:
            sys.path.insert(0, str(ROOT))
            from tests.controller.conftest import PostgresServer

            tmp = base / "postgresql"
            tmp.mkdir()
            pg = PostgresServer(tmp, free_port("127.0.2.10"),
                                settings={"fsync": "on", "max_connections": "200"})
            pg.start()
            try:
                results["controller, PostgreSQL"] = bench_controller(
                    "postgresql", pg.new_database(), tmp, hosts, args)
            finally:
                pg.stop()
        if "pushgateway" in only:
            tmp = base / "pushgateway"
            tmp.mkdir()
            results["prometheus-pushgateway (peer)"] = bench_pushgateway(tmp, hosts, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.out:
        write_markdown(args.out, results, args, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
