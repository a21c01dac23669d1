"""End to end: real agents push to a real ``boxkeeper serve``; promtool and a real Prometheus read
its /metrics, and every Grafana panel query returns data.

Two ``boxkeeper-agent run`` subprocesses (hosts a1/acme and b1/globex) run an HTTP check against a
local HTTP server (OK) and a TCP check against a closed port (CRITICAL, hard at once). A third host
(c1/acme) stands for a Bitrix box with a 1C server: one report pushed through the real ingest
carries every series the agent's Bitrix and 1C checks declare (agent/checks/registry.py), and
the controller's store holds finished update runs, a later rollback and a held release, so the
dashboards' update, rollback, spool, Bitrix and 1C panels are checked against real data paths.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.checks.registry import CHECK_TYPES
from agent.report import SCHEMA, CheckReport, Facts, Report, Sample, Status, to_json
from controller.config import load
from controller.store.db import Database
from controller.workflows import later, releases
from controller.workflows import runs as store
from tests.controller.conftest import free_port
from tests.controller.proc import ControllerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.2.4"
PROM_HOST = "127.0.2.20"
AGENTS = (("a1", "acme"), ("b1", "globex"))


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like nginx in front of a portal

    def do_GET(self) -> None:
        payload = b"portal OK"
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def portal() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((HOST, 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _cli(config: Path, *argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--config", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, portal: str) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fleet")
    config = tmp / "controller.yaml"
    config.write_text(
        f"""state_dir: {tmp}/state
clients:
  - {{name: acme, hosts: [{{name: a1}}]}}
  - {{name: globex, hosts: [{{name: b1}}]}}
detection: {{evaluate_interval: 1s}}
""",
        encoding="utf-8",
    )
    controller = ControllerProcess(config, tmp, listen=f"{HOST}:0")
    agents: list[subprocess.Popen[bytes]] = []
    try:
        url = controller.start()
        closed_port = free_port(HOST)
        for host, client in AGENTS:
            token = json.loads(_cli(config, "hosts", "add", host, "--client", client, "--json"))["token"]
            token_file = tmp / f"{host}.token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            agent_cfg = tmp / f"{host}.yaml"
            agent_cfg.write_text(
                f"""host: {host}
interval: 1s
listen: {HOST}:{free_port(HOST)}
controller: {{url: "{url}", token_file: {token_file}, push_interval: 1s}}
spool: {{dir: {tmp}/spool-{host}}}
checks:
  - {{name: portal, type: http, url: "{portal}", interval: 1s}}
  - {{name: legacy-port, type: tcp, address: "{HOST}:{closed_port}", interval: 1s, timeout: 2s}}
""",
                encoding="utf-8",
            )
            log = open(tmp / f"agent-{host}.log", "wb")  # noqa: SIM115 (the child owns it)
            agents.append(
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "boxkeeper-agent"), "run", "--config", str(agent_cfg)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        _bitrix_and_onec_host(config, url)
        _update_history(config)
        yield {"url": url, "config": config, "tmp": tmp, "controller": controller}
    finally:
        for proc in agents:
            proc.terminate()
        for proc in agents:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        controller.stop()


def _bitrix_and_onec_host(config: Path, url: str) -> None:
    """c1 reports every Bitrix and 1C series the agent's check types declare."""
    token = json.loads(_cli(config, "hosts", "add", "c1", "--client", "acme", "--json"))["token"]
    names = sorted(n for t in CHECK_TYPES for n in t.metrics
                   if n.startswith(("boxkeeper_bitrix_", "boxkeeper_onec_")))
    samples = tuple(Sample(n, 1.0, "counter" if n.endswith("_total") else "gauge", {"site": "default"})
                    for n in names)
    report = Report(schema=SCHEMA, host="c1", agent_version="0.1.0", seq=1, sent_at=time.time(),
                    push_interval_seconds=3600.0,
                    checks=(CheckReport("portal", "http", Status(0), True, False, "ok", 0.1),),
                    samples=samples, facts=Facts("c1", "Rocky Linux 9", "5.14"))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    r = httpx.post(url + "/api/v1/reports", content=to_json(report), headers=auth, timeout=30)
    assert r.status_code in (200, 202), r.text


def _update_history(config: Path) -> None:
    """Finished update runs in the controller's store: a success, a rollback, a later rollback, a hold."""
    db = Database(load(str(config)).database)
    try:
        ids = []
        for host, state in (("a1", "SUCCEEDED"), ("b1", "ROLLED_BACK"), ("a1", "ROLLED_BACK")):
            run_id = store.create_run(db.session, host=host, playbook="bitrix-modules-update",
                                      playbook_path="bitrix-modules-update.yaml", variables={}, dry_run=False,
                                      now=time.time())
            with db.session() as s:
                store.get_run(s, run_id).state = state
                store.release_lease(s, host, run_id)
            ids.append(run_id)
        with db.session() as s:
            s.add(later.LaterRollback(run_id=ids[2], of_run_id=ids[0], requested_by="cli:ops",
                                      requested_at=time.time()))
            releases.hold(s, playbook="bitrix-modules-update", release="crm=25.100.300", actor="run 2",
                          now=time.time(), run_id=ids[1], host="b1")
    finally:
        db.dispose()


def _wait(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_status_shows_both_agents_with_their_checks(fleet: dict[str, Any]) -> None:
    def ready() -> dict[str, Any] | None:
        hosts = {h["host"]: h for h in json.loads(_cli(fleet["config"], "status", "--json"))}
        ok = all(len(hosts.get(h, {}).get("checks", [])) == 2 for h, _ in AGENTS)
        return hosts if ok else None

    hosts = _wait("both agents' checks in `boxkeeper status --json`", ready)
    for host, client in AGENTS:
        h = hosts[host]
        assert h["client"] == client and h["up"] is True
        checks = {c["name"]: c["status_name"] for c in h["checks"]}
        assert checks == {"portal": "ok", "legacy-port": "critical"}
        assert h["state"] == "critical"
        assert h["facts"]["kernel"]


def test_live_metrics_pass_promtool(fleet: dict[str, Any]) -> None:
    def scraped() -> str | None:
        text = httpx.get(fleet["url"] + "/metrics", timeout=30).text
        return (
            text
            if all(f'host="{h}"' in text and "boxkeeper_cpu_seconds_total{" in text for h, _ in AGENTS)
            else None
        )

    text = _wait("both hosts' samples in /metrics", scraped)
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, b"")
    # One family per name, both hosts in it, counters typed as counters.
    assert text.count("# TYPE boxkeeper_cpu_seconds_total counter") == 1
    assert 'boxkeeper_load1{client="acme",host="a1"}' in text
    assert 'boxkeeper_load1{client="globex",host="b1"}' in text


@pytest.fixture(scope="module")
def prometheus(fleet: dict[str, Any]) -> Iterator[str]:
    tmp: Path = fleet["tmp"]
    target = fleet["url"].removeprefix("http://")
    (tmp / "prometheus.yml").write_text(
        f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: boxkeeper
    scrape_interval: 1s
    static_configs: [{{targets: ["{target}"]}}]
""",
        encoding="utf-8",
    )
    port = free_port(PROM_HOST)
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address={PROM_HOST}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://{PROM_HOST}:{port}"
    try:
        _wait("Prometheus ready", lambda: _get_ok(url + "/-/ready"))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _panel_queries() -> list[tuple[str, str, str]]:
    queries = []
    for path in sorted((ROOT / "config" / "grafana").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queries.append((path.name, panel["title"], target["expr"]))
    return queries


def _substitute(expr: str) -> str:
    return expr.replace("$__rate_interval", "20s").replace("$client", ".*").replace("$host", "a1")


def test_every_grafana_panel_query_returns_data(fleet: dict[str, Any], prometheus: str) -> None:
    queries = _panel_queries()
    assert len(queries) >= 20
    # The variables' own queries: both clients and hosts are offered.
    _wait(
        "both hosts scraped by Prometheus", lambda: _values(prometheus, "boxkeeper_host_up") >= {"a1", "b1"}
    )
    empty: list[str] = []
    deadline = time.monotonic() + 90
    pending = list(queries)
    while pending and time.monotonic() < deadline:
        still = []
        for name, title, expr in pending:
            r = httpx.get(f"{prometheus}/api/v1/query", params={"query": _substitute(expr)}, timeout=30)
            assert r.status_code == 200, f"{name} / {title}: {r.text}"
            if not r.json()["data"]["result"]:
                still.append((name, title, expr))
        pending = still
        if pending:
            time.sleep(1)
    empty = [f"{name} / {title}: {expr}" for name, title, expr in pending]
    assert empty == []


def _values(prometheus: str, metric: str) -> set[str]:
    r = httpx.get(f"{prometheus}/api/v1/series", params={"match[]": metric}, timeout=30)
    return {s.get("host", "") for s in r.json().get("data", [])}
