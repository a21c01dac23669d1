"""The HTTP API on a real uvicorn server: ingest auth and validation, operator endpoints, health."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent.report import to_dict
from controller.store.models import CheckState, Report
from tests.controller.api_setup import Api, start_api
from tests.controller.reports import body, headers, make_report

pytestmark = pytest.mark.integration


class RecordingMonitor:
    """Stands in for the incidents side's Monitor to see what the API calls on it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def notify_report(self, host: str) -> None:
        self.calls.append(f"report:{host}")


@pytest.fixture
def monitor() -> RecordingMonitor:
    return RecordingMonitor()


@pytest.fixture(params=[True, False], ids=["as-served", "fastapi-route"])
def api(
    tmp_path: Path, live_server: Callable[..., str], monitor: RecordingMonitor,
    request: pytest.FixtureRequest,
) -> Iterator[Api]:
    """Ingest has two entries with one handler: ``serve``'s fast path and the FastAPI route; every
    test here runs against both."""
    started = start_api(tmp_path, live_server, monitor=monitor, fast_path=request.param)
    yield started
    started.db.dispose()


def _reports(api: Api) -> int:
    with api.db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(Report)) or 0)


def _post(api: Api, data: bytes, token: str | None, **kw: Any) -> httpx.Response:
    hdrs = headers(token) if token else {"Content-Type": "application/json"}
    return httpx.post(f"{api.url}/api/v1/reports", content=data, headers=hdrs, timeout=30, **kw)


def test_a_valid_report_is_stored_and_the_monitor_is_told(api: Api, monitor: RecordingMonitor) -> None:
    r = _post(api, body(make_report("web1", 1, status=2)), api.agent_tokens["web1"])
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "stored", "host": "web1", "seq": 1}
    assert monitor.calls == ["start", "report:web1"]
    with api.db.read_session() as s:
        assert {c.status for c in s.scalars(select(CheckState))} == {2}


@pytest.mark.parametrize("token", [None, "bka_not-a-real-token", "Basic"])
def test_missing_or_unknown_token_is_401(api: Api, token: str | None) -> None:
    data = body(make_report("web1", 1))
    if token == "Basic":
        r = httpx.post(f"{api.url}/api/v1/reports", content=data, headers={"Authorization": "Basic dTpw"})
    else:
        r = _post(api, data, token)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert _reports(api) == 0


def test_revoked_token_is_401(api: Api) -> None:
    from controller import inventory

    inventory.revoke_host(api.db, "web1")
    assert _post(api, body(make_report("web1", 1)), api.agent_tokens["web1"]).status_code == 401
    assert _reports(api) == 0


def test_another_hosts_token_is_403(api: Api) -> None:
    r = _post(api, body(make_report("web1", 1)), api.agent_tokens["web2"])
    assert r.status_code == 403
    assert "web2" in r.json()["detail"]
    assert _reports(api) == 0


def _valid(host: str = "web1") -> dict[str, Any]:
    return to_dict(make_report(host, 1))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: b"{not json", "Invalid JSON"),
        (lambda d: json.dumps({**d, "seq": "1"}).encode(), "seq"),
        (lambda d: json.dumps({**d, "schema": "boxkeeper.report/2"}).encode(), "schema"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "checks"}).encode(), "checks"),
        (
            lambda d: json.dumps({**d, "checks": [{**d["checks"][0], "status": 9}]}).encode(),
            "checks[0].status",
        ),
        (
            lambda d: json.dumps({**d, "samples": [{"name": "bad name", "value": 1}]}).encode(),
            "samples[0].name",
        ),
        (lambda d: json.dumps({**d, "checks": [d["checks"][0], d["checks"][0]]}).encode(), "duplicate"),
        (lambda d: json.dumps({**d, "sent_at": float("nan")}).encode(), "sent_at"),
        (lambda d: json.dumps({**d, "push_interval_seconds": 0}).encode(), "push_interval_seconds"),
        (lambda d: json.dumps([d]).encode(), "(body)"),
        (lambda d: b"", "Invalid JSON"),
    ],
)
def test_malformed_reports_are_422_naming_the_problem(api: Api, mutate: Any, expected: str) -> None:
    r = _post(api, mutate(_valid()), api.agent_tokens["web1"])
    assert r.status_code == 422, r.text
    assert expected in r.json()["detail"]
    assert _reports(api) == 0


def test_a_body_over_the_limit_is_413_before_parsing(api: Api) -> None:
    big = b"{" + b" " * (api.cfg.max_report_bytes + 10) + b"}"
    r = _post(api, big, api.agent_tokens["web1"])
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is cut at the limit
        for _ in range(40):
            yield b" " * 65536

    r = httpx.post(f"{api.url}/api/v1/reports", content=chunks(), headers=headers(api.agent_tokens["web1"]))
    assert r.status_code == 413
    assert _reports(api) == 0


def test_a_replayed_report_is_answered_duplicate_and_stored_once(api: Api) -> None:
    data = body(make_report("web1", 42))
    first = _post(api, data, api.agent_tokens["web1"])
    second = _post(api, data, api.agent_tokens["web1"])
    assert (first.status_code, first.json()["status"]) == (200, "stored")
    assert (second.status_code, second.json()["status"]) == (200, "duplicate")
    assert _reports(api) == 1


def test_operator_endpoints_need_an_operator_token(api: Api) -> None:
    for path in ("/api/v1/hosts", "/api/v1/hosts/web1", "/api/v1/checks", "/api/v1/hosts/web1/changes"):
        assert httpx.get(api.url + path).status_code == 401
        assert httpx.get(api.url + path, headers=headers(api.agent_tokens["web1"])).status_code == 401
        assert httpx.get(api.url + path, headers=api.operator()).status_code == 200


def test_hosts_and_checks_show_what_the_agents_reported(api: Api) -> None:
    _post(api, body(make_report("web1", 1, checks=2, statuses={"check_1": 2})), api.agent_tokens["web1"])
    _post(api, body(make_report("db1", 1, checks=1)), api.agent_tokens["db1"])
    hosts = {h["host"]: h for h in httpx.get(f"{api.url}/api/v1/hosts", headers=api.operator()).json()}
    assert set(hosts) == {"web1", "web2", "db1"}
    assert (hosts["web1"]["client"], hosts["web1"]["state"], hosts["web1"]["up"]) == (
        "acme",
        "critical",
        True,
    )
    assert (hosts["db1"]["state"], hosts["db1"]["labels"]) == ("ok", {"role": "db"})
    assert hosts["web2"]["state"] == "unknown"  # never reported

    detail = httpx.get(f"{api.url}/api/v1/hosts/web1", headers=api.operator()).json()
    assert [(c["name"], c["status_name"]) for c in detail["checks"]] == [
        ("check_0", "ok"),
        ("check_1", "critical"),
    ]
    assert detail["facts"]["os"] == "Debian 12"
    assert httpx.get(f"{api.url}/api/v1/hosts/nope", headers=api.operator()).status_code == 404

    critical = httpx.get(
        f"{api.url}/api/v1/checks", params={"status": "critical"}, headers=api.operator()
    ).json()
    assert [(c["host"], c["name"]) for c in critical] == [("web1", "check_1")]
    changes = httpx.get(f"{api.url}/api/v1/hosts/web1/changes", headers=api.operator()).json()
    assert {c["check"] for c in changes} == {"check_0", "check_1"}


def test_healthz_and_metrics_need_no_token_and_openapi_describes_ingest(api: Api) -> None:
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok", "database": True}
    _post(api, body(make_report("web1", 1)), api.agent_tokens["web1"])
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'boxkeeper_host_up{client="acme",host="web1"} 1.0' in metrics
    assert 'boxkeeper_controller_ingest_requests_total{code="200"} 1.0' in metrics
    schema = httpx.get(f"{api.url}/openapi.json").json()
    ingest = schema["paths"]["/api/v1/reports"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Report"
    }
    assert "Report" in schema["components"]["schemas"]


def test_metrics_can_require_an_operator_token(tmp_path: Path, live_server: Callable[..., str]) -> None:
    api = start_api(tmp_path, live_server, metrics={"require_token": True})
    assert httpx.get(f"{api.url}/metrics").status_code == 401
    assert httpx.get(f"{api.url}/metrics", headers=api.operator()).status_code == 200
    api.db.dispose()
