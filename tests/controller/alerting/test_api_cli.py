"""Incidents through the operator API (a real uvicorn server) and the ``boxkeeper`` CLI; and the
running controller paging on a pushed hard CRITICAL without waiting for a full evaluation pass."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.report import SCHEMA, Facts, Report, to_json
from controller.alerting import incidents as service
from controller.cli import main
from controller.config import load
from controller.monitor import Monitor
from controller.store.db import Database
from tests.controller.alerting.support import check, recorder
from tests.controller.api_setup import make_config, start_api

pytestmark = pytest.mark.integration


def _open(db: Database, host: str = "web1", key: str = "web1:check:portal") -> int:
    with db.session() as s:
        return service.open_incident(
            s, host=host, key=key, cause="check", severity="critical", summary="portal down: HTTP 502"
        ).id


def test_incidents_api_list_show_ack_note_resolve(tmp_path: Path, live_server: Any) -> None:
    api = start_api(tmp_path, live_server)
    incident_id = _open(api.db)
    other = _open(api.db, "db1", "db1:unreachable")
    with httpx.Client(base_url=api.url, headers=api.operator(), timeout=10) as client:
        assert httpx.get(api.url + "/api/v1/incidents", timeout=10).status_code == 401
        listed = client.get("/api/v1/incidents", params={"open": True}).json()
        assert [(i["id"], i["host"], i["key"], i["severity"], i["status"]) for i in listed] == [
            (other, "db1", "db1:unreachable", "critical", "open"),
            (incident_id, "web1", "web1:check:portal", "critical", "open"),
        ]
        assert [i["id"] for i in client.get("/api/v1/incidents", params={"client": "globex"}).json()] == [
            other
        ]

        acked = client.post(f"/api/v1/incidents/{incident_id}/ack", json={"expires_in": 3600}).json()
        assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "alice"
        assert acked["ack_expires_at"] == pytest.approx(acked["acknowledged_at"] + 3600)
        client.post(f"/api/v1/incidents/{incident_id}/notes", json={"text": "restarting php-fpm"})
        done = client.post(f"/api/v1/incidents/{incident_id}/resolve", json={"message": "fixed"}).json()
        assert done["status"] == "resolved" and done["resolved_by"] == "alice"
        assert [(e["kind"], e["actor"]) for e in done["timeline"]] == [
            ("opened", "boxkeeper"),
            ("acknowledged", "alice"),
            ("note", "alice"),
            ("resolved", "alice"),
        ]
        assert client.get("/api/v1/incidents/99999").status_code == 404
        assert client.post("/api/v1/incidents/99999/ack").status_code == 404
        assert client.post(f"/api/v1/incidents/{other}/notes", json={"text": ""}).status_code == 422
        assert client.get("/api/v1/incidents/0").status_code == 422
        assert [i["id"] for i in client.get("/api/v1/incidents", params={"open": True}).json()] == [other]
    api.db.dispose()


def _write_config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "controller.yaml"
    path.write_text(
        f"""database: {database_url}
state_dir: {tmp_path}/state
clients:
  - name: acme
    hosts: [{{name: portal-01}}]
maintenance:
  - {{name: nightly, clients: [acme], cron: "0 3 * * *", duration: 1h, timezone: Europe/Moscow}}
""",
        encoding="utf-8",
    )
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_incidents_cli(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_write_config(tmp_path, database_url))
    code, _, err = _cli(capsys, "incidents", "--config", config)  # read-only: it never migrates
    assert code == 1 and "run `boxkeeper migrate`" in err
    if database_url.startswith("sqlite"):
        assert not (tmp_path / "boxkeeper.db").exists(), "a read-only command created the database"
    assert _cli(capsys, "migrate", "--config", config)[0] == 0
    code, out, _ = _cli(capsys, "incidents", "--config", config)
    assert code == 0 and "no incidents" in out
    db = Database(load(config).database)
    incident_id = _open(db, "portal-01", "portal-01:check:portal")

    code, out, _ = _cli(capsys, "incidents", "--open", "--json", "--config", config)
    [item] = json.loads(out)
    assert {k: item[k] for k in ("id", "host", "key", "severity", "status", "summary")} == {
        "id": incident_id,
        "host": "portal-01",
        "key": "portal-01:check:portal",
        "severity": "critical",
        "status": "open",
        "summary": "portal down: HTTP 502",
    }
    code, out, _ = _cli(capsys, "incidents", "--config", config)
    assert code == 0 and "portal down: HTTP 502" in out and "open" in out

    assert _cli(capsys, "incidents", "ack", str(incident_id), "--expires", "2h", "--config", config)[0] == 0
    assert _cli(capsys, "incidents", "note", str(incident_id), "looking", "--config", config)[0] == 0
    code, out, _ = _cli(capsys, "incidents", "resolve", str(incident_id), "--config", config)
    assert code == 0 and f"incident #{incident_id} resolved" in out
    code, out, _ = _cli(capsys, "incidents", "--open", "--json", "--config", config)
    assert json.loads(out) == []
    code, out, _ = _cli(capsys, "incidents", "show", str(incident_id), "--json", "--config", config)
    assert [e["kind"] for e in json.loads(out)["timeline"]] == ["opened", "acknowledged", "note", "resolved"]
    code, _, err = _cli(capsys, "incidents", "ack", "4242", "--config", config)
    assert code == 1 and "no incident #4242" in err

    code, out, _ = _cli(
        capsys, "maintenance", "mute", "portal-01", "--for", "30m", "--reason", "update", "--config", config
    )
    assert code == 0 and "muted until" in out
    code, out, _ = _cli(capsys, "maintenance", "list", "--json", "--config", config)
    kinds = {(i["kind"], i.get("host") or i.get("name")) for i in json.loads(out)}
    assert kinds == {("silence", "portal-01"), ("window", "nightly")}
    assert _cli(capsys, "maintenance", "unmute", "portal-01", "--config", config)[0] == 0
    db.dispose()


def test_a_pushed_hard_critical_pages_without_waiting_for_the_next_pass(
    tmp_path: Path, live_server: Any
) -> None:
    with recorder("127.0.3.61") as hook:
        # evaluation every hour: only notify_report (called by ingest) can make this page in time
        extra = {
            "notify": [{"type": "webhook", "name": "hook", "url": hook.url}],
            "detection": {"evaluate_interval": "1h"},
        }
        cfg = make_config(tmp_path, **extra)
        db = Database(cfg.database)
        db.upgrade()
        api = start_api(tmp_path, live_server, monitor=Monitor(cfg, db), **extra)
        report = Report(
            schema=SCHEMA,
            host="web1",
            agent_version="test",
            seq=1,
            sent_at=time.time(),
            push_interval_seconds=15.0,
            checks=(check("portal", 2, summary="HTTP 502"),),
            samples=(),
            facts=Facts(hostname="web1", os="Debian 12", kernel="6.1"),
        )
        time.sleep(0.5)  # let the first (startup) pass run before the report
        answer = httpx.post(
            api.url + "/api/v1/reports",
            content=to_json(report),
            headers={
                "Authorization": f"Bearer {api.agent_tokens['web1']}",
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert answer.status_code == 200
        deadline = time.monotonic() + 30
        while not hook.bodies() and time.monotonic() < deadline:
            time.sleep(0.1)
        [page] = hook.bodies()
        assert page["incident"]["summary"] == "portal down: HTTP 502" and page["event"] == "firing"
        api.db.dispose()
        db.dispose()
