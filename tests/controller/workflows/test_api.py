"""Update runs and windows through the controller's HTTP API, on a real test box and a real uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller import inventory, operators
from controller.alerting.silences import Owner, is_muted, silence
from controller.api import create_app
from controller.config import load
from controller.store.db import Database
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import bitrix_vars, portal_version
from tests.controller.workflows.test_cli import write_config

pytestmark = pytest.mark.integration

TERMINAL = {"SUCCEEDED", "FAILED", "ROLLED_BACK", "QUARANTINED"}


def wait_for_run(url: str, headers: dict[str, str], run_id: int, deadline: float = 180) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        run: dict[str, Any] = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=headers, timeout=10).json()
        if run["state"] in TERMINAL:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish within {deadline}s")


def muted(db: Database, host: str) -> str | None:
    with db.read_session() as s:
        return is_muted(s, host=host, client="acme", now=time.time())


def test_start_a_run_follow_it_and_refuse_a_second(
    box: Box, tmp_path: Path, live_server: Callable[..., str]
) -> None:
    cfg = load(write_config(box, tmp_path))
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    (Path(cfg.state_dir) / "known_hosts").write_text(box.info.known_hosts.strip() + "\n")  # pinned
    url = live_server(create_app(cfg, db))
    auth = {"Authorization": f"Bearer {token}"}
    variables = {k: v for k, v in bitrix_vars(box).items() if k != "portal_url"}
    body = {"playbook": "bitrix-modules-update", "host": box.name, "vars": variables}

    assert httpx.post(f"{url}/api/v1/runs", json=body, timeout=10).status_code == 401
    unknown = httpx.post(f"{url}/api/v1/runs", json={**body, "host": "nope"}, headers=auth, timeout=10)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "no host 'nope'"})
    no_playbook = httpx.post(f"{url}/api/v1/runs", json={**body, "playbook": "pyproject.toml"}, headers=auth,
                             timeout=10)  # only the playbooks directory, by name; its path is not told
    assert (no_playbook.status_code, no_playbook.json()) == (404, {"detail": "no playbook 'pyproject.toml'"})
    bad_var = httpx.post(f"{url}/api/v1/runs", json={**body, "vars": {"no_such_var": "1"}},
                         headers=auth, timeout=10)
    assert bad_var.status_code == 422 and bad_var.json()["detail"][0]["loc"] == ["body"]
    no_site = httpx.post(f"{url}/api/v1/runs", json={**body, "site": "shop"}, headers=auth, timeout=10)
    assert no_site.status_code == 422
    assert "a site named 'shop' (the host's sites: none are configured)" in no_site.text

    with db.session() as s:  # an operator's own mute, which the run must leave alone
        silence(s, host=box.name, until=time.time() + 3600, reason="disk swap tonight",
                owner=Owner.operator("alice"), now=time.time())
    box.stage("good")
    started = httpx.post(f"{url}/api/v1/runs", json=body, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    assert muted(db, box.name) == f"muted: update run {run_id}"  # no pages while the run restarts services
    # The first run holds the host's lease from the moment it was accepted.
    second = httpx.post(f"{url}/api/v1/runs", json=body, headers=auth, timeout=30)
    assert second.status_code == 409, second.text

    run = wait_for_run(url, auth, run_id)
    assert run["state"] == "SUCCEEDED", run["error"]
    assert [e for e in run["timeline"] if e["kind"] == "transition"][-1]["name"] == "VERIFY → SUCCEEDED"
    assert portal_version(box) == (200, "25.100.300")
    assert muted(db, box.name) == "muted: disk swap tonight"  # the run's mute ended, the operator's stays
    listed = httpx.get(f"{url}/api/v1/runs", headers=auth, timeout=10).json()
    assert [r["id"] for r in listed] == [run_id]
    assert httpx.get(f"{url}/api/v1/runs/999", headers=auth, timeout=10).status_code == 404


def test_a_run_for_a_site_gets_its_docroot_and_portal_url_from_the_config(
    box: Box, tmp_path: Path, live_server: Callable[..., str]
) -> None:
    """The host has no portal_url of its own: without the site the API refuses (422, nothing runs);
    with ``"site"`` the site's docroot and portal_url, and the host's vars, make a run with no vars."""
    path = write_config(box, tmp_path)
    config = yaml.safe_load(path.read_text())
    host = config["clients"][0]["hosts"][0]
    del host["portal_url"]
    host["vars"] = {k: v for k, v in bitrix_vars(box).items() if k not in ("portal_url", "docroot")}
    host["sites"] = [{"name": "main", "docroot": box.info.docroot, "portal_url": box.info.portal_url}]
    path.write_text(yaml.safe_dump(config))
    cfg = load(path)
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    (Path(cfg.state_dir) / "known_hosts").write_text(box.info.known_hosts.strip() + "\n")
    url = live_server(create_app(cfg, db))
    auth = {"Authorization": f"Bearer {token}"}
    body = {"playbook": "bitrix-modules-update", "host": box.name}
    box.stage("good")
    refused = httpx.post(f"{url}/api/v1/runs", json=body, headers=auth, timeout=30)
    assert refused.status_code == 422 and "clients[0].hosts[0].portal_url" in refused.text
    assert httpx.get(f"{url}/api/v1/runs", headers=auth, timeout=10).json() == []  # nothing started
    started = httpx.post(f"{url}/api/v1/runs", json={**body, "site": "main"}, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    run = wait_for_run(url, auth, started.json()["id"])
    assert run["state"] == "SUCCEEDED", run["error"]
    assert portal_version(box) == (200, "25.100.300")
    [home] = [e for e in run["timeline"] if e["name"] == "portal home page"]
    assert home["command"] == f"GET {box.info.portal_url}"


def test_windows_are_added_and_listed_in_the_client_time_zone(
    tmp_path: Path, live_server: Callable[..., str]
) -> None:
    cfg_path = tmp_path / "controller.yaml"
    cfg_path.write_text(
        f"state_dir: {tmp_path}/state\n"
        "clients:\n  - name: acme\n    timezone: Europe/Moscow\n    hosts:\n      - {name: portal-01}\n"
    )
    cfg = load(cfg_path)
    db = Database(cfg.database)
    db.upgrade()
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    url = live_server(create_app(cfg, db))
    auth = {"Authorization": f"Bearer {token}"}
    window = {"name": "saturday-night", "client": "acme", "playbook": "bitrix-modules-update",
              "cron": "0 3 * * 6", "duration_minutes": 120}

    created = httpx.post(f"{url}/api/v1/windows", json=window, headers=auth, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["timezone"] == "Europe/Moscow" and created.json()["target"] == "client:acme"
    again = httpx.post(f"{url}/api/v1/windows", json=window, headers=auth, timeout=10)
    assert again.status_code == 409
    bad_cron = httpx.post(f"{url}/api/v1/windows", json={**window, "name": "x", "cron": "soon"},
                          headers=auth, timeout=10)
    assert bad_cron.status_code == 422
    both = httpx.post(f"{url}/api/v1/windows", json={**window, "name": "y", "host": "portal-01"},
                      headers=auth, timeout=10)
    assert both.status_code == 422
    listed = httpx.get(f"{url}/api/v1/windows", headers=auth, timeout=10).json()
    assert [w["name"] for w in listed] == ["saturday-night"]
