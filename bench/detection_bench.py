"""Detection latency: portal stop → "portal down" notification, agent kill -9 → "agent down" notification.

    .venv/bin/python bench/detection_bench.py [--rounds 3] [--out bench/results/detection.md]

Runs real processes on 127.0.3.x: the controller (``boxkeeper serve``, SQLite, default detection
settings), a real agent (``boxkeeper-agent run``) checking a local HTTP "portal" with the portal
check of config/agent.example.yaml (interval 15 s, retries 3, retry_interval 5 s) and pushing every
15 s (the default), a TCP listener standing in for the box's sshd (so a dead agent is "agent down",
not "host unreachable"), and a webhook receiver as the notification sink (arrival times are taken
there). Each round waits for the incident to resolve before the next one. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.server
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONTROLLER_ADDR, SINK_ADDR, PORTAL_ADDR, SSH_ADDR, AGENT_ADDR = (
    "127.0.3.100",
    "127.0.3.101",
    "127.0.3.102",
    "127.0.3.103",
    "127.0.3.104",
)
HOST = "bench-01"
WAIT = 180.0  # the longest any single wait may take (s)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class Sink(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__((SINK_ADDR, 0), SinkHandler)

    def find(self, event: str, cause: str, seen: set[int]) -> tuple[float, dict[str, Any]] | None:
        with self.lock:
            for at, body in self.received:
                incident = body["incident"]
                if body["event"] == event and incident["cause"] == cause and incident["id"] not in seen:
                    return at, incident
        return None

    def resolved(self, incident_id: int) -> bool:
        with self.lock:
            return any(
                b["event"] == "resolved" and b["incident"]["id"] == incident_id for _, b in self.received
            )

    def firings(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        with self.lock:
            for _, body in self.received:
                if body["event"] == "firing":
                    counts[body["incident"]["id"]] = counts.get(body["incident"]["id"], 0) + 1
        return counts


class SinkHandler(http.server.BaseHTTPRequestHandler):
    server: Sink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        at = time.time()
        with self.server.lock:
            self.server.received.append((at, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class PortalHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like nginx (see the note in bench/results/detection.md)

    def do_GET(self) -> None:
        body = b"<html><body>Bitrix24 portal</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class Served:
    """An HTTP server in a thread that can be stopped and started again on the same port."""

    def __init__(self, server: http.server.HTTPServer) -> None:
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class SshStandIn:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((SSH_ADDR, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{SSH_ADDR}:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except OSError:
                continue

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def write_configs(work: Path, portal_url: str, ssh: str, sink_url: str) -> tuple[Path, Path]:
    controller = work / "controller.yaml"
    controller.write_text(f"""listen: {CONTROLLER_ADDR}:0
state_dir: {work}/state
clients:
  - name: bench
    timezone: UTC
    hosts:
      - {{name: {HOST}, portal_url: "{portal_url}", ssh: {{address: "{ssh}"}}}}
notify:
  - {{type: webhook, name: sink, url: "{sink_url}", min_severity: warning}}
""")
    agent = work / "agent.yaml"
    agent.write_text(f"""host: {HOST}
listen: {AGENT_ADDR}:{free_port(AGENT_ADDR)}
controller:
  url: "{{url}}"
  token_file: {work}/agent.token
spool:
  dir: {work}/spool
checks:
  - name: portal
    type: http
    url: "{portal_url}"
    expect_status: [200, 302]
    body_regex: "Bitrix"
    timeout: 10s
    retries: 3
    retry_interval: 5s
""")
    return controller, agent


class Bench:
    def __init__(self, work: Path, rounds: int) -> None:
        self.work = work
        self.rounds = rounds
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sink = Sink()
        self.sink_served = Served(self.sink)
        self.portal_port = free_port(PORTAL_ADDR)
        self.portal: Served | None = None
        self.ssh = SshStandIn()
        self.agent: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()

    def start_portal(self) -> None:
        server = http.server.ThreadingHTTPServer((PORTAL_ADDR, self.portal_port), PortalHandler)
        server.daemon_threads = True
        self.portal = Served(server)

    def stop_portal(self) -> None:
        if self.portal is not None:
            self.portal.stop()
            self.portal = None

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (self.work / log).open("ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.work)
        self.procs.append(proc)
        return proc

    def setup(self) -> None:
        self.start_portal()
        sink_host, sink_port = self.sink.server_address[:2]
        controller_cfg, agent_tmpl = write_configs(
            self.work,
            f"http://{PORTAL_ADDR}:{self.portal_port}/",
            self.ssh.address,
            f"http://{sink_host}:{sink_port}/hook",
        )
        self.controller_cfg = controller_cfg
        added = subprocess.run(
            [
                str(BIN / "boxkeeper"),
                "hosts",
                "add",
                HOST,
                "--client",
                "bench",
                "--json",
                "--config",
                str(controller_cfg),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        token = json.loads(added.stdout)["token"]
        token_file = self.work / "agent.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        ready = self.work / "ready"
        self.spawn(
            [
                str(BIN / "boxkeeper"),
                "serve",
                "--config",
                str(controller_cfg),
                "--ready-file",
                str(ready),
                "--log-level",
                "warning",
            ],
            "controller.log",
        )
        address = wait_for(
            "the controller to listen", lambda: ready.exists() and ready.read_text().strip(), 60
        )
        agent_cfg = self.work / "agent-run.yaml"
        agent_cfg.write_text(agent_tmpl.read_text().replace("{url}", f"http://{address}"))
        self.agent_cfg = agent_cfg
        self.start_agent()
        wait_for("the first report (host state ok)", lambda: self.state() == "ok", 40)

    def start_agent(self) -> None:
        self.agent = self.spawn(
            [str(BIN / "boxkeeper-agent"), "run", "--config", str(self.agent_cfg)], "agent.log"
        )

    def state(self) -> str | None:
        out = subprocess.run(
            [str(BIN / "boxkeeper"), "status", "--json", "--config", str(self.controller_cfg)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            return next((h["state"] for h in json.loads(out.stdout) if h["host"] == HOST), None)
        except (json.JSONDecodeError, StopIteration):
            return None

    def measure(self, cause: str, trigger: Callable[[], None], recover: Callable[[], None]) -> float:
        started = time.time()
        trigger()
        at, incident = wait_for(
            f"a firing '{cause}' notification", lambda: self.sink.find("firing", cause, self.seen)
        )
        self.seen.add(incident["id"])
        recover()
        wait_for(f"incident #{incident['id']} to resolve", lambda: self.sink.resolved(incident["id"]))
        wait_for("the host to be ok again", lambda: self.state() == "ok", 90)
        return float(at - started)

    def portal_round(self) -> float:
        return self.measure("check", self.stop_portal, self.start_portal)

    def agent_round(self) -> float:
        def kill() -> None:
            assert self.agent is not None
            os.kill(self.agent.pid, signal.SIGKILL)
            self.agent.wait(10)

        return self.measure("agent_down", kill, self.start_agent)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.stop_portal()
        self.ssh.stop()
        self.sink_served.stop()


def summary(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.platform()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measurement (1-10)")
    parser.add_argument("--out", default=None,
                        help="also write the results to this file (bench/results/ is hand-kept history)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) for debugging")
    args = parser.parse_args(argv)
    rounds = max(1, min(10, args.rounds))
    work = Path(tempfile.mkdtemp(prefix="bk-detect-bench-"))
    bench = Bench(work, rounds)
    portal: list[float] = []
    agent: list[float] = []
    try:
        bench.setup()
        for i in range(rounds):
            portal.append(bench.portal_round())
            print(
                f"round {i + 1}: portal stopped → 'portal down' notification in {portal[-1]:.1f} s",
                flush=True,
            )
            agent.append(bench.agent_round())
            print(f"round {i + 1}: agent killed → 'agent down' notification in {agent[-1]:.1f} s", flush=True)
        pages = bench.sink.firings()
    except BaseException:
        for log in ("controller.log", "agent.log"):
            path = work / log
            if path.exists():
                print(f"--- {log} (tail)\n{path.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        bench.close()
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    duplicates = sum(n - 1 for n in pages.values())
    text = f"""# Detection latency

Command: `.venv/bin/python bench/detection_bench.py --rounds {rounds}`
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}

Setup: real `boxkeeper serve` (SQLite, default `detection:` settings: evaluate every 2 s, silent after
3 × push interval = 45 s, probes with 5 s timeout), real `boxkeeper-agent run` (push every 15 s, at once on
a hard state change) with the portal check of `config/agent.example.yaml` (interval 15 s, retries 3,
retry_interval 5 s), a TCP listener as the box's sshd, a webhook receiver as the sink (arrival time taken
there). Each round waits for the incident to resolve before the next.

| measurement | target | min / median / max (s) | rounds |
|---|---|---|---|
| portal stopped → "portal down" notification | ≤ 30 s | {summary(portal)} | {rounds} |
| agent `kill -9` → "agent down" notification | ≤ 60 s | {summary(agent)} | {rounds} |

Pages per outage: {len(pages)} incidents, {duplicates} duplicate firing notifications.

Where the time goes: portal — up to one check interval until the next check (0–15 s) + 2 retries
5 s apart (10 s) + push on the hard change + evaluation on ingest (`notify_report`) + dispatch
(≤ 1 s); agent — `silence_after` (45 s after the last report, i.e. 30–45 s after the kill) + one
evaluation pass (≤ 2 s) + the probes (TCP to the SSH stand-in answers at once) + dispatch.

Raw (s): portal {[round(v, 1) for v in portal]}, agent {[round(v, 1) for v in agent]}

Peer (not measured here, computed from the peer's documented defaults): Prometheus scraping the agent's
`/metrics` with an `up == 0` alert — `scrape_interval` 1 m and `evaluation_interval` 1 m by default,
Alertmanager `group_wait` 30 s — notifies a dead target after roughly 30 s to 2.5 min, and needs the
box to be scrapeable (no NAT) to say anything at all; boxkeeper's push-based liveness needs neither.
"""
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
