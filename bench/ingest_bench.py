"""Ingest benchmark: simulated agents push reports to one controller; Pushgateway as the peer.

Command (from the repository root; about 2 minutes, 5 with `--generator wrk,python`; needs PostgreSQL 15,
prometheus-pushgateway and wrk — ``apt-get install wrk``, checked at start):

    .venv/bin/python bench/ingest_bench.py --out bench/results/ingest.md

Each report has 20 checks and 100 samples (about 20 KB of JSON); every simulated agent is a
distinct host with its own token, and every push carries a new ``seq`` (no duplicates). For each
target the same phases run:

1. closed loop: ``--concurrency`` keep-alive connections push back to back for ``--seconds``
   (the most the target sustains, and the latency at that load);
2. paced: pushes are scheduled at ``--rate`` per second for ``--seconds``.

Load generators (``--generator``, comma-separated; each runs every phase):

- ``wrk`` (default; C + LuaJIT, pre-built bodies, the seq spliced in per push): cheap enough to leave
  the CPU to the server. Its paced phase schedules each thread's pushes on a clock, but measures the
  latency from the actual send (when the target falls behind, the schedule slips: compare the achieved
  rate with the offered one).
- ``python`` (asyncio, raw sockets, pre-built requests): its paced phase measures the latency from the
  scheduled time (no coordinated omission), but the generator itself needs a large share of a core.

The CPU seconds used by the generator, by the server (for PostgreSQL: the controller and the
PostgreSQL processes) and by the whole machine are measured per phase and reported per push, so
the share taken by the generator and by other jobs on this shared machine is visible.

Before and after in one run (``--before DIR``, as ``bench/db_size_bench.py``): DIR is an older
tree (``git archive 12d7d9e | tar -x -C /tmp/bk-before``); each database is then served by that
tree's controller and by this checkout's, alternately, ``--rounds`` times (fresh database each
time; the older tree sets up its own schema), and a table gives the server CPU per report of both
with each run's load average::

    .venv/bin/python bench/ingest_bench.py --before /tmp/bk-before --rounds 3 --workers 2 \
        --only sqlite,postgresql --connections keep-alive --rate 300,1000 --out /tmp/ingest.md

Targets: the controller on SQLite (WAL, synchronous=NORMAL), the controller on PostgreSQL 15
(fsync on, default settings, started here on 127.0.0.1), and prometheus-pushgateway receiving the
equivalent pushes (the same 100 samples + 20 check gauges in the text format, PUT
/metrics/job/boxkeeper/instance/<host>). Everything runs on the same machine.
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

from cputime import machine_cpu, tree_cpu  # noqa: E402 (bench/, the script's own directory)

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


WRK_SCRIPT = r"""
-- boxkeeper ingest bench: cycle through pre-built per-host requests, a new seq in every push.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bk_timespec;
int clock_gettime(int clk_id, bk_timespec *tp);
]]
local ts = ffi.new("bk_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local dir = os.getenv("BK_DIR")
local nhosts = tonumber(os.getenv("BK_HOSTS"))
local nthreads = tonumber(os.getenv("BK_THREADS"))
local seqbase = tonumber(os.getenv("BK_SEQ"))
local with_seq = os.getenv("BK_WITH_SEQ") == "1"
local rate = tonumber(os.getenv("BK_RATE") or "0")
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local heads, pres, sufs, seqs = {}, {}, {}, {}
local idx = 0
local interval, next_due = 0, nil

function init(args)
  for h = tid, nhosts - 1, nthreads do
    heads[#heads + 1] = slurp(dir .. "/" .. h .. ".head")
    pres[#pres + 1] = slurp(dir .. "/" .. h .. ".pre")
    sufs[#sufs + 1] = slurp(dir .. "/" .. h .. ".suf")
    seqs[#seqs + 1] = seqbase
  end
  if rate > 0 then interval = 1000.0 * nthreads / rate end
end

function request()
  idx = idx % #heads + 1
  local body = pres[idx]
  if with_seq then
    seqs[idx] = seqs[idx] + 1
    body = body .. string.format("%d", seqs[idx]) .. sufs[idx]
  end
  return heads[idx] .. #body .. "\r\n\r\n" .. body
end

if rate > 0 then
  -- paced: each push of this thread takes the next slot of a fixed schedule
  function delay()
    local t = now_ms()
    if next_due == nil or next_due < t - 1000 then next_due = t end
    next_due = next_due + interval
    local d = next_due - t
    if d < 0 then return 0 end
    return math.floor(d)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("BK_OUT"), "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %f}',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
  f:close()
end
"""


def require_wrk() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        sys.exit("wrk not found: apt-get install wrk (Debian package), or run with --generator python")
    return binary


class CpuMeter:
    """CPU seconds used during a phase by the server processes and by the whole machine."""

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.server0 = tree_cpu(server_pids)
        self.machine0 = machine_cpu()
        self.self0 = time.process_time()

    def finish(self, result: dict[str, float], generator_cpu: float | None = None) -> dict[str, float]:
        server = tree_cpu(self.server_pids) - self.server0
        machine = machine_cpu() - self.machine0
        gen = time.process_time() - self.self0 if generator_cpu is None else generator_cpu
        n = max(1.0, result["ok"])
        seconds = result["seconds"]
        result.update({
            "server_cpu_s": server, "generator_cpu_s": gen, "machine_cpu_s": machine,
            "other_cpu_s": max(0.0, machine - server - gen),
            "server_cpu_ms_per_push": 1000 * server / n, "generator_cpu_ms_per_push": 1000 * gen / n,
            "server_cores": server / seconds, "generator_cores": gen / seconds,
            "other_cores": max(0.0, machine - server - gen) / seconds,
        })
        return result


def write_wrk_data(target: Target, directory: Path, *, close: bool = False) -> None:
    """Per-host request parts for the Lua script; ``close``: each request says ``Connection: close``
    (the server closes after answering, wrk connects again: one TCP connection per push, as the
    agent does)."""
    directory.mkdir(parents=True, exist_ok=True)
    mark = str(SEQ_MARK).encode()
    for i, (head, body) in enumerate(target.requests):
        head = head.removesuffix(b"%d\r\n\r\n")
        if close:
            head = head.replace(b"\r\nContent-Length: ", b"\r\nConnection: close\r\nContent-Length: ")
        (directory / f"{i}.head").write_bytes(head)
        if target.kind == "controller":
            pre, suf = body.split(mark, 1)
        else:
            pre, suf = body, b""
        (directory / f"{i}.pre").write_bytes(pre)
        (directory / f"{i}.suf").write_bytes(suf)


def run_wrk(target: Target, data_dir: Path, seconds: float, connections: int, seq_base: int,
            rate: float, server_pids: list[int]) -> dict[str, float]:
    script = data_dir / "bench.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    out = data_dir / "result.json"
    out.unlink(missing_ok=True)
    threads = 1
    env = {**os.environ, "BK_DIR": str(data_dir), "BK_HOSTS": str(len(target.requests)),
           "BK_THREADS": str(threads), "BK_SEQ": str(seq_base), "BK_OUT": str(out),
           "BK_WITH_SEQ": "1" if target.kind == "controller" else "0", "BK_RATE": str(rate)}
    cmd = [require_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
           "--timeout", "30s", "-s", str(script), f"http://{target.host}:{target.port}/"]
    meter = CpuMeter(server_pids)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = proc.stdout.read().decode() if proc.stdout else ""
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output[-2000:]}")
    w = json.loads(out.read_text())
    n = int(w["requests"])
    errors = int(w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"])
    elapsed = w["duration_us"] / 1e6
    result = {
        "requests": n, "ok": n - errors, "errors": errors, "seconds": elapsed, "rate": (n - errors) / elapsed,
        "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "p999_ms": w["p999_us"] / 1000,
        "max_ms": w["max_us"] / 1000, "mean_ms": w["mean_us"] / 1000, "unsent": 0,
    }
    return meter.finish(result, usage.ru_utime + usage.ru_stime)


def run_phases(target: Target, args: argparse.Namespace, server_pids: list[int],
               tmp: Path) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {"load": {"before": os.getloadavg()[0]}}
    base = 1_000_000 * (int(time.time()) % 1000)
    warm = Load(target)
    warm.seq = [base] * len(target.requests)
    asyncio.run(warm.closed(min(4, args.concurrency), 2.0))  # warm-up, not reported
    step = 0
    for generator in args.generators:
        if generator == "wrk":
            for mode in args.connection_modes:
                close = mode == "per-push"
                label = "wrk,new-connection-per-push" if close else "wrk"
                data = tmp / ("wrk-close" if close else "wrk")
                write_wrk_data(target, data, close=close)
                step += 1
                r = run_wrk(target, data, args.seconds, args.concurrency, base + 10_000_000 * step, 0.0,
                            server_pids)
                results[f"{label} closed"] = r
                print(f"  {label}, closed loop ({args.concurrency} connections): {_short(r)}", flush=True)
                for rate in args.rates:
                    step += 1
                    r = run_wrk(target, data, args.seconds, args.concurrency, base + 10_000_000 * step, rate,
                                server_pids)
                    results[f"{label} paced {rate:g}/s"] = r
                    print(f"  {label}, paced ({rate:g}/s offered): {_short(r)}", flush=True)
        else:
            step += 1
            load = Load(target)
            load.seq = [base + 10_000_000 * step] * len(target.requests)
            meter = CpuMeter(server_pids)
            elapsed = asyncio.run(load.closed(args.concurrency, args.seconds))
            r = meter.finish(load.summary(elapsed))
            results["python closed"] = r
            print(f"  python, closed loop ({args.concurrency} connections): {_short(r)}", flush=True)
            for rate in args.rates:
                step += 1
                load2 = Load(target)
                load2.seq = [base + 10_000_000 * step] * len(target.requests)
                meter = CpuMeter(server_pids)
                elapsed = asyncio.run(load2.open(rate, args.seconds, args.concurrency))
                r = meter.finish(load2.summary(elapsed))
                results[f"python open {rate:g}/s"] = r
                print(f"  python, open loop ({rate:g}/s offered): {_short(r)}", flush=True)
    results["load"]["after"] = os.getloadavg()[0]
    return results


def _short(r: dict[str, float]) -> str:
    return (f"{r['rate']:.0f}/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"errors {r['errors']:.0f}, "
            f"server {r['server_cpu_ms_per_push']:.2f} ms CPU/push ({r['server_cores']:.2f} cores), "
            f"generator {r['generator_cpu_ms_per_push']:.2f} ms CPU/push ({r['generator_cores']:.2f} cores), "
            f"other {r['other_cores']:.2f} cores")


SETUP = """
import json, sys
from controller import inventory
from controller.config import parse
from controller.store.db import Database
state, database, hosts = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
cfg = parse({"state_dir": state, "database": database, "clients": [{"name": "bench"}]})
db = Database(cfg.database)
db.upgrade()
inventory.sync_config(cfg, db)
print(json.dumps({h: inventory.add_host(db, h, "bench") for h in hosts}))
db.dispose()
"""


def start_controller(
    tmp: Path, database: str, hosts: list[str], workers: int, tree: Path = ROOT,
) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    """``serve`` of the code in ``tree`` (this checkout, or the ``--before`` one): the database is
    set up and served by that tree's code, in child processes (``PYTHONPATH``, working directory)."""
    config = tmp / "controller.yaml"
    config.write_text(f"state_dir: {tmp}/state\ndatabase: {database}\nclients: [{{name: bench}}]\n")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    made = subprocess.run([sys.executable, "-c", SETUP, str(tmp / "state"), database, ",".join(hosts)],
                          env=env, cwd=str(tree), capture_output=True, text=True, timeout=600, check=True)
    tokens: dict[str, str] = json.loads(made.stdout.strip().splitlines()[-1])
    ready = tmp / "ready"
    port = free_port()
    cmd = [sys.executable, "-m", "controller.cli", "serve", "--config", str(config), "--no-monitor",
           "--listen", f"127.0.0.1:{port}", "--ready-file", str(ready), "--log-level", "warning"]
    env["BOXKEEPER_WORKERS"] = str(workers)
    with open(tmp / "controller.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tree))
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
    extra_pids: list[int] | None = None, tree: Path = ROOT,
) -> dict[str, dict[str, float]]:
    print(f"{name}: starting controller ({tree})", flush=True)
    proc, port, tokens = start_controller(tmp, database, hosts, args.workers, tree)
    try:
        target = Target(name, "127.0.0.1", port, controller_requests(hosts, tokens, port), "controller")
        results = run_phases(target, args, [proc.pid, *(extra_pids or [])], tmp)
        from sqlalchemy import create_engine, text

        engine = create_engine(database)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM reports")).scalar()
        engine.dispose()
        results["stored"] = {"reports": float(stored or 0)}
        return results
    finally:
        stop(proc)


def _trees(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(label suffix, code tree) of each controller run, ``--rounds`` times, before and after
    alternating (so that both see the same spells of load from other jobs)."""
    if args.before is None:
        return [("", ROOT)]
    runs: list[tuple[str, Path]] = []
    for r in range(1, args.rounds + 1):
        pair = [(f", before, round {r}", args.before.resolve()), (f", after, round {r}", ROOT)]
        runs += pair if r % 2 else pair[::-1]
    return runs


def bench_pushgateway(tmp: Path, hosts: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    binary = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
    port = free_port()
    with open(tmp / "pushgateway.log", "wb") as log:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, "/-/ready", proc)
        target = Target("pushgateway", "127.0.0.1", port, pushgateway_requests(hosts, port), "pushgateway")
        return run_phases(target, args, [proc.pid], tmp)
    finally:
        stop(proc)


def write_markdown(path: Path, results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace,
                   sizes: dict[str, int]) -> None:
    """The raw table of this run (the analysis is written by hand below it, see ingest.md)."""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    lines = [
        "# Ingest benchmark", "",
        f"Command: `.venv/bin/python bench/ingest_bench.py --hosts {args.hosts} --seconds {args.seconds:g} "
        f"--concurrency {args.concurrency} --rate {args.rate} --workers {args.workers} "
        f"--generator {args.generator} --connections {args.connections}`", "",
        f"Machine: {os.cpu_count()} CPU ({model}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; generator, server and database share these cores.", "",
        f"Payload: 20 checks + 100 samples per report, {args.hosts} distinct hosts; controller body "
        f"{sizes['controller']} bytes of JSON, Pushgateway body {sizes['pushgateway']} bytes of text "
        "format.", "",
        "| target | generator | phase | offered | achieved pushes/s | p50 ms | p99 ms | errors | "
        "server CPU ms/push | generator CPU ms/push | server cores | generator cores | other jobs cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target, phases in results.items():
        for phase, r in phases.items():
            if phase in ("stored", "load"):
                continue
            generator, kind, *rest = phase.split(" ")
            offered = rest[0] if rest else f"{args.concurrency} at a time, back to back"
            kind = {"closed": "closed loop", "paced": "paced (latency from send)",
                    "open": "open loop (latency from schedule)"}[kind]
            unsent = f" (+{r['unsent']:.0f} not sent in time)" if r.get("unsent") else ""
            lines.append(
                f"| {target} | {generator} | {kind} | {offered} | {r['rate']:.0f} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['errors']:.0f}{unsent} | {r['server_cpu_ms_per_push']:.2f} | "
                f"{r['generator_cpu_ms_per_push']:.2f} | {r['server_cores']:.2f} | "
                f"{r['generator_cores']:.2f} | {r['other_cores']:.2f} |")
    lines.append("")
    if args.before is not None:
        lines += compare(results)
    for target, phases in results.items():
        load = phases.get("load", {})
        lines.append(f"- {target}: 1-minute load average {load.get('before', 0):.1f} before, "
                     f"{load.get('after', 0):.1f} after.")
        if "stored" in phases:
            stored = phases["stored"]["reports"]
            lines.append(f"- {target}: {stored:.0f} reports in the `reports` table after the run.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def compare(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Server CPU per stored report, before against after, per database and phase: the median and
    the range over the rounds, each run's 1-minute load average beside it."""
    lines = ["| database | phase | server CPU ms/report before (runs: value @ load) | after | "
             "after / before (medians) |", "|---|---|---|---|---|"]
    found: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for target, phases in results.items():
        parts = target.split(", ")
        if len(parts) < 4:
            continue
        database, tree = parts[1], parts[2]
        load = phases.get("load", {}).get("before", float("nan"))
        for phase, r in phases.items():
            if phase not in ("stored", "load"):
                found.setdefault((database, phase, tree), []).append((r["server_cpu_ms_per_push"], load))
    for database, phase in dict.fromkeys((d, p) for d, p, _ in found):
        cells, medians = [], []
        for tree in ("before", "after"):
            runs = found.get((database, phase, tree), [])
            medians.append(statistics.median(v for v, _ in runs) if runs else float("nan"))
            each = ", ".join(f"{v:.2f} @ {load:.1f}" for v, load in runs)
            cells.append(f"**{medians[-1]:.2f}** ({each})")
        lines.append(f"| {database} | {phase} | {cells[0]} | {cells[1]} | {medians[1] / medians[0]:.2f} |")
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", default="1000",
                        help="offered rates of the open-loop phases, comma-separated (reports/s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the controller")
    parser.add_argument("--only", default="sqlite,postgresql,pushgateway")
    parser.add_argument("--generator", default="wrk",
                        help="load generators, comma-separated: wrk (C, needs apt-get install wrk), python")
    parser.add_argument("--connections", default="keep-alive,per-push",
                        help="wrk phases: keep-alive (16 long-lived connections) and/or per-push (a new "
                             "connection for every push, as boxkeeper-agent does)")
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--before", type=Path, default=None,
                        help="also run the controller of this code tree (git archive <commit> | tar -x -C "
                             "DIR), alternating with this checkout's, in the same run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --before: before/after pairs per database")
    args = parser.parse_args()
    args.connection_modes = [m for m in args.connections.split(",") if m]
    if any(m not in ("keep-alive", "per-push") for m in args.connection_modes):
        parser.error("--connections: keep-alive and/or per-push")
    args.rates = [float(r) for r in str(args.rate).split(",") if r]
    args.generators = [g for g in args.generator.split(",") if g]
    if any(g not in ("wrk", "python") for g in args.generators):
        parser.error("--generator: wrk and/or python")
    if "wrk" in args.generators:
        require_wrk()
    hosts = [f"bench-{i:05d}" for i in range(args.hosts)]
    only = set(args.only.split(","))
    results: dict[str, dict[str, dict[str, float]]] = {}
    sample = build_report(hosts[0])
    sizes = {"controller": len(to_json(sample)), "pushgateway": len(exposition(sample))}
    base = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    base.chmod(0o755)  # PostgreSQL runs as user postgres and must reach its data dir
    try:
        if "sqlite" in only:
            for i, (label, tree) in enumerate(_trees(args)):
                tmp = base / f"sqlite{i}"
                tmp.mkdir()
                results[f"controller, SQLite{label}"] = bench_controller(
                    "sqlite", f"sqlite:///{tmp}/bench.db", tmp, hosts, args, tree=tree)
        if "postgresql" in only:
            sys.path.insert(0, str(ROOT))
            from tests.controller.conftest import PostgresServer

            tmp = base / "postgresql"
            tmp.mkdir()
            pg = PostgresServer(tmp, free_port("127.0.2.10"),
                                settings={"fsync": "on", "max_connections": "200"})
            pg.start()
            try:
                assert pg.proc is not None
                for i, (label, tree) in enumerate(_trees(args)):
                    run_dir = tmp / f"run{i}"
                    run_dir.mkdir()
                    results[f"controller, PostgreSQL{label}"] = bench_controller(
                        "postgresql", pg.new_database(), run_dir, hosts, args, extra_pids=[pg.proc.pid],
                        tree=tree)
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
