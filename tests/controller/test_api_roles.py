"""Roles, client scoping, authentication before the body, rate limits and body limits of the API.

The endpoint × role table is generated from the app's routes: a new ``/api/`` route that declares
no role (``who: RoleViewer`` / ``RoleOperator`` / ``RoleAdmin``, controller/api/auth.py) fails
``test_every_api_route_declares_its_role``, and one missing from ``ROLES`` below fails too, so each
new endpoint's role is a reviewed line here.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent.push import HttpTransport, Pusher
from agent.spool import Spool
from controller import inventory, operators
from controller.alerting import incidents as service
from controller.alerting import queries
from controller.api import auth, create_app
from controller.api.reports import IngestFastPath
from controller.cli import main
from controller.store.db import Database
from controller.store.models import Report
from tests.controller.api_setup import Api, make_config, start_api
from tests.controller.reports import body, headers, make_report

pytestmark = pytest.mark.integration

#: Every operator route and the least role it needs. A new route: add its line.
ROLES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/hosts"): "viewer",
    ("GET", "/api/v1/hosts/{name}"): "viewer",
    ("GET", "/api/v1/hosts/{name}/changes"): "viewer",
    ("GET", "/api/v1/checks"): "viewer",
    ("GET", "/api/v1/incidents"): "viewer",
    ("GET", "/api/v1/incidents/{incident_id}"): "viewer",
    ("POST", "/api/v1/incidents/{incident_id}/ack"): "operator",
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): "operator",
    ("POST", "/api/v1/incidents/{incident_id}/notes"): "operator",
    ("GET", "/api/v1/runs"): "viewer",
    ("GET", "/api/v1/runs/{run_id}"): "viewer",
    ("POST", "/api/v1/runs"): "operator",
    ("GET", "/api/v1/windows"): "viewer",
    ("POST", "/api/v1/windows"): "admin",
    ("POST", "/api/v1/rollouts"): "operator",
    ("GET", "/api/v1/rollouts"): "viewer",
    ("GET", "/api/v1/rollouts/{rollout_id}"): "viewer",
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): "operator",
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): "operator",
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): "operator",
    ("GET", "/api/v1/clients/{client}/report"): "viewer",
    ("GET", "/api/v1/clients/{client}/worklog"): "viewer",
    ("POST", "/api/v1/clients/{client}/worklog"): "operator",
    ("POST", "/api/v1/runs/{run_id}/rollback"): "operator",
    ("POST", "/api/v1/runs/{run_id}/abort"): "operator",
    ("GET", "/api/v1/releases"): "viewer",
    ("POST", "/api/v1/releases"): "admin",
    ("POST", "/api/v1/releases/{hold_id}/release"): "admin",
    ("GET", "/api/v1/window-changes"): "viewer",
    ("PATCH", "/api/v1/windows/{name}"): "admin",
    ("DELETE", "/api/v1/windows/{name}"): "admin",
    ("POST", "/api/v1/windows/{name}/disable"): "admin",
    ("POST", "/api/v1/windows/{name}/enable"): "admin",
}

#: A request each route can take (path parameters and a body); what an admin gets is what every
#: role at or above the route's gets, and it must be neither 401 nor 403.
SAMPLE_PARAMS = {"name": "web1", "incident_id": "{incident}", "run_id": "999999", "rollout_id": "999999",
                 "hold_id": "999999", "client": "acme"}
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/incidents/{incident_id}/notes"): {"text": "looked at it"},
    ("POST", "/api/v1/runs"): {"playbook": "no-such-playbook", "host": "web1"},
    ("POST", "/api/v1/rollouts"): {"playbook": "no-such-playbook", "hosts": ["web1"]},
    ("POST", "/api/v1/clients/{client}/worklog"): {"minutes": 15, "text": "checked the backups"},
    ("POST", "/api/v1/windows"): {"name": "w", "client": "acme", "playbook": "bitrix-modules-update",
                                  "cron": "0 3 * * 6", "duration_minutes": 60},
}


def _operator_routes(app: Any) -> list[tuple[str, str, str | None]]:
    found = []
    for route in auth.api_routes(app):
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or ()):
            if path.startswith("/api/") and (method, path) not in auth.NOT_OPERATOR_ROUTES:
                found.append((method, path, auth.declared_role(route)))
    return found


@pytest.fixture
def api(tmp_path: Path, live_server: Any) -> Iterator[Api]:
    started = start_api(tmp_path, live_server)
    yield started
    started.db.dispose()


def _tokens(api: Api) -> dict[str, str]:
    path = Path(api.cfg.operator_tokens_file)
    return {role: operators.add_operator(path, f"the-{role}", role=role) for role in operators.ROLES}


def _open(db: Database, host: str, key: str) -> int:
    with db.session() as s:
        return service.open_incident(s, host=host, key=key, cause="check", severity="critical",
                                     summary="portal down").id


def test_every_api_route_declares_its_role(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    app = create_app(cfg, Database(cfg.database))
    declared = {(method, path): role for method, path, role in _operator_routes(app)}
    undeclared = sorted(key for key, role in declared.items() if role is None)
    assert undeclared == [], "routes without RoleViewer/RoleOperator/RoleAdmin"
    assert declared == ROLES


def test_endpoint_by_role_table(api: Api) -> None:
    """No token → 401; a role below the route's → 403; at or above → what an admin gets."""
    tokens = _tokens(api)
    incident = _open(api.db, "web1", "web1:check:portal")
    table: dict[tuple[str, str], dict[str, int]] = {}
    for method, path, role in _operator_routes(api.app):
        url = api.url + path.format(**{k: v.format(incident=incident) for k, v in SAMPLE_PARAMS.items()
                                       if "{" + k + "}" in path})
        sample = SAMPLE_BODIES.get((method, path))

        def call(token: str | None, url: str = url, method: str = method,
                 sample: dict[str, Any] | None = sample) -> int:
            hdrs = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.request(method, url, json=sample, headers=hdrs, timeout=30).status_code

        row = {"none": call(None)}
        row["admin"] = call(tokens["admin"])
        for who in ("viewer", "operator"):
            row[who] = call(tokens[who])
        table[(method, path)] = row
        assert role is not None
        assert row["none"] == 401, (method, path, row)
        assert row["admin"] not in (401, 403) and row["admin"] < 500, (method, path, row)
        for who in ("viewer", "operator"):
            allowed = operators.role_rank(who) >= operators.role_rank(role)
            assert row[who] == (row["admin"] if allowed else 403), (method, path, who, row)
    # what the rows show, in the words of the roles table of docs/controller.md
    assert table[("POST", "/api/v1/windows")] == {"none": 401, "admin": 201, "viewer": 403, "operator": 403}
    assert table[("POST", "/api/v1/incidents/{incident_id}/notes")]["operator"] == 200
    assert table[("POST", "/api/v1/runs")] == {"none": 401, "admin": 404, "viewer": 403, "operator": 404}


def test_a_client_scoped_operator_sees_only_its_clients(api: Api) -> None:
    token = operators.add_operator(Path(api.cfg.operator_tokens_file), "acme-ops", role="operator",
                                   clients=frozenset({"acme"}))
    mine = _open(api.db, "web1", "web1:check:portal")
    theirs = _open(api.db, "db1", "db1:unreachable")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        assert sorted(h["host"] for h in c.get("/api/v1/hosts").json()) == ["web1", "web2"]
        assert [i["id"] for i in c.get("/api/v1/incidents").json()] == [mine]
        assert c.get(f"/api/v1/incidents/{mine}").status_code == 200
        # another client's things answer exactly like things that do not exist
        for existing, missing in (("/api/v1/hosts/db1", "/api/v1/hosts/nope"),
                                  ("/api/v1/hosts/db1/changes", "/api/v1/hosts/nope/changes"),
                                  (f"/api/v1/incidents/{theirs}", "/api/v1/incidents/999999")):
            a, b = c.get(existing), c.get(missing)
            assert (a.status_code, b.status_code) == (404, 404)
            said = b.json()["detail"].replace("nope", "db1").replace("999999", str(theirs))
            assert a.json()["detail"] == said
        assert c.post(f"/api/v1/incidents/{theirs}/ack").status_code == 404
        assert c.get(f"/api/v1/incidents/{2**80}").status_code == 422  # not an id: as for everyone
        assert c.get(f"/api/v1/runs/{2**80}").status_code == 422
        run = c.post("/api/v1/runs", json={"playbook": "bitrix-modules-update", "host": "db1"})
        assert (run.status_code, run.json()) == (404, {"detail": "no host 'db1'"})
        assert {ch["host"] for ch in c.get("/api/v1/checks").json()} <= {"web1", "web2"}
    with api.db.read_session() as s:  # the refused ack changed nothing
        kinds = [e.kind for e in queries.timeline(s, theirs)]
    assert kinds and not any("ack" in kind for kind in kinds), kinds


def _receive_counter() -> tuple[list[int], Any]:
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(1)
        return {"type": "http.request", "body": b"\x00garbage{" * 1000, "more_body": False}

    return calls, receive


async def _call(asgi: Any, path: str, token: str, length: int) -> tuple[int, list[int]]:
    calls, receive = _receive_counter()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "asgi": {"version": "3.0"},
             "headers": [(b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/json"), (b"content-length", str(length).encode())]}
    await asgi(scope, receive, send)
    return sent[0]["status"], calls


@pytest.mark.parametrize("path", ["/api/v1/reports", "/api/v1/incidents/1/notes", "/api/v1/runs"])
@pytest.mark.parametrize("served", ["fast-path", "fastapi"])
def test_an_unknown_token_is_refused_before_the_body_is_read(tmp_path: Path, path: str, served: str) -> None:
    import asyncio

    cfg = make_config(tmp_path)
    db = Database(cfg.database)
    db.upgrade()
    app = create_app(cfg, db)
    asgi = IngestFastPath(app) if served == "fast-path" else app
    status, calls = asyncio.run(_call(asgi, path, "bka_not-a-real-token-" + "x" * 20, 50_000_000))
    assert status == 401
    assert calls == []  # the body was never received, so never parsed
    assert getattr(app.state, "ingest_writer", None) is None  # nothing was handed to the parser


def test_a_huge_body_with_a_bad_token_gets_401_without_being_sent(api: Api) -> None:
    """Over a real socket: headers say 50 MB, a few bytes follow; the 401 comes back at once (a
    server that read the body first would wait for the rest)."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bka_wrong\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{\"garbage")
        answer = sock.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert "unknown or revoked agent token" in answer


def test_a_token_revoked_while_remembered_is_still_refused(api: Api) -> None:
    """The gate remembers an active agent token for 10 minutes; the store checks it again."""
    web1 = api.agent_tokens["web1"]
    url = f"{api.url}/api/v1/reports"
    first = httpx.post(url, content=body(make_report("web1", 1)), headers=headers(web1), timeout=30)
    assert first.status_code == 200
    assert api.app.state.agent_tokens.lookups == 1
    inventory.revoke_host(api.db, "web1")
    again = httpx.post(url, content=body(make_report("web1", 2)), headers=headers(web1), timeout=30)
    assert (again.status_code, again.json()) == (401, {"detail": "unknown or revoked agent token"})
    assert api.app.state.agent_tokens.lookups == 1  # refused by the store, not by the gate's memory
    with api.db.read_session() as s:
        assert s.scalar(select(func.max(Report.seq))) == 1


def test_rate_limits_answer_429_with_retry_after_per_token(tmp_path: Path, live_server: Any) -> None:
    limits = {"agent": {"per_second": 0.001, "burst": 2}, "operator": {"per_second": 0.001, "burst": 3}}
    api = start_api(tmp_path, live_server, limits=limits)
    web1, web2 = api.agent_tokens["web1"], api.agent_tokens["web2"]
    codes = [httpx.post(f"{api.url}/api/v1/reports", content=body(make_report("web1", seq)),
                        headers=headers(web1), timeout=30) for seq in (1, 2, 3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert 1 <= int(codes[2].headers["retry-after"]) <= 1000
    other = httpx.post(f"{api.url}/api/v1/reports", content=body(make_report("web2", 1)),
                       headers=headers(web2), timeout=30)
    assert other.status_code == 200  # a bucket per token
    got = [httpx.get(f"{api.url}/api/v1/hosts", headers=api.operator(), timeout=30) for _ in range(4)]
    assert [r.status_code for r in got] == [200, 200, 200, 429]
    assert int(got[3].headers["retry-after"]) >= 1 and "too many requests" in got[3].json()["detail"]
    api.db.dispose()


def test_the_agent_waits_as_long_as_the_controllers_retry_after(tmp_path: Path, live_server: Any) -> None:
    """The agent's own backoff after one failure is at most 1 s; a throttled agent waits what the
    controller's 429 asks instead (it would otherwise come back 100 times in that time)."""
    api = start_api(tmp_path, live_server, limits={"agent": {"per_second": 0.01, "burst": 1}})
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    for seq in (1, 2):
        spool.append(seq, body(make_report("web1", seq)))
    pusher = Pusher(spool, HttpTransport(api.url, api.agent_tokens["web1"]), clock=lambda: 1000.0,
                    rng=lambda: 1.0)
    assert pusher.drain() is False  # the first report taken, the second throttled
    kept = spool.oldest()
    assert kept is not None and kept[0] == 2  # kept for later
    stats = pusher.stats()
    assert (stats.delivered_total, stats.errors_total) == (1, {"throttled": 1})
    assert 90 <= pusher.retry_in() <= 100  # Retry-After: 100 (1 / 0.01 s), not the backoff's 1 s
    pusher.close()
    api.db.dispose()


def test_bodies_over_the_limit_are_413(tmp_path: Path, live_server: Any) -> None:
    api = start_api(tmp_path, live_server, limits={"max_body_bytes": "2KiB"})
    incident = _open(api.db, "web1", "web1:check:portal")
    url = f"{api.url}/api/v1/incidents/{incident}/notes"
    declared = httpx.post(url, json={"text": "x" * 3000}, headers=api.operator(), timeout=30)
    assert declared.status_code == 413 and "2048 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"text": "'
        yield b"x" * 3000
        yield b'"}'

    chunked = httpx.post(url, content=chunks(), timeout=30,
                         headers={**api.operator(), "Content-Type": "application/json"})
    assert chunked.status_code == 413
    fine = httpx.post(url, json={"text": "x" * 1000}, headers=api.operator(), timeout=30)
    assert fine.status_code == 200
    api.db.dispose()


def test_an_operators_file_without_roles_means_admin_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "operators.yaml"
    path.write_text("operators:\n  - name: old\n    sha256: " + "a" * 64 + "\n")
    with caplog.at_level(logging.WARNING, logger="boxkeeper.controller.operators"):
        [op] = operators.read_file(path)
    assert (op.role, op.clients) == ("admin", None)
    assert "old" in caplog.text and "no role" in caplog.text


def test_the_cli_adds_sets_and_lists_roles_and_clients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = tmp_path / "controller.yaml"
    cfg_path.write_text(f"state_dir: {tmp_path}/state\nclients:\n  - name: acme\n  - name: beta\n")
    assert main(["--config", str(cfg_path), "operators", "add", "bob", "--role", "viewer",
                 "--clients", "acme,beta"]) == 0
    assert "bob (viewer, acme,beta)" in capsys.readouterr().out
    assert main(["--config", str(cfg_path), "operators", "add", "eve", "--clients", "nope"]) == 1
    assert "unknown client(s) nope" in capsys.readouterr().err
    assert main(["--config", str(cfg_path), "operators", "set", "bob", "--role", "operator",
                 "--all-clients"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg_path), "operators", "list"]) == 0
    assert re.findall(r"^bob\toperator\tevery client$", capsys.readouterr().out, re.M)
