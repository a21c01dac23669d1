"""Release holds, window changes, ``runs rollback`` refusals and the run / incident filters through the
HTTP API (a real uvicorn) and the CLI, on a stored history with known runs and incidents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.alerting.incidents import open_incident, resolve_incident
from controller.cli import main
from controller.store.db import Database
from controller.workflows import runs as store
from tests.controller.api_setup import Api, start_api

PLAYBOOK = str(Path(__file__).resolve().parents[3] / "playbooks" / "bitrix-modules-update.yaml")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def add_run(db: Database, host: str, state: str, at: str) -> int:
    run_id = store.create_run(db.session, host=host, playbook="bitrix-modules-update", playbook_path=PLAYBOOK,
                              variables={}, dry_run=False, now=ts(at))
    with db.session() as s:
        row = store.get_run(s, run_id)
        row.state, row.finished_at = state, ts(at) + 60
        store.release_lease(s, host, run_id)
    return run_id


@pytest.fixture
def api(tmp_path: Path, live_server: Any) -> Api:
    return start_api(tmp_path, live_server)


@pytest.fixture
def history(api: Api) -> dict[str, int]:
    runs = {
        "web1-nov1": add_run(api.db, "web1", "SUCCEEDED", "2026-11-01T03:00:00"),
        "db1-nov2": add_run(api.db, "db1", "ROLLED_BACK", "2026-11-02T03:00:00"),
        "web2-nov2": add_run(api.db, "web2", "SKIPPED", "2026-11-02T23:30:00"),
        "web1-nov3": add_run(api.db, "web1", "FAILED", "2026-11-03T03:00:00"),
    }
    with api.db.session() as s:
        for key, host, at in (("i-web1", "web1", "2026-11-01T10:00:00"),
                              ("i-db1", "db1", "2026-11-02T10:00:00"),
                              ("i-web2", "web2", "2026-11-03T10:00:00")):
            incident = open_incident(s, host=host, key=key, cause="check", severity="critical", summary=key,
                                     now=ts(at))
            runs[key] = incident.id
        resolve_incident(s, incident_id=runs["i-db1"], actor="alice", now=ts("2026-11-02T11:00:00"))
    return runs


def get(api: Api, path: str, **params: str) -> Any:
    r = httpx.get(f"{api.url}{path}", params=params, headers=api.operator(), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_runs_filter_by_client_host_state_and_dates(api: Api, history: dict[str, int]) -> None:
    def ids(**params: str) -> list[int]:
        return [r["id"] for r in get(api, "/api/v1/runs", **params)]

    assert ids(client="acme") == [history["web1-nov3"], history["web2-nov2"], history["web1-nov1"]]
    assert ids(host="db1") == [history["db1-nov2"]]
    assert ids(client="acme", host="db1") == []
    assert ids(state="SKIPPED") == [history["web2-nov2"]]
    assert ids(since="2026-11-02", until="2026-11-03") == [history["web2-nov2"], history["db1-nov2"]]
    # an ISO time with a zone: 2026-11-03T02:00+03:00 is 2026-11-02T23:00 UTC
    assert ids(since="2026-11-03T02:00:00+03:00", until="2026-11-03") == [history["web2-nov2"]]
    bad = httpx.get(f"{api.url}/api/v1/runs", params={"since": "yesterday"}, headers=api.operator(),
                    timeout=10)
    assert bad.status_code == 422 and "since: expected a date" in bad.text
    assert httpx.get(f"{api.url}/api/v1/runs", params={"state": "NOPE"}, headers=api.operator(),
                     timeout=10).status_code == 422
    [run] = get(api, "/api/v1/runs", host="db1")
    assert (run["kind"], run["rollback_of"]) == ("update", None)


def test_incidents_filter_by_state_and_dates(api: Api, history: dict[str, int]) -> None:
    def ids(**params: str) -> list[int]:
        return [i["id"] for i in get(api, "/api/v1/incidents", **params)]

    assert ids(state="resolved") == [history["i-db1"]]
    assert ids(state="open", client="acme") == [history["i-web2"], history["i-web1"]]
    assert ids(since="2026-11-02", until="2026-11-03") == [history["i-db1"]]
    assert ids(since="2026-11-03T10:00:00") == [history["i-web2"]]
    bad = httpx.get(f"{api.url}/api/v1/incidents", params={"until": "3rd"}, headers=api.operator(),
                    timeout=10)
    assert bad.status_code == 422 and "until: expected" in bad.text


def test_cli_filters_match_the_api(api: Api, history: dict[str, int], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"), "database": api.cfg.database,
        "clients": [{"name": "acme", "hosts": [{"name": "web1"}, {"name": "web2"}]},
                    {"name": "globex", "hosts": [{"name": "db1"}]}]}))
    cfg = str(config)
    assert main(["--config", cfg, "runs", "--json", "--client", "acme", "--since", "2026-11-02"]) == 0
    listed = [r["id"] for r in json.loads(capsys.readouterr().out)]
    assert listed == [history["web1-nov3"], history["web2-nov2"]]
    assert main(["--config", cfg, "runs", "--state", "rolled_back"]) == 0
    out = capsys.readouterr().out
    assert "db1" in out and "web1" not in out
    assert main(["--config", cfg, "runs", "--state", "sideways"]) == 2
    assert "--state: expected one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", cfg, "runs", "--since", "last week"])
    assert "expected a date (2026-11-30)" in capsys.readouterr().err
    assert main(["--config", cfg, "incidents", "--json", "--state", "open", "--until", "2026-11-03"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [history["i-web1"]]


def test_releases_api_holds_and_releases_with_the_operator(api: Api) -> None:
    url, auth = f"{api.url}/api/v1/releases", api.operator()
    assert httpx.get(url, timeout=10).status_code == 401
    body = {"playbook": "1c-config-update", "release": "3.1.10.1", "reason": "breaks the payroll report"}
    first = httpx.post(url, json=body, headers=auth, timeout=10)
    assert first.status_code == 201, first.text
    hold = first.json()
    assert (hold["held_by"], hold["state"], hold["reason"], hold["run_id"]) == (
        "alice", "held", "breaks the payroll report", None)
    again = httpx.post(url, json=body, headers=auth, timeout=10)
    assert again.status_code == 200 and again.json()["id"] == hold["id"]
    assert httpx.post(url, json={**body, "release": "  "}, headers=auth, timeout=10).status_code == 422
    assert [h["id"] for h in httpx.get(url, headers=auth, timeout=10).json()] == [hold["id"]]

    done = httpx.post(f"{url}/{hold['id']}/release", headers=auth, timeout=10)
    assert done.status_code == 200
    assert (done.json()["released_by"], done.json()["state"]) == ("alice", "released")
    assert httpx.post(f"{url}/{hold['id']}/release", headers=auth, timeout=10).status_code == 404
    assert httpx.get(url, headers=auth, timeout=10).json() == []
    assert len(httpx.get(url, params={"all": "true"}, headers=auth, timeout=10).json()) == 1


def test_window_changes_through_the_api_name_the_operator(api: Api) -> None:
    url, auth = f"{api.url}/api/v1/windows", api.operator()
    created = httpx.post(url, json={"name": "sat", "client": "acme", "playbook": "bitrix-modules-update",
                                    "cron": "0 3 * * 6", "duration_minutes": 120}, headers=auth, timeout=10)
    assert created.status_code == 201, created.text
    edited = httpx.patch(f"{url}/sat", json={"cron": "0 4 * * 6", "host": "web1"}, headers=auth, timeout=10)
    assert edited.status_code == 200, edited.text
    assert edited.json()["changes"] == {"cron": ["0 3 * * 6", "0 4 * * 6"], "target": ["client:acme", "web1"]}
    wrong = httpx.patch(f"{url}/sat", json={"cron": "0 25 * * *"}, headers=auth, timeout=10)
    assert wrong.status_code == 422 and "cron" in wrong.text
    assert httpx.patch(f"{url}/sat", json={"host": "nope"}, headers=auth, timeout=10).status_code == 404
    assert httpx.patch(f"{url}/nope", json={"cron": "0 4 * * 6"}, headers=auth, timeout=10).status_code == 404
    assert httpx.post(f"{url}/sat/disable", headers=auth, timeout=10).json()["changed"] is True
    [window] = httpx.get(url, headers=auth, timeout=10).json()
    assert (window["enabled"], window["target"], window["cron"]) == (False, "web1", "0 4 * * 6")
    assert httpx.post(f"{url}/sat/enable", headers=auth, timeout=10).status_code == 200
    assert httpx.delete(f"{url}/sat", headers=auth, timeout=10).status_code == 200
    assert httpx.delete(f"{url}/sat", headers=auth, timeout=10).status_code == 404
    changes = httpx.get(f"{api.url}/api/v1/window-changes", params={"name": "sat"}, headers=auth,
                        timeout=10).json()
    assert [(c["action"], c["actor"]) for c in changes] == [
        ("delete", "alice"), ("enable", "alice"), ("disable", "alice"), ("edit", "alice"), ("add", "alice")]


def test_runs_rollback_refusals_are_409_with_the_reason(api: Api, history: dict[str, int]) -> None:
    url, auth = f"{api.url}/api/v1/runs", api.operator()
    refused = httpx.post(f"{url}/{history['db1-nov2']}/rollback", headers=auth, timeout=10)
    assert refused.status_code == 409
    assert f"run {history['db1-nov2']} ended ROLLED_BACK" in refused.json()["detail"]
    assert httpx.post(f"{url}/999/rollback", headers=auth, timeout=10).status_code == 409
    # web1 may be rolled back (its later run FAILED: nothing changed), but has no SSH address here
    no_ssh = httpx.post(f"{url}/{history['web1-nov1']}/rollback", headers=auth, timeout=10)
    assert no_ssh.status_code == 422 and "ssh.address" in no_ssh.text
