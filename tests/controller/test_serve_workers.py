"""``boxkeeper serve --workers 2`` on SQLite: two API processes on one socket and one database file."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import select

from controller.store.db import Database
from controller.store.models import Host, Report
from tests.controller.proc import ControllerProcess
from tests.controller.reports import body, headers, make_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTS = ("w1", "w2", "w3", "w4", "w5", "w6")
REPORTS = 40


def test_two_workers_store_every_push_exactly_once(tmp_path: Path) -> None:
    from controller.cli import main

    database = f"sqlite:///{tmp_path}/state/boxkeeper.db"
    config = tmp_path / "controller.yaml"
    config.write_text(f"state_dir: {tmp_path}/state\ndatabase: {database}\nclients: [{{name: acme}}]\n")
    tokens = {}
    for host in HOSTS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--config", str(config), "hosts", "add", host, "--client", "acme", "--json"]) == 0
        tokens[host] = json.loads(out.getvalue())["token"]
    controller = ControllerProcess(config, tmp_path, extra_env={"BOXKEEPER_WORKERS": "2"})
    url = controller.start()
    answers: dict[tuple[str, int], str] = {}
    lock = threading.Lock()

    def agent(host: str) -> None:
        for first in range(1, REPORTS + 1, 4):  # a new connection every 4 pushes
            with httpx.Client(timeout=30) as client:
                for seq in range(first, min(first + 4, REPORTS + 1)):
                    r = client.post(f"{url}/api/v1/reports", content=body(make_report(host, seq, checks=5)),
                                    headers=headers(tokens[host]))
                    with lock:
                        answers[(host, seq)] = r.json()["status"] if r.status_code == 200 else r.text

    try:
        assert controller.proc is not None
        workers = psutil.Process(controller.proc.pid).children()
        assert len([p for p in workers if "python" in p.name()]) >= 2, controller.log_tail()
        threads = [threading.Thread(target=agent, args=(h,)) for h in HOSTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert set(answers.values()) == {"stored"}, controller.log_tail()
        assert len(answers) == len(HOSTS) * REPORTS
        with httpx.Client(timeout=30) as client:  # replays are answered duplicate, by either worker
            for host in HOSTS:
                r = client.post(f"{url}/api/v1/reports", content=body(make_report(host, REPORTS, checks=5)),
                                headers=headers(tokens[host]))
                assert r.json()["status"] == "duplicate"
    finally:
        controller.stop()
    db = Database(database)
    try:
        with db.read_session() as s:
            rows = s.execute(select(Host.name, Report.seq).join(Host, Report.host_id == Host.id)).all()
    finally:
        db.dispose()
    assert sorted(rows) == sorted((h, seq) for h in HOSTS for seq in range(1, REPORTS + 1))
