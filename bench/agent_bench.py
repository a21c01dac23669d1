"""Agent benchmark: boxkeeper-agent beside prometheus-node-exporter, plus outage detection time.

Command (from the repository root; about 8 minutes on 2 cores)::

    .venv/bin/python bench/agent_bench.py --cycles 100 --outages 3

Part 1 — footprint. Starts, on this machine and in the same run:

- the real agent (``.venv/bin/boxkeeper-agent run``) with the checks of config/agent.example.yaml,
  pointed at things that exist here: the two http checks at a local HTTP server that answers like
  a Bitrix portal, the seven process checks at ``sleep`` processes started under the service names
  (nginx, httpd, mysqld, push-server, redis-server, memcached, crond), the tcp check at a local
  listening port, the three disk checks, backup freshness on a 1 MiB file, and check_load/check_swap
  from monitoring-plugins (Debian path). **Every check runs every 1 s** (the example says 15 s) and
  a report is pushed to a local sink **every 1 s** (the example says 15 s), so one agent cycle =
  all 16 checks + one report built, spooled (fsync) and pushed + one /metrics scrape;
- ``prometheus-node-exporter`` with its default collectors on 127.0.0.1 and a free port.

Both /metrics endpoints are scraped every second for ``--cycles`` cycles.

``--interval 15`` runs the example config as it is instead (its own 15 s intervals and push
interval; one push and one scrape per 15 s cycle), a single footprint run (``--cycles 20``:
5 minutes; plus 5 for the run without checks). Reported for each process:
RSS and PSS (psutil ``memory_full_info``) at the end, and CPU seconds per cycle/scrape = the
process's time on the CPU over the cycles / cycles, read two ways: exactly, as the sum over its
threads of ``/proc/PID/task/TID/schedstat`` (nanoseconds; the figure to compare), and as psutil's
user+system time, which the kernel reports in clock ticks of 10 ms (at 20 cycles of ~10 ms that
is ±0.5 ms per cycle, too coarse for a ratio near 1). The agent's children (the check_load and
check_swap plugin processes it runs) are reported separately.

``--bitrix-box`` adds the ``bitrix:`` profile (issue #14) for one test box (tests/boxes: real
MariaDB, the portal's docroot, its PHP error log and backup dir; started and taken down by the
bench, about 5 s): all nine signals (mysql, licence, agents, mail_queue, backup, updates,
site_checker, php_fatals, push_server — the last at the ``push-server`` stand-in process and the
stand-in port) at **their own default intervals** (1 min; backup 10 min; licence and
site_checker 1 h) with ``--interval 15``, or every second with ``--interval 1``. Their kept log
offsets go to the run's ``state_dir``.

``--onec-box`` starts a ``--with-1c`` test box instead (real PostgreSQL, the rac TEST DOUBLE) and
adds, beside the bitrix: profile of its portal, the five 1C checks ``discover --rac`` writes for it
(issue #16: onec_cluster and onec_publication at the config's interval, onec_workers,
onec_infobase — with the infobase's credentials — and onec_dbms at 1 min; a ``ragent`` stand-in
process for the publication's version check). rac there is the Python double: the agent's children
CPU says nothing about the vendor's rac.

Part 1b — an added comparison, not the issue's target (skip with ``--no-metrics-only``): the same
agent with **no checks** beside node_exporter, both scraped every second, so that the agent's
metrics path (host collectors, /metrics) is compared with node_exporter's scrape like for like.

Part 2 — outage detection. A fresh agent with the example config's portal check settings
(interval 15 s, timeout 10 s, retries 3, retry_interval 5 s) and push_interval 15 s watches the local
HTTP server; the bench stops the server and measures the time until a report with the portal check
hard CRITICAL arrives at the sink, then starts the server again and waits for hard OK.
``--outages`` times (bounded); min/median/max are reported.

Results are printed; ``--output FILE`` writes them to a file too. bench/results/agent.md is the
hand-kept history of every session's runs: copy a run's tables there, do not write over it.
Nothing is asserted here: these are figures.
"""

from __future__ import annotations

import argparse
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
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.agent.agentproc import AgentProcess, free_port, wait_for  # noqa: E402
from tests.agent.pushsink import PushSink  # noqa: E402

HOST = "127.0.1.150"  # the bench's own servers (portal, sink, agent)
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
PLUGINS = Path("/usr/lib/nagios/plugins")
TOKEN = "bench-token-not-secret"  # noqa: S105 - a local sink's fixed token
SERVICES = {  # check name -> process name (comm) of the stand-in process
    "nginx": "nginx", "httpd": "httpd", "mysqld": "mysqld", "push-server": "push-server",
    "redis": "redis-server", "memcached": "memcached", "crond": "crond",
}
PORTAL_PAGE = b"<html><head><title>Bitrix24</title></head><body>Bitrix24 portal</body></html>"


# -- local things for the checks to look at ------------------------------------------------------


class Portal:
    """A tiny HTTP server answering like a Bitrix portal; can be stopped and started on one port."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = free_port(host)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like nginx in front of a portal

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PORTAL_PAGE)))
                self.end_headers()
                self.wfile.write(PORTAL_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


@contextmanager
def stand_in_processes(workdir: Path) -> Iterator[None]:
    """``sleep`` started through symlinks named like the services, so /proc/PID/comm matches."""
    bindir = workdir / "bin"
    bindir.mkdir()
    procs = []
    try:
        for comm in SERVICES.values():
            (bindir / comm).symlink_to(shutil.which("sleep") or "/bin/sleep")
            procs.append(subprocess.Popen([str(bindir / comm), "100000"], start_new_session=True))
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def closing_listener(host: str) -> socket.socket:
    """A listening socket on a free port that accepts and closes every connection (a stand-in
    for a service port that a tcp check probes); close it to stop."""
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(64)

    def accept_forever() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # listener closed at the end
            conn.close()

    threading.Thread(target=accept_forever, daemon=True).start()
    return listener


def bench_checks(
    portal: Any, tcp_port: int, backup_glob: str, every: str | None = "1s",
) -> list[dict[str, Any]]:
    """The example config's checks, retargeted at local things, every check at ``every`` (None: the
    example's own intervals) (``portal``: anything with ``url(path)``)."""
    example = yaml.safe_load((REPO / "config" / "agent.example.yaml").read_text())
    checks: list[dict[str, Any]] = []
    for check in example["checks"]:
        check = dict(check)
        name = check["name"]
        if name == "portal":
            check["url"] = portal.url("/")
        elif name == "portal-backend":
            check["url"] = portal.url("/backend/")
        elif name == "mysql-port":
            check["address"] = f"{HOST}:{tcp_port}"
        elif name == "backup-fresh":
            check["glob"] = backup_glob
        elif check["type"] == "command":
            check["command"] = [str(PLUGINS / Path(check["command"][0]).name), *check["command"][1:]]
            if name == "swap":  # this machine has no swap: say OK instead of CRITICAL for that
                check["command"] = [*check["command"], "-n", "ok"]
        elif name == "push-server":
            check["cmdline_regex"] = "push-server"
        if every is not None:
            check["interval"] = every
            check["retry_interval"] = every
        checks.append(check)
    return checks


# -- measurement ---------------------------------------------------------------------------------


def scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local bench servers
        return len(response.read())


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


def task_cpu_ns(pid: int) -> dict[int, int]:
    """Nanoseconds on the CPU of each thread of ``pid`` (``/proc/PID/task/TID/schedstat``, first
    field): exact, where ``cpu_times()`` counts in clock ticks of 10 ms (±0.5 ms per cycle over 20
    cycles of ~10 ms)."""
    out: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended just now
    return out


def task_cpu_delta(before: dict[int, int], after: dict[int, int]) -> tuple[float, int]:
    """(seconds on the CPU between the two readings, threads that ended in between: their time
    since ``before`` is missing, so the figure is then a lower bound)."""
    total = sum(ns - before.get(tid, 0) for tid, ns in after.items())
    return total / 1e9, len(set(before) - set(after))


def bitrix_profile(box: Any, push_address: str, every: str | None) -> list[dict[str, Any]]:
    """The bitrix: block for a test box's site (paths of the box; the push server's stand-ins)."""
    item: dict[str, Any] = {"docroot": box.info.docroot, "signals": {
        "php_fatals": {"log": str(box.layout.logs / "php-errors.log")},
        "backup": {"archive_dir": str(box.layout.backup_dir)},
        "push_server": {"address": push_address, "process_regex": "push-server"},
    }}
    if every is not None:
        item["interval"] = every
    return [item]


def onec_checks(box: Any, workdir: Path, every: str | None) -> list[dict[str, Any]]:
    """The 1C checks discover --rac writes for a --with-1c test box, with the credentials filled in."""
    from tests.boxes.doubles import PLATFORM
    from tests.boxes.postgres import PG_BIN

    platform = box.layout.root / "opt/1cv8/x86_64" / PLATFORM
    pg = box.info.pg
    pwd, pgpass, conf = workdir / "buh.pwd", workdir / "pgpass", workdir / "apache2.conf"
    pwd.write_text("secret\n")
    pgpass.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
    for secret in (pwd, pgpass):
        secret.chmod(0o600)
    conf.write_text(f'LoadModule _1cws_module "{platform}/wsap24.so"\n')
    rac = str(platform / "rac")
    minute = every or "1m"
    checks: list[dict[str, Any]] = [
        {"name": "1c-cluster", "type": "onec_cluster", "rac": rac},
        {"name": "1c-workers", "type": "onec_workers", "rac": rac, "interval": minute},
        {"name": "1c-infobase-buh", "type": "onec_infobase", "rac": rac, "infobase": "buh",
         "interval": minute, "infobase_user": "Администратор", "infobase_password_file": str(pwd),
         "password_in_argv": True},
        {"name": "1c-dbms", "type": "onec_dbms", "host": pg.host, "port": pg.port, "user": pg.user,
         "database": "buh", "passfile": str(pgpass), "bindir": str(PG_BIN), "interval": minute},
        {"name": "1c-publication", "type": "onec_publication", "url": box.info.portal_url,
         "apache_conf": str(conf)},
    ]
    if every is not None:
        for check in checks:
            check["interval"] = every
    return checks


def footprint(
    cycles: int, basedir: Path, push_interval: float, *, with_checks: bool = True, period: float = 1.0,
    box: Any = None,
) -> dict[str, Any]:
    """``cycles`` cycles of ``period`` seconds: the agent's checks run every ``period`` (at 15 s:
    the example config's own intervals), both /metrics are scraped once per cycle."""
    workdir = basedir / f"footprint-push-{push_interval:g}s{'' if with_checks else '-no-checks'}"
    workdir.mkdir()
    portal = Portal(HOST)
    portal.start()
    sink = PushSink(HOST, token=TOKEN, keep_alive=True).start()  # as the controller: kept alive
    listener = closing_listener(HOST)  # stands in for MySQL's port
    backup = workdir / "backup" / "bench.tar.gz"
    backup.parent.mkdir()
    backup.write_bytes(os.urandom(1024 * 1024 + 1))
    token = workdir / "agent.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    every = "1s" if period == 1.0 else (None if period == 15.0 else f"{period:g}s")
    checks = bench_checks(portal, listener.getsockname()[1], str(backup.parent / "*.tar.gz"), every)
    if not with_checks:
        checks = []
    config: dict[str, Any] = {
        "host": "bench-box", "interval": f"{period:g}s", "listen": f"127.0.0.1:{free_port('127.0.0.1')}",
        "controller": {"url": sink.url, "token_file": str(token), "push_interval": f"{push_interval:g}s"},
        "spool": {"dir": str(workdir / f"spool-{push_interval:g}"), "max_bytes": "64MiB"},
        "state_dir": str(workdir / "state"),
        "checks": checks,
    }
    onec = box is not None and with_checks and box.info.pg is not None
    ragent = None
    if box is not None and with_checks:
        config["bitrix"] = bitrix_profile(box, f"{HOST}:{listener.getsockname()[1]}", every)
        (box.layout.backup_dir / "www_backup_bench.tar.gz").write_bytes(os.urandom(256 * 1024))
    if onec:
        config["checks"] = checks + onec_checks(box, workdir, every)
        ragent_path = workdir / "opt/1cv8/x86_64/8.3.27.1000/ragent"  # named ragent, in a version dir
        ragent_path.parent.mkdir(parents=True)
        ragent_path.symlink_to(shutil.which("sleep") or "/bin/sleep")
        ragent = subprocess.Popen([str(ragent_path), "100000"], start_new_session=True)
    agent = AgentProcess(workdir, config, f"bench-agent-{push_interval:g}-{len(checks)}")
    checks_count = len(config["checks"]) + (9 if "bitrix" in config else 0)
    ne_port = free_port("127.0.0.1")
    ne_log = open(workdir / "node_exporter.log", "wb")  # noqa: SIM115
    node_exporter = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}"],
        stdout=ne_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    ne_url = f"http://127.0.0.1:{ne_port}/metrics"
    try:
        with stand_in_processes(workdir):
            agent.start()
            agent.wait_ready()
            wait_for("node_exporter /metrics", lambda: _try_scrape(ne_url), 60)
            try:
                wait_for("a report at the sink", lambda: len(sink.seqs()) >= 1, 60)
            except AssertionError:  # say why: the agent's log is in a directory about to go
                print(agent.log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
                raise
            time.sleep(3)  # warm-up: every check has run a few times
            assert agent.proc is not None
            agent_ps, ne_ps = psutil.Process(agent.proc.pid), psutil.Process(node_exporter.pid)
            a0, ac0 = cpu_seconds(agent_ps)
            n0, _ = cpu_seconds(ne_ps)
            at0, nt0 = task_cpu_ns(agent_ps.pid), task_cpu_ns(ne_ps.pid)
            seq0 = len(sink.seqs())
            load_start = os.getloadavg()[0]
            agent_bytes = ne_bytes = 0
            start = time.monotonic()
            for cycle in range(cycles):
                agent_bytes = scrape(agent.metrics_url)
                ne_bytes = scrape(ne_url)
                time.sleep(max(0.0, start + (cycle + 1) * period - time.monotonic()))
            a1, ac1 = cpu_seconds(agent_ps)
            n1, _ = cpu_seconds(ne_ps)
            agent_exact, agent_gone = task_cpu_delta(at0, task_cpu_ns(agent_ps.pid))
            ne_exact, ne_gone = task_cpu_delta(nt0, task_cpu_ns(ne_ps.pid))
            elapsed = time.monotonic() - start
            reports = len(sink.seqs()) - seq0
            agent_mem, ne_mem = agent_ps.memory_full_info(), ne_ps.memory_full_info()
            agent_threads = agent_ps.num_threads()
            metrics_text = agent.scrape() or ""
            statuses = {
                line.split('"')[1]: line.rsplit(" ", 1)[1]
                for line in metrics_text.splitlines() if line.startswith("boxkeeper_check_status{")
            }
            agent.terminate()
    finally:
        agent.stop()
        if ragent is not None:
            ragent.kill()
            ragent.wait(10)
        node_exporter.send_signal(signal.SIGTERM)
        node_exporter.wait(10)
        ne_log.close()
        sink.stop()
        portal.stop()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    return {
        "cycles": cycles, "elapsed": elapsed, "push_interval": push_interval, "reports": reports,
        "with_checks": with_checks, "period": period, "bitrix": "bitrix" in config, "onec": onec,
        "loadavg": os.getloadavg()[0], "loadavg_start": load_start, "agent_threads": agent_threads,
        "checks": checks_count,
        "statuses": statuses,
        "agent": {"rss": agent_mem.rss, "pss": agent_mem.pss, "cpu": (a1 - a0) / cycles,
                  "cpu_exact": agent_exact / cycles, "threads_gone": agent_gone,
                  "children_cpu": (ac1 - ac0) / cycles, "scrape_bytes": agent_bytes},
        "node_exporter": {"rss": ne_mem.rss, "pss": ne_mem.pss, "cpu": (n1 - n0) / cycles,
                          "cpu_exact": ne_exact / cycles, "threads_gone": ne_gone,
                          "scrape_bytes": ne_bytes},
    }


def _try_scrape(url: str) -> bool:
    try:
        return scrape(url) > 0
    except OSError:
        return False


def outage_detection(repeats: int, workdir: Path, max_seconds: float = 120.0) -> list[float]:
    portal = Portal(HOST)
    portal.start()
    sink = PushSink(HOST, token=TOKEN).start()
    token = workdir / "outage.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    example = yaml.safe_load((REPO / "config" / "agent.example.yaml").read_text())
    check = next(dict(c) for c in example["checks"] if c["name"] == "portal")
    check["url"] = portal.url("/")
    config = {
        "host": "bench-box", "interval": example["interval"], "listen": f"{HOST}:{free_port(HOST)}",
        "controller": {"url": sink.url, "token_file": str(token), "push_interval": "15s"},
        "spool": {"dir": str(workdir / "outage-spool"), "max_bytes": "64MiB"},
        "checks": [check],
    }
    arrivals: list[tuple[float, dict[str, Any]]] = []
    sink.on_report = lambda report: arrivals.append((time.monotonic(), report))
    agent = AgentProcess(workdir, config, "outage-agent")
    results: list[float] = []

    def portal_state(report: dict[str, Any]) -> tuple[int, bool] | None:
        for c in report["checks"]:
            if c["name"] == "portal":
                return int(c["status"]), bool(c["hard"])
        return None

    try:
        agent.start()
        agent.wait_ready()
        for attempt in range(repeats):
            wait_for("portal hard OK at the sink",
                     lambda: arrivals and portal_state(arrivals[-1][1]) == (0, True), max_seconds)
            time.sleep(1.0 + 4.0 * attempt)  # stop at a different phase of the check interval each time
            seen = len(arrivals)
            stopped = time.monotonic()
            portal.stop()

            def critical(seen: int = seen) -> float | None:
                for t, report in arrivals[seen:]:
                    if portal_state(report) == (2, True):
                        return t
                return None

            arrived = wait_for("a hard CRITICAL report", critical, max_seconds, step=0.05)
            results.append(arrived - stopped)
            print(f"  outage {attempt + 1}: hard CRITICAL at the sink after {arrived - stopped:.1f} s",
                  flush=True)
            portal.start()
        agent.terminate()
    finally:
        agent.stop()
        sink.stop()
        portal.stop()
    return results


# -- report --------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def write_results(fps: list[dict[str, Any]], outages: list[float], command: str, path: Path | None) -> str:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.machine())
    period = fps[0]["period"]
    if period == 1.0:
        how = ("**every check every 1 s** (the example: 15 s); node_exporter with its default collectors. "
               "Both /metrics endpoints scraped once per second. Two runs: reports pushed at the example's "
               "push_interval (15 s), and every 1 s (worst case).")
    else:
        how = (f"the example config's own intervals, **one cycle = {period:g} s** (checks, push and scrape "
               "once per cycle, as the example runs); node_exporter with its default collectors. Both "
               f"/metrics endpoints scraped once every {period:g} s.")
    base_checks = fps[0]['checks'] - (9 if fps[0].get('bitrix') else 0) - (5 if fps[0].get('onec') else 0)
    lines = [
        "# Agent benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu_model}), {mib(psutil.virtual_memory().total)} RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"node_exporter {_node_exporter_version()}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## Footprint, side by side in the same run",
        "",
        f"Agent: the {base_checks} checks of config/agent.example.yaml pointed at local stand-ins "
        f"(see bench/agent_bench.py), {how}",
        "",
        "One agent cycle = 16 checks on the scheduler's reused worker threads (7 process checks "
        "sharing one /proc scan, 2 HTTP requests, a TCP connect, 3 statvfs, a glob, 2 plugin "
        "processes) + one /metrics scrape (+ one report built, fsync'd to the spool and POSTed, in "
        "a cycle with a push). One node_exporter scrape = its collectors once.",
        "",
    ]
    if any(fp.get("bitrix") for fp in fps):
        lines += [
            "With `--bitrix-box`, 9 more checks from the `bitrix:` profile of one test box (real MariaDB; "
            "a connection + query per DB signal run, PyMySQL in the agent's process; the updater log and "
            "PHP error log read from their kept offsets; the backup dirs listed; the push-server stand-in "
            "matched in the shared process scan and its port connected), each at its own default interval "
            "(1 min; backup 10 min; licence and site_checker 1 h) in 15 s cycles.",
            "",
        ]
    if any(fp.get("onec") for fp in fps):
        lines += [
            "With `--onec-box`, 5 more checks of the test box's 1C server as `discover --rac` writes them "
            "(onec_cluster, onec_publication at the config's interval; onec_workers, onec_infobase, "
            "onec_dbms at 1 min): rac (the Python TEST DOUBLE here) and psql/pg_isready spawned, in the "
            "agent's children CPU.",
            "",
        ]
    for fp in fps:
        a, n = fp["agent"], fp["node_exporter"]
        if not fp["with_checks"]:
            lines += [
                "## Added comparison (not the issue's target): the metrics path alone",
                "",
                "The issue's comparison above puts 16 service checks plus a scrape against a scrape. To "
                "compare like with like as well, the same agent binary with **no checks** (host "
                "collectors, /metrics, a report every 15 s), scraped beside node_exporter in the same "
                "way: CPU per scrape of the agent's metrics path against node_exporter's.",
                "",
            ]
        title = "no checks" if not fp["with_checks"] else f"{fp['checks']} checks, cycle {fp['period']:g} s"
        if fp.get("bitrix"):
            title += " (with the bitrix: profile of one test box: 9 signals)"
        if fp.get("onec"):
            title += " and its 1C server's 5 checks"
        lines += [
            f"### {title}, push_interval {fp['push_interval']:g} s: {fp['cycles']} cycles in "
            f"{fp['elapsed']:.0f} s, "
            f"{fp['reports']} reports delivered, machine load average (1 min) {fp['loadavg_start']:.2f} at "
            f"the start and {fp['loadavg']:.2f} at the end (other work was running on the machine too)",
            "",
            "| | boxkeeper-agent | prometheus-node-exporter | target |",
            "|---|---:|---:|---|",
            f"| RSS | {mib(a['rss'])} | {mib(n['rss'])} | agent ≤ 40 MB |",
            f"| PSS | {mib(a['pss'])} | {mib(n['pss'])} | |",
            f"| CPU per cycle / scrape (own process, schedstat) | {a['cpu_exact'] * 1000:.2f} ms"
            f"{_gone(a)} | {n['cpu_exact'] * 1000:.2f} ms{_gone(n)} | agent ≤ node_exporter |",
            f"| ratio agent / node_exporter | ×{a['cpu_exact'] / n['cpu_exact']:.2f} | | ≤ ×1.00 |",
            f"| CPU per cycle / scrape (own process, clock ticks of 10 ms) | {a['cpu'] * 1000:.1f} ms | "
            f"{n['cpu'] * 1000:.1f} ms | |",
            "| CPU per cycle of child processes (check_load, check_swap) | "
            f"{a['children_cpu'] * 1000:.1f} ms | – | |",
            f"| /metrics size | {a['scrape_bytes'] / 1024:.1f} KiB | {n['scrape_bytes'] / 1024:.1f} KiB | |",
            f"| threads at the end | {fp['agent_threads']} | – | |",
            "",
        ]
        if fp["statuses"]:
            lines += [
                "Check states at the end (0 = OK): "
                + ", ".join(f"{k}={v}" for k, v in sorted(fp["statuses"].items())) + ".",
                "",
            ]
    lines += [
        "## Outage detection",
        "",
        "Time from stopping the watched HTTP server to the report with the portal check hard CRITICAL "
        "arriving at the push sink; the example config's portal settings (interval 15 s, timeout 10 s, "
        "retries 3, retry_interval 5 s, push_interval 15 s). The server was stopped at a different "
        "phase of the check interval each time.",
        "",
        "| runs | min | median | max | target |",
        "|---:|---:|---:|---:|---|",
    ]
    if outages:
        lines.append(f"| {len(outages)} | {min(outages):.1f} s | {statistics.median(outages):.1f} s | "
                     f"{max(outages):.1f} s | ≤ 30 s |")
        lines.append("")
        lines.append("Each run: " + ", ".join(f"{x:.1f} s" for x in outages) + ".")
    lines.append("")
    text = "\n".join(lines)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return text


def _gone(proc: dict[str, Any]) -> str:
    gone = proc["threads_gone"]
    return f" (≥: {gone} thread(s) ended during the run)" if gone else ""


def _node_exporter_version() -> str:
    out = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True, check=False,
                         timeout=30)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    return first.split("version", 1)[-1].split("(")[0].strip() or "unknown"


@contextmanager
def test_box(wanted: bool, with_1c: bool = False) -> Iterator[Any]:
    """One test box for the bitrix: profile (None when not wanted), taken down afterwards."""
    if not wanted:
        yield None
        return
    from tests.boxes import fleet

    state = Path(tempfile.mkdtemp(prefix="bkbench-", dir="/tmp"))
    (box,) = fleet.up(state, 1, with_1c=with_1c)
    try:
        yield box
    finally:
        left = fleet.down(state)
        if left:
            print(f"test box leftovers: {left}", file=sys.stderr)
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--outages", type=int, default=3, help="outage detection runs (0 to skip)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the results to this file (Markdown)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="cycle length in s: 1 (default) runs every check every second; 15 runs "
                             "the example config's own intervals, one push and one scrape per cycle")
    parser.add_argument("--no-metrics-only", action="store_true",
                        help="skip the added run of the agent without checks (its metrics path alone)")
    parser.add_argument("--bitrix-box", action="store_true",
                        help="also run the bitrix: profile against a test box started for it (root)")
    parser.add_argument("--onec-box", action="store_true",
                        help="as --bitrix-box, on a --with-1c box, plus its 1C server's checks (root)")
    args = parser.parse_args()
    if not 1 <= args.cycles <= 1000 or not 0 <= args.outages <= 10 or not 1 <= args.interval <= 60:
        parser.error("--cycles 1..1000, --outages 0..10, --interval 1..60")
    if args.cycles * args.interval > 3600:
        parser.error("--cycles × --interval: one hour at most")
    command = ".venv/bin/python bench/agent_bench.py " + " ".join(sys.argv[1:])
    wanted = args.bitrix_box or args.onec_box
    with tempfile.TemporaryDirectory(prefix="boxkeeper-bench-") as tmp, \
            test_box(wanted, args.onec_box) as box:
        workdir = Path(tmp)
        fps = []
        period = args.interval
        for push_interval in (15.0, 1.0) if period == 1.0 else (period,):
            print(f"footprint: {args.cycles} cycles of {period:g} s, push every {push_interval:g} s"
                  f"{', bitrix: profile' if box else ''} ...", flush=True)
            fps.append(footprint(args.cycles, workdir, push_interval, period=period, box=box))
        if not args.no_metrics_only:
            print(f"footprint: {args.cycles} cycles of {period:g} s, no checks (metrics path only) ...",
                  flush=True)
            fps.append(footprint(args.cycles, workdir, 15.0, with_checks=False, period=period))
        print(f"outage detection: {args.outages} run(s) ...", flush=True)
        outages = outage_detection(args.outages, workdir) if args.outages else []
    print(write_results(fps, outages, command.strip(), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
