"""Fleet bench: N simulated hosts push the example agent config's report every 15 s to real
``boxkeeper serve`` processes for ``--minutes``, while the bench measures what an operator would feel.

Commands (from the repository root; root, for the PostgreSQL server the bench starts):

    .venv/bin/python bench/fleet_bench.py --db postgresql --hosts 10000 --out bench/results/fleet.md
    .venv/bin/python bench/fleet_bench.py --db sqlite --hosts 2000 --out bench/results/fleet.md

Set-up: PostgreSQL 15 (fsync on, default settings, 127.0.2.x) with two ``serve`` processes (each
``--workers``, default 1; a host pushes to one of the two, round-robin by host, as agents configured
with two URLs spread over them), or SQLite (WAL) with one ``serve --workers 2``. Hosts are enrolled
in bulk (one transaction: hosts, host states, token hashes through the store's models).

The report: the example agent config (``config/agent.example.yaml``, 25 checks with the ``bitrix:``
profile, its samples), built once by the agent's own code on this machine
(``bench/db_size_bench.py``'s ``example_report``), every check set to OK (this machine has no
Bitrix: most would be CRITICAL) with its summary text kept: about 15 KB of JSON. Pre-encoded; per push
the host name, ``seq`` and ``sent_at`` are spliced in.

The load generator (a child process: asyncio, raw keep-alive sockets, ``--connections`` per
controller): host i pushes at ``t0 + i × 15 s / N + k × 15 s`` (spread evenly). The latency of a
push is counted from its scheduled time (no coordinated omission), so when the controllers fall
behind the lag grows: the **backlog** is the number of pushes due and not yet answered.
``--flip`` of the hosts (3 %) turn one check CRITICAL for 2 minutes at a random moment (an
incident opens and resolves); ``--silent`` of them (1 %) stop pushing a third of the way in
(agent-down incidents, no probe targets).

Measured while it runs (threads of this process; every wait bounded): every 5 s the backlog, the
generator's lag, the CPU of generator / controllers / PostgreSQL; ``boxkeeper status --json``
(a new process, as a user runs it) back to back with a 5 s pause; ``GET /api/v1/incidents``
(an operator's viewer token, the default 200 newest) every second, alternating controllers. The
detection sweep times come from the leader's log (``controller/detection/sweeps.py``: one line a
minute with the median and the longest full sweep).

At the end, with the controllers stopped: the database size by table, bytes per stored report
(→ bytes per host per day), then a pruning pass (``controller.retention.prune_batch``, 1,000 rows
a batch, at most ``--prune-seconds``) with ``raw_reports: 1h`` and a clock an hour on, which folds
the reports of the run's first minute into hourly summaries: the summaries' bytes per host-hour.
Those two figures give the database at the defaults (7 days raw + 400 days of summaries) for N
hosts, compared with ``docs/controller.md`` ("Retention and sizing").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cputime import machine_cpu, tree_cpu  # noqa: E402 (bench/, the script's own directory)

INTERVAL = 15.0
HOST_MARK = "zzfleethostzz"
SEQ_MARK = 987654321987654
SENT_MARK = 1999999999.25
MARKS = re.compile(rb"zzfleethostzz|987654321987654|1999999999\.25")
SAMPLE_EVERY = 5.0
#: documented per host (docs/controller.md "Retention and sizing"): raw reports per day, summaries per day
DOCUMENTED = {"postgresql": (18.5e6, 0.06e6), "sqlite": (60.0e6, 0.0172e6)}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- the report ----------------------------------------------------------------------------------


def templates() -> tuple[bytes, bytes]:
    """(every check OK, the first check CRITICAL) with the three marks in them."""
    sys.path.insert(0, str(ROOT / "bench"))
    from db_size_bench import example_report

    data = example_report()
    for c in data["checks"]:
        c.update(status=0, hard=True, flapping=False, attempt=1)
    data.update(host=HOST_MARK, seq=SEQ_MARK, sent_at=SENT_MARK, push_interval_seconds=INTERVAL)
    ok = json.dumps(data, separators=(",", ":")).encode()
    data["checks"][0].update(status=2, summary="HTTP 502 Bad Gateway from the portal (bench flip)")
    bad = json.dumps(data, separators=(",", ":")).encode()
    for body in (ok, bad):
        assert len(MARKS.findall(body)) == 3, MARKS.findall(body)
    return ok, bad


def split(body: bytes) -> tuple[list[bytes], list[bytes]]:
    """The body's constant parts and the marks between them, in order."""
    return MARKS.split(body), MARKS.findall(body)


# -- the generator (a child process) ---------------------------------------------------------------


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.hosts: list[str] = spec["hosts"]
        self.ports: list[int] = spec["ports"]
        n = len(self.hosts)
        self.heads = [
            (f"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n"
             "Content-Type: application/json\r\nContent-Length: ").encode()
            for tok in spec["tokens"]]
        self.names = [h.encode() for h in self.hosts]
        ok, bad = (bytes.fromhex(spec["ok"]), bytes.fromhex(spec["bad"]))
        self.ok, self.order = split(ok)
        self.bad, _ = split(bad)
        self.seq = [0] * n
        rng = random.Random(18)
        seconds = spec["seconds"]
        self.flip: dict[int, tuple[float, float]] = {}
        for i in rng.sample(range(n), int(n * spec["flip"])):
            start = rng.uniform(0.1, 0.6) * seconds
            self.flip[i] = (start, start + min(120.0, seconds / 4))
        self.silent_from = {i: seconds / 3 for i in rng.sample(range(n), int(n * spec["silent"]))}
        self.scheduled = 0
        self.answered = 0
        self.errors = 0
        self.codes: dict[int, int] = {}
        self.window: list[float] = []
        self.lags: list[tuple[float, float]] = []  # (due offset, lag)
        self.t0 = 0.0

    def request(self, i: int, now: float) -> bytes:
        self.seq[i] += 1
        window = self.flip.get(i)
        parts = self.bad if window and window[0] <= now - self.t0 < window[1] else self.ok
        values = {b"zzfleethostzz": self.names[i], b"987654321987654": str(self.seq[i]).encode(),
                  b"1999999999.25": repr(time.time()).encode()}
        out = [parts[0]]
        for mark, part in zip(self.order, parts[1:], strict=True):
            out.append(values[mark])
            out.append(part)
        body = b"".join(out)
        return self.heads[i] + str(len(body)).encode() + b"\r\n\r\n" + body

    async def roundtrip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
        writer.write(data)
        status = await reader.readline()
        if not status:
            raise ConnectionError("closed")
        code = int(status.split()[1])
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

    async def worker(self, port: int, queue: asyncio.Queue[tuple[float, int] | None]) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            item = await queue.get()
            if item is None:
                break
            due, i = item
            for _ in range(3):
                try:
                    if conn is None:
                        conn = await asyncio.open_connection("127.0.0.1", port)
                    code = await asyncio.wait_for(
                        self.roundtrip(*conn, self.request(i, time.monotonic())), 60)
                    break
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    code = 0
            lag = time.monotonic() - due
            self.answered += 1
            self.codes[code] = self.codes.get(code, 0) + 1
            if not 200 <= code < 300:
                self.errors += 1
            self.window.append(lag)
            self.lags.append((due - self.t0, lag))
        if conn is not None:
            conn[1].close()

    async def run(self, out: Any) -> None:
        n = len(self.hosts)
        seconds = self.spec["seconds"]
        queues: list[asyncio.Queue[tuple[float, int] | None]] = [asyncio.Queue() for _ in self.ports]
        workers = [asyncio.create_task(self.worker(port, q))
                   for port, q in zip(self.ports, queues, strict=True)
                   for _ in range(self.spec["connections"])]
        self.t0 = time.monotonic() + 1.0
        reporter = asyncio.create_task(self.report(out))
        k = 0
        while True:
            base = self.t0 + k * INTERVAL
            if base - self.t0 >= seconds:
                break
            for i in range(n):
                due = base + i * INTERVAL / n
                if due - self.t0 >= seconds:
                    break
                if i in self.silent_from and due - self.t0 >= self.silent_from[i]:
                    continue
                delay = due - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                queues[i % len(queues)].put_nowait((due, i))
                self.scheduled += 1
            k += 1
        drain_until = time.monotonic() + self.spec["drain"]
        while self.answered < self.scheduled and time.monotonic() < drain_until:
            await asyncio.sleep(0.2)
        unsent = sum(q.qsize() for q in queues)
        for q in queues:
            while not q.empty():
                q.get_nowait()
            for _ in range(self.spec["connections"]):
                q.put_nowait(None)
        await asyncio.wait(workers, timeout=70)
        reporter.cancel()
        self.line(out, final=True, unsent=unsent)

    def line(self, out: Any, *, final: bool = False, unsent: int = 0) -> None:
        window, self.window = sorted(self.window), []
        row: dict[str, Any] = {
            "t": time.monotonic() - self.t0, "scheduled": self.scheduled, "answered": self.answered,
            "backlog": self.scheduled - self.answered, "errors": self.errors,
            "window_n": len(window),
            "window_p50": window[len(window) // 2] if window else None,
            "window_p99": window[min(len(window) - 1, int(len(window) * 0.99))] if window else None,
            "window_max": window[-1] if window else None,
        }
        if final:
            row.update(final=True, unsent=unsent, codes={str(k): v for k, v in self.codes.items()},
                       lags=[(round(d, 3), round(lag, 4)) for d, lag in self.lags],
                       flips=len(self.flip), silent=len(self.silent_from))
        out.write(json.dumps(row) + "\n")
        out.flush()

    async def report(self, out: Any) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            self.line(out)


def generator_main(spec_path: str, out_path: str) -> int:
    import gc

    spec = json.loads(Path(spec_path).read_text())
    gen = Generator(spec)
    gc.freeze()
    with open(out_path, "w") as out:
        asyncio.run(gen.run(out))
    return 0


# -- the set-up ----------------------------------------------------------------------------------


def enrol(url: str, n: int, config: Path) -> dict[str, str]:
    """Migrate, write the config's client, add N hosts with their tokens in one transaction."""
    from sqlalchemy import insert, select

    from controller import inventory, tokens
    from controller.config import load
    from controller.store.db import Database
    from controller.store.models import AgentToken, Client, Host, HostState

    cfg = load(str(config))
    db = Database(url)
    db.upgrade()
    inventory.sync_config(cfg, db)
    names = [f"fleet-{i:05d}" for i in range(n)]
    secret = {h: tokens.generate(tokens.AGENT_PREFIX) for h in names}
    now = time.time()
    with db.session() as s:
        client = s.scalar(select(Client.id).where(Client.name == "bench"))
        s.execute(insert(Host), [{"name": h, "client_id": client, "timezone": "UTC", "labels": {},
                                  "created_at": now} for h in names])
        ids = {name: id_ for name, id_ in s.execute(select(Host.name, Host.id))}
        s.execute(insert(HostState), [{"host_id": ids[h], "reports_total": 0, "facts": {}, "samples": []}
                                      for h in names])
        s.execute(insert(AgentToken), [{"host_id": ids[h], "token_sha256": tokens.hash_token(secret[h]),
                                        "created_at": now} for h in names])
    db.dispose()
    return secret


def operator_token(path: Path) -> str:
    import yaml

    from controller import tokens

    token = tokens.generate(tokens.OPERATOR_PREFIX)
    path.write_text(yaml.safe_dump({"operators": [
        {"name": "bench", "sha256": tokens.hash_token(token), "role": "viewer", "created_at": time.time()}]}))
    path.chmod(0o600)
    return token


def start_serve(config: Path, work: Path, name: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = free_port()
    ready = work / f"ready-{name}"
    with open(work / f"serve-{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "serve", "--config", str(config), "--listen",
             f"127.0.0.1:{port}", "--ready-file", str(ready), "--log-level", "info",
             "--workers", str(workers)],
            stdout=log, stderr=subprocess.STDOUT, cwd=work)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve {name} exited: {(work / f'serve-{name}.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"serve {name} did not answer on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- measuring -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


class Probes:
    """The operator's side, in threads: status CLI, incidents API, CPU samples."""

    def __init__(self, config: Path, ports: list[int], token: str, pids: dict[str, list[int]],
                 stop_event: threading.Event) -> None:
        self.config = config
        self.ports = ports
        self.token = token
        self.pids = pids
        self.stop = stop_event
        self.status: list[tuple[float, float, int]] = []  # (t, seconds, exit status)
        self.status_cpu: list[float] = []  # CPU seconds of each status process (the machine is shared)
        self.incidents: list[tuple[float, float, int]] = []
        self.cpu: list[dict[str, float]] = []
        self.t0 = time.monotonic()

    def status_loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            with tempfile.TemporaryFile() as out:
                argv = [sys.executable, "-m", "controller.cli", "status", "--json", "--config",
                        str(self.config)]
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
                timer = threading.Timer(120, proc.kill)  # bounded
                timer.start()
                _, status, usage = os.wait4(proc.pid, 0)
                timer.cancel()
                proc.returncode = os.waitstatus_to_exitcode(status)
            self.status.append((started - self.t0, time.monotonic() - started, proc.returncode))
            self.status_cpu.append(usage.ru_utime + usage.ru_stime)
            self.stop.wait(SAMPLE_EVERY)

    def incidents_loop(self) -> None:
        import httpx

        clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60,
                                headers={"Authorization": f"Bearer {self.token}"}) for p in self.ports]
        n = 0
        try:
            while not self.stop.is_set():
                client = clients[n % len(clients)]
                n += 1
                started = time.monotonic()
                try:
                    code = client.get("/api/v1/incidents").status_code
                except httpx.HTTPError:
                    code = 0
                self.incidents.append((started - self.t0, time.monotonic() - started, code))
                self.stop.wait(1.0)
        finally:
            for c in clients:
                c.close()

    def cpu_loop(self) -> None:
        while not self.stop.is_set():
            row = {"t": time.monotonic() - self.t0, "machine": machine_cpu(), "load1": os.getloadavg()[0]}
            for name, pids in self.pids.items():
                row[name] = tree_cpu(pids)
            self.cpu.append(row)
            self.stop.wait(SAMPLE_EVERY)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=f, daemon=True, name=f.__name__)
                   for f in (self.status_loop, self.incidents_loop, self.cpu_loop)]
        for t in threads:
            t.start()
        return threads


SWEEP_LINE = re.compile(r"detection sweeps in the last (\d+) s: (\d+) over (\d+) hosts, median ([\d.]+) s, "
                        r"max ([\d.]+) s")


def sweeps(work: Path) -> list[dict[str, float]]:
    found = []
    for log in sorted(work.glob("serve-*.log")):
        for m in SWEEP_LINE.finditer(log.read_text(errors="replace")):
            found.append({"sweeps": float(m.group(2)), "hosts": float(m.group(3)),
                          "median": float(m.group(4)), "max": float(m.group(5))})
    return found


def table_sizes(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from controller.store.db import Database

    db = Database(url)
    try:
        if db.is_sqlite:
            import sqlite3

            conn = sqlite3.connect(db.url.database, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                sizes = {str(name): int(n) for name, n in
                         conn.execute("SELECT name, SUM(pgsize - unused) FROM dbstat GROUP BY name")}
            finally:
                conn.close()
            grouped: dict[str, int] = {}
            for name, n in sizes.items():
                table = next((t for t in ("reports", "check_hours", "check_states", "state_changes",
                                          "host_states", "incident_events", "incidents", "notifications")
                              if name == t or name.startswith((f"ix_{t}_", f"uq_{t}_",
                                                               f"sqlite_autoindex_{t}_"))), name)
                grouped[table] = grouped.get(table, 0) + n
            return grouped
        with db.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")).all()
        return {str(name): int(n) for name, n in rows}
    finally:
        db.dispose()


def count(url: str, sql: str) -> float:
    from sqlalchemy import text

    from controller.store.db import Database

    db = Database(url)
    try:
        with db.read_session() as session:
            return float(session.execute(text(sql)).scalar() or 0)
    finally:
        db.dispose()


def prune(url: str, seconds: float) -> dict[str, float]:
    """Fold the run's first minute: raw_reports 1h and a clock an hour after that minute."""
    from controller.retention import RetentionSettings, prune_batch
    from controller.store.db import Database

    first = count(url, "SELECT min(received_at) FROM reports")
    db = Database(url)
    cfg = RetentionSettings(raw_reports=3600, batch=1000)
    now = first + 60 + 3600
    started = time.monotonic()
    rows: dict[str, float] = {}
    writes: list[float] = []
    try:
        while time.monotonic() - started < seconds:
            batch = prune_batch(db, cfg, now)
            if batch is None:
                break
            rows[batch.kind] = rows.get(batch.kind, 0) + batch.rows
            writes.append(batch.write_seconds)
    finally:
        db.dispose()
    return {"seconds": time.monotonic() - started, "batches": len(writes),
            "write_p50": pct(writes, 0.5), "done": float(time.monotonic() - started < seconds),
            **{f"rows_{k}": v for k, v in rows.items()}}


# -- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bk-fleet-"))
    work.chmod(0o755)
    result: dict[str, Any] = {"db": args.db, "hosts": args.hosts, "minutes": args.minutes,
                              "uptime_before": uptime()}
    pg = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if args.db == "postgresql":
            from tests.controller.conftest import PostgresServer

            pg = PostgresServer(work / "pg", free_port("127.0.2.10"),
                                settings={"fsync": "on", "max_connections": "200"})
            (work / "pg").mkdir()
            pg.start()
            url = pg.new_database()
        else:
            url = f"sqlite:///{work}/fleet.db"
        config = work / "controller.yaml"
        config.write_text(json.dumps({"database": url, "state_dir": str(work / "state"),
                                      "operator_tokens_file": str(work / "operators.yaml"),
                                      "clients": [{"name": "bench"}]}))
        print("building the report (the example agent config, run once here)", flush=True)
        ok, bad = templates()
        result["body_bytes"] = len(ok)
        started = time.monotonic()
        secret = enrol(url, args.hosts, config)
        result["enrol_seconds"] = time.monotonic() - started
        print(f"enrolled {args.hosts} hosts in {result['enrol_seconds']:.1f} s", flush=True)
        token = operator_token(work / "operators.yaml")
        controllers = 2 if args.db == "postgresql" else 1
        workers = args.workers or (1 if args.db == "postgresql" else 2)
        result.update(controllers=controllers, workers=workers)
        ports = []
        for n in range(controllers):
            proc, port = start_serve(config, work, str(n), workers)
            procs.append(proc)
            ports.append(port)
        names = sorted(secret)
        spec = {"hosts": names, "tokens": [secret[h] for h in names], "ports": ports,
                "ok": ok.hex(), "bad": bad.hex(), "seconds": args.minutes * 60, "flip": args.flip,
                "silent": args.silent, "connections": args.connections, "drain": 60.0}
        (work / "spec.json").write_text(json.dumps(spec))
        gen_out = work / "generator.jsonl"
        gen = subprocess.Popen([sys.executable, __file__, "--generator-child", str(work / "spec.json"),
                                str(gen_out)], cwd=work)
        pids = {"generator": [gen.pid], "controllers": [p.pid for p in procs]}
        if pg is not None and pg.proc is not None:
            pids["postgresql"] = [pg.proc.pid]
        stop_event = threading.Event()
        probes = Probes(config, ports, token, pids, stop_event)
        threads = probes.start()
        print(f"pushing: {args.hosts} hosts every {INTERVAL:g} s for {args.minutes:g} min "
              f"({args.hosts / INTERVAL:.0f} reports/s)", flush=True)
        deadline = time.monotonic() + args.minutes * 60 + 200
        while gen.poll() is None and time.monotonic() < deadline:
            time.sleep(SAMPLE_EVERY)
            lines = gen_out.read_text().splitlines() if gen_out.exists() else []
            if lines:
                last = json.loads(lines[-1])
                p99 = last["window_p99"]
                print(f"  t={last['t']:.0f}s scheduled {last['scheduled']} answered {last['answered']} "
                      f"backlog {last['backlog']} lag p99 {p99 if p99 is None else round(p99, 3)} s "
                      f"errors {last['errors']} load {os.getloadavg()[0]:.1f}", flush=True)
        if gen.poll() is None:
            gen.kill()
        stop_event.set()
        for t in threads:
            t.join(130)
        rows = [json.loads(line) for line in gen_out.read_text().splitlines()]
        result["generator"] = rows
        result["status"] = probes.status
        result["status_cpu"] = probes.status_cpu
        result["incidents"] = probes.incidents
        result["cpu"] = probes.cpu
        for proc in procs:
            stop(proc)
        result["open_incidents"] = count(url, "SELECT count(*) FROM incidents WHERE status != 'resolved'")
        result["incidents_total"] = count(url, "SELECT count(*) FROM incidents")
        result["sweeps"] = sweeps(work)
        result["uptime_after"] = uptime()
        result["reports"] = count(url, "SELECT count(*) FROM reports")
        result["sizes"] = table_sizes(url)
        print("pruning the first minute", flush=True)
        result["prune"] = prune(url, args.prune_seconds)
        result["sizes_pruned"] = table_sizes(url)
        result["check_hours"] = count(url, "SELECT count(*) FROM check_hours")
        result["hosts_folded"] = count(url, "SELECT count(DISTINCT host_id) FROM check_hours")
    except BaseException:
        for log in sorted(work.glob("serve-*.log")):
            print(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in procs:
            stop(proc)
        if pg is not None:
            pg.stop()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


# -- the result ----------------------------------------------------------------------------------


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def analyse(r: dict[str, Any]) -> dict[str, Any]:
    final = next(row for row in r["generator"] if row.get("final"))
    seconds = r["minutes"] * 60
    lags = final["lags"]
    first = [lag for due, lag in lags if due < 60]
    last = [lag for due, lag in lags if due >= seconds - 60]
    backlog = [(row["t"], row["backlog"]) for row in r["generator"] if not row.get("final")]
    cpu = r["cpu"]
    a: dict[str, Any] = {"final": final, "offered": r["hosts"] / INTERVAL}
    span = cpu[-1]["t"] - cpu[0]["t"] if len(cpu) > 1 else 1.0
    for name in ("generator", "controllers", "postgresql", "machine"):
        if len(cpu) > 1 and name in cpu[0]:
            a[f"{name}_cores"] = (cpu[-1][name] - cpu[0][name]) / span
    answered_ok = sum(v for k, v in final["codes"].items() if 200 <= int(k) < 300)
    a["answered_ok"] = answered_ok
    a["achieved"] = answered_ok / seconds
    server = a.get("controllers_cores", 0.0) + a.get("postgresql_cores", 0.0)
    a["server_ms_per_report"] = 1000 * server * span / max(1, answered_ok * span / seconds)
    a["lag_first"] = (pct(first, 0.5), pct(first, 0.99), max(first, default=float("nan")))
    a["lag_last"] = (pct(last, 0.5), pct(last, 0.99), max(last, default=float("nan")))
    mid = [b for t, b in backlog if t <= seconds]
    a["backlog_first"] = max((b for t, b in backlog if t < 60), default=0)
    a["backlog_last"] = max((b for t, b in backlog if seconds - 60 <= t <= seconds), default=0)
    a["backlog_max"] = max(mid, default=0)
    a["keeps_up"] = a["lag_last"][1] <= max(2.0, 2 * a["lag_first"][1]) and final["unsent"] == 0 \
        and a["backlog_last"] <= max(50, 2 * a["backlog_first"])
    st = [s for _, s, code in r["status"] if code == 0]
    a["status"] = (len(r["status"]), len(st), pct(st, 0.5), pct(st, 0.99), max(st, default=float("nan")))
    a["status_cpu"] = (pct(r["status_cpu"], 0.5), max(r["status_cpu"], default=float("nan")))
    inc = [s for _, s, code in r["incidents"] if code == 200]
    a["incidents_api"] = (len(r["incidents"]), len(inc), pct(inc, 0.5), pct(inc, 0.99),
                          max(inc, default=float("nan")))
    sw = r["sweeps"]
    a["sweep"] = (sum(s["sweeps"] for s in sw), max((s["hosts"] for s in sw), default=0),
                  statistics.median([s["median"] for s in sw]) if sw else float("nan"),
                  max((s["max"] for s in sw), default=float("nan")))
    reports = max(1.0, r["reports"])
    raw = r["sizes"].get("reports", 0) / reports * (86400 / INTERVAL)
    folded_hosts = max(1.0, r["hosts_folded"])
    summaries = r["sizes_pruned"].get("check_hours", 0) / folded_hosts * 24
    a["raw_per_host_day"] = raw
    a["summaries_per_host_day"] = summaries
    a["at_defaults_per_host"] = 7 * raw + 400 * summaries
    doc_raw, doc_sum = DOCUMENTED[r["db"]]
    a["documented_per_host"] = 7 * doc_raw + 400 * doc_sum
    return a


def markdown(r: dict[str, Any], a: dict[str, Any], argv: list[str]) -> str:
    f = a["final"]
    gb = 1e9
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    st, inc, sw = a["status"], a["incidents_api"], a["sweep"]
    per_host = a["at_defaults_per_host"] * r["hosts"] / gb
    lines = [
        f"## {r['db']}: {r['hosts']:,} hosts, {r['minutes']:g} min ({when})",
        "",
        f"Command: `.venv/bin/python bench/fleet_bench.py {' '.join(argv)}`  ",
        f"Machine: {machine()}; generator, controllers and database share these cores.  ",
        f"`uptime` before: `{r['uptime_before']}`  ",
        f"`uptime` after: `{r['uptime_after']}`",
        "",
        f"Set-up: {r['controllers']} `serve` process(es) × `--workers {r['workers']}`; report body "
        f"{r['body_bytes']:,} bytes (example agent config); {f['flips']} hosts flip a check CRITICAL for "
        f"2 min, {f['silent']} stop pushing at a third of the run; enrolment of {r['hosts']:,} hosts "
        f"{r['enrol_seconds']:.1f} s.",
        "",
        "| figure | target | measured |",
        "|---|---|---|",
        f"| pushes offered / answered 2xx | {a['offered']:.0f}/s | {a['achieved']:.0f}/s "
        f"({a['answered_ok']:,} of "
        f"{f['scheduled']:,} scheduled; {f['errors']} errors, {f['unsent']} not sent by the end + 60 s) |",
        f"| lag schedule → answer, first minute p50 / p99 / max | — | {a['lag_first'][0]:.3f} / "
        f"{a['lag_first'][1]:.3f} / {a['lag_first'][2]:.3f} s |",
        f"| lag schedule → answer, last minute p50 / p99 / max | no growth | {a['lag_last'][0]:.3f} / "
        f"{a['lag_last'][1]:.3f} / {a['lag_last'][2]:.3f} s |",
        f"| backlog (due, not answered; 5 s samples) first minute / last minute / max | no growth | "
        f"{a['backlog_first']} / {a['backlog_last']} / {a['backlog_max']} |",
        f"| ingest keeps up | yes | **{'yes' if a['keeps_up'] else 'no'}** |",
        f"| detection full sweep, median of the minute medians / longest (leader's log, {sw[0]:.0f} "
        f"sweeps of {sw[1]:.0f} hosts) | ≤ 1 s | {sw[2]:.3f} / {sw[3]:.3f} s |",
        f"| `boxkeeper status --json` wall, p50 / p99 / max ({st[1]} of {st[0]} ok) | ≤ 1 s p99 | "
        f"{st[2]:.2f} / {st[3]:.2f} / {st[4]:.2f} s |",
        f"| `boxkeeper status --json`: CPU of the process, median / max (what the wall time would be on an "
        f"idle core) | — | {a['status_cpu'][0]:.2f} / {a['status_cpu'][1]:.2f} s |",
        f"| `GET /api/v1/incidents` p50 / p99 / max ({inc[1]} of {inc[0]} ok) | "
        f"≤ 1 s p99 | {inc[2] * 1000:.0f} / {inc[3] * 1000:.0f} / {inc[4] * 1000:.0f} ms |",
        f"| CPU: generator / controllers / PostgreSQL / whole machine (cores) | 2 cores in all | "
        f"{a.get('generator_cores', 0):.2f} / {a.get('controllers_cores', 0):.2f} / "
        f"{a.get('postgresql_cores', 0):.2f} / {a.get('machine_cores', 0):.2f} |",
        f"| server CPU (controllers + database) per stored report | — | {a['server_ms_per_report']:.2f} ms |",
        f"| incidents at the end: open / all | — | {r['open_incidents']:.0f} / {r['incidents_total']:.0f} |",
        f"| raw reports per host per day (measured: `reports` bytes / {r['reports']:,.0f} reports × 5,760) | "
        f"docs: {DOCUMENTED[r['db']][0] / 1e6:.1f} MB | {a['raw_per_host_day'] / 1e6:.1f} MB |",
        f"| summaries per host per day (pruning folded the first minute of {r['hosts_folded']:.0f} hosts "
        "into "
        f"{r['check_hours']:.0f} hourly rows, {r['prune']['seconds']:.0f} s) | docs: "
        f"{DOCUMENTED[r['db']][1] / 1e3:.1f} kB | {a['summaries_per_host_day'] / 1e3:.1f} kB |",
        f"| database at the defaults (7 d raw + 400 d summaries), {r['hosts']:,} hosts | docs' formula: "
        f"{a['documented_per_host'] * r['hosts'] / gb:,.0f} GB | {per_host:,.0f} GB |",
        "",
        "Tables after the run (bytes, with indexes"
        + ("; PostgreSQL: without VACUUM FULL" if r["db"] == "postgresql" else "") + "): "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(r["sizes"].items(), key=lambda kv: -kv[1])
                    if v > 1e6) + ".",
        "",
        "Backlog over the run (t s: pushes due and not answered): "
        + ", ".join(f"{row['t']:.0f}: {row['backlog']}" for row in r["generator"]
                    if not row.get("final") and int(row["t"]) % 30 < 5) + ".",
        "",
        "Detection sweeps per minute (median / max s): "
        + ", ".join(f"{s['median']:.3f}/{s['max']:.3f}" for s in r["sweeps"]) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw and raw[0] == "--generator-child":
        return generator_main(raw[1], raw[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="sqlite")
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0, help="1/4 to 30")
    parser.add_argument("--workers", type=int, default=0,
                        help="per serve (default: 1 on PostgreSQL with its two serve, 2 on SQLite)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per controller")
    parser.add_argument("--flip", type=float, default=0.03)
    parser.add_argument("--silent", type=float, default=0.01)
    parser.add_argument("--prune-seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None, help="append the Markdown section to this file")
    parser.add_argument("--json", type=Path, default=None, help="write the raw result here")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(raw)
    if not 0.25 <= args.minutes <= 30 or not 1 <= args.hosts <= 50_000:
        parser.error("--minutes 0.25–30, --hosts 1–50000")
    result = run(args)
    analysis = analyse(result)
    text = markdown(result, analysis, raw)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"result": {k: v for k, v in result.items() if k != "generator"},
                                         "analysis": {k: v for k, v in analysis.items() if k != "final"}},
                                        indent=1, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
