"""``kill -9`` of a real ``boxkeeper serve`` under ingest load: every acknowledged report survives."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from controller.store.db import Database
from controller.store.models import Host, Report
from tests.controller.proc import ControllerProcess
from tests.controller.reports import body, headers, make_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = ("k1", "k2", "k3", "k4")
MAX_REPORTS = 2000
MAX_SECONDS = 30.0


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "controller.yaml"
    hosts = ", ".join(f"{{name: {h}}}" for h in HOSTS)
    path.write_text(
        f"state_dir: {tmp_path}/state\ndatabase: {database_url}\n"
        f"clients: [{{name: acme, hosts: [{hosts}]}}]\n",
        encoding="utf-8",
    )
    return path


def test_every_acknowledged_report_survives_kill_9(tmp_path: Path, database_url: str) -> None:
    from controller.cli import main

    config = _config(tmp_path, database_url)
    tokens = {}
    for host in HOSTS:
        out = tmp_path / f"{host}.json"
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["--config", str(config), "hosts", "add", host, "--client", "acme", "--json"]) == 0
        tokens[host] = json.loads(buf.getvalue())["token"]
        out.write_text(tokens[host])

    controller = ControllerProcess(config, tmp_path)
    url = controller.start()
    acked: set[tuple[str, int]] = set()
    attempted: set[tuple[str, int]] = set()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + MAX_SECONDS

    def agent(host: str) -> None:
        with httpx.Client(timeout=10) as client:
            for seq in range(1, MAX_REPORTS // len(HOSTS) + 1):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                data = body(make_report(host, seq, checks=20, samples=100))
                with lock:
                    attempted.add((host, seq))
                try:
                    r = client.post(f"{url}/api/v1/reports", content=data, headers=headers(tokens[host]))
                except httpx.HTTPError:
                    stop.set()  # the controller is gone
                    return
                if 200 <= r.status_code < 300:
                    with lock:
                        acked.add((host, seq))

    threads = [threading.Thread(target=agent, args=(h,)) for h in HOSTS]
    for t in threads:
        t.start()
    # Let some load through, then kill the controller in the middle of it.
    wait_until = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < wait_until:
        time.sleep(0.02)
    controller.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(acked) >= 200, f"load did not get going: {len(acked)} acked; {controller.log_tail()}"

    # Restart on the same database: everything acknowledged is there.
    url = controller.start()
    db = Database(database_url)
    try:
        with db.read_session() as s:
            stored = set(s.execute(select(Host.name, Report.seq).join(Host, Report.host_id == Host.id)).all())
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged reports lost, e.g. {sorted(missing)[:5]}"

        # The agents replay everything they were not sure about: stored exactly once each.
        with httpx.Client(timeout=10) as client:
            for host, seq in sorted(attempted - acked):
                r = client.post(
                    f"{url}/api/v1/reports",
                    content=body(make_report(host, seq)),
                    headers=headers(tokens[host]),
                )
                assert r.status_code == 200
        with db.read_session() as s:
            rows = s.execute(select(Host.name, Report.seq).join(Host, Report.host_id == Host.id)).all()
        assert len(rows) == len(set(rows)) == len(attempted)
    finally:
        db.dispose()
        assert controller.stop() == 0  # SIGTERM: graceful, exit 0
