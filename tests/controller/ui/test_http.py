"""The web page over HTTP (a real uvicorn, httpx): sign-in, sessions, CSRF, escaping, headers,
the one permission function, languages."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from agent.report import to_json
from controller import operators
from controller.alerting import incidents as service
from controller.alerting.models import Incident, IncidentEvent
from controller.ui import sessions
from controller.ui.models import UiSession
from tests.controller.reports import make_report
from tests.controller.ui.support import Page


def open_incident(page: Page, host: str = "web1", summary: str = "portal down: HTTP 502") -> int:
    with page.db.session() as s:
        return service.open_incident(s, host=host, key=f"check:{host}:portal", cause="check",
                                     severity="critical", summary=summary, now=page.clock()).id


def test_sign_in_gives_a_strict_http_only_cookie_and_the_fleet(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    first = page.client.get("/ui/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/ui/login?next=%2Fui%2F"

    wrong = page.sign_in("bko_not-a-token")
    assert wrong.status_code == 401 and "not an operator token" in wrong.text
    assert sessions.COOKIE not in page.client.cookies

    ok = page.sign_in()
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
    cookie = ok.headers["set-cookie"]
    assert f"{sessions.COOKIE}=" in cookie
    for flag in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert flag.lower() in cookie.lower(), cookie
    assert page.token not in cookie  # the token is exchanged, never kept by the browser

    fleet = page.client.get("/ui/")
    assert fleet.status_code == 200
    assert "web1" in fleet.text and "db1" in fleet.text and "alice" in fleet.text
    with page.db.read_session() as s:  # the store keeps a hash of the cookie only
        row = s.scalars(select(UiSession)).one()
        assert row.operator == "alice" and page.client.cookies[sessions.COOKIE] not in row.id_sha256


def test_every_page_has_security_headers_and_no_store(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    incident = open_incident(page)
    for path in ("/ui/", "/ui/hosts/web1", "/ui/incidents", f"/ui/incidents/{incident}", "/ui/runs",
                 "/ui/runs/new", "/ui/windows", "/ui/windows/new", "/ui/login", "/ui/fleet/fragment"):
        r = page.client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert "<script>" not in r.text  # no inline script: only <script src=...>
    css = page.client.get("/ui/static/ui.css")
    js = page.client.get("/ui/static/ui.js")
    assert css.headers["content-type"].startswith("text/css") and "@media" in css.text
    assert js.headers["content-type"].startswith("text/javascript") and "data-refresh" in js.text
    assert page.client.get("/ui/static/../routes.py").status_code == 404


def test_a_form_without_the_csrf_token_is_refused(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    incident = open_incident(page)
    missing = page.client.post(f"/ui/incidents/{incident}/ack", data={}, follow_redirects=False)
    wrong = page.client.post(f"/ui/incidents/{incident}/ack", data={"csrf": "guess"}, follow_redirects=False)
    assert missing.status_code == 403 and wrong.status_code == 403
    assert "CSRF" in wrong.text
    with page.db.read_session() as s:
        assert s.get(Incident, incident).status == "open"  # type: ignore[union-attr]
    ok = page.client.post(f"/ui/incidents/{incident}/ack", data={"csrf": page.csrf()}, follow_redirects=False)
    assert ok.status_code == 303
    with page.db.read_session() as s:
        row = s.get(Incident, incident)
        assert row is not None and row.status == "acknowledged" and row.acknowledged_by == "alice"
    # Sign-out is a form too; and the sign-in form has its own token (login CSRF).
    assert page.client.post("/ui/logout", data={"csrf": "x"}, follow_redirects=False).status_code == 403
    fresh = make_ui(tmp_path / "other")
    assert fresh.client.post("/ui/login", data={"token": fresh.token, "csrf": "x"}).status_code == 403


def test_sessions_expire_and_die_with_the_operator(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    assert page.client.get("/ui/", follow_redirects=False).status_code == 200
    page.clock.now += sessions.IDLE_SECONDS + 1  # idle too long
    gone = page.client.get("/ui/incidents", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/ui/login?next=%2Fui%2Fincidents"
    assert page.client.get("/ui/fleet/fragment", follow_redirects=False).status_code == 401  # JS reloads
    with page.db.read_session() as s:
        assert s.scalars(select(UiSession)).all() == []  # the dead session's row is gone

    page.sign_in()
    signed_in_at = page.clock.now
    while page.clock.now + 3000 < signed_in_at + sessions.LIFETIME_SECONDS:  # active all along ...
        page.clock.now += 3000
        assert page.client.get("/ui/", follow_redirects=False).status_code == 200
    page.clock.now += 3000  # ... and still 12 h at most
    assert page.client.get("/ui/", follow_redirects=False).status_code == 303

    page.sign_in()
    assert page.client.get("/ui/", follow_redirects=False).status_code == 200
    operators.remove_operator(Path(page.cfg.operator_tokens_file), "alice")
    assert page.client.get("/ui/", follow_redirects=False).status_code == 303
    new_token = operators.add_operator(Path(page.cfg.operator_tokens_file), "alice")
    assert page.client.get("/ui/", follow_redirects=False).status_code == 303  # the old session stays dead
    assert page.sign_in(new_token).status_code == 303
    assert page.client.get("/ui/", follow_redirects=False).status_code == 200


def test_sign_out_ends_the_session_in_the_store(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    cookie = page.client.cookies[sessions.COOKIE]
    out = page.client.post("/ui/logout", data={"csrf": page.csrf()}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    page.client.cookies.set(sessions.COOKIE, cookie)  # a copied cookie is worth nothing now
    assert page.client.get("/ui/", follow_redirects=False).status_code == 303


def test_after_sign_in_only_pages_of_this_site(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    for evil in ("//evil.example/ui/", "https://evil.example/", "/api/v1/hosts", "/ui\\..\\x"):
        r = page.sign_in(next_path=evil)
        assert r.status_code == 303 and r.headers["location"] == "/ui/", evil


def test_names_and_texts_are_escaped(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    evil = "<script>alert(1)</script>"
    page = make_ui(tmp_path, hosts=((evil, "acme"), ("web1", "acme")))
    report = make_report(evil, 1, checks=1, statuses={"check_0": 2})
    r = page.client.post("/api/v1/reports", content=to_json(report),
                         headers={"Authorization": f"Bearer {page.agent_tokens[evil]}",
                                  "Content-Type": "application/json"})
    assert r.status_code in (200, 202), r.text
    incident = open_incident(page, host=evil, summary=f'disk "full" {evil}')
    page.sign_in()
    note = page.client.post(f"/ui/incidents/{incident}/note", data={"csrf": page.csrf(), "text": evil},
                            follow_redirects=False)
    assert note.status_code == 303
    for path in ("/ui/", f"/ui/incidents/{incident}", "/ui/incidents", "/ui/fleet/fragment"):
        text = page.client.get(path).text
        assert evil not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
    host_page = page.client.get("/ui/hosts/" + evil.replace("/", "%2F"))
    assert host_page.status_code in (200, 404)  # a slash in a name is no path: either way, nothing runs
    assert evil not in host_page.text


def test_note_with_minutes_spent(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    incident = open_incident(page)
    csrf = page.csrf()
    bad = page.client.post(f"/ui/incidents/{incident}/note",
                           data={"csrf": csrf, "text": "x", "minutes": "-3"})
    assert bad.status_code == 422 and "minutes" in bad.text
    ok = page.client.post(f"/ui/incidents/{incident}/note",
                          data={"csrf": csrf, "text": "restarted php-fpm", "minutes": "15"},
                          follow_redirects=True)
    assert ok.status_code == 200 and "restarted php-fpm [15 min]" in ok.text
    with page.db.read_session() as s:
        notes = s.scalars(select(IncidentEvent).where(IncidentEvent.kind == "note")).all()
        assert [(n.actor, n.message) for n in notes] == [("alice", "restarted php-fpm [15 min]")]


def test_a_viewer_sees_but_cannot_act(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    # the role comes from the operators file, as the API's does
    operators.set_operator(Path(page.cfg.operator_tokens_file), "alice", role="viewer")
    page.sign_in()
    incident = open_incident(page)
    detail = page.client.get(f"/ui/incidents/{incident}")
    assert detail.status_code == 200 and "portal down" in detail.text
    for button in ('id="ack"', 'id="resolve"', 'id="add-note"'):
        assert button not in detail.text
    assert 'id="start-run"' not in page.client.get("/ui/runs").text
    assert 'id="add-window"' not in page.client.get("/ui/windows").text
    csrf = page.csrf()
    assert page.client.post(f"/ui/incidents/{incident}/ack", data={"csrf": csrf}).status_code == 403
    assert page.client.get("/ui/runs/new").status_code == 403
    started = page.client.post("/ui/runs",
                               data={"csrf": csrf, "host": "web1", "playbook": "bitrix-modules-update"})
    assert started.status_code == 403
    window = page.client.post("/ui/windows", data={
        "csrf": csrf, "name": "w", "target": "web1", "cron": "0 3 * * 6", "playbook": "bitrix-modules-update",
        "duration_minutes": "60"})
    assert window.status_code == 403
    with page.db.read_session() as s:
        assert s.get(Incident, incident).status == "open"  # type: ignore[union-attr]


def test_a_client_scoped_operator_sees_only_their_clients(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    operators.set_operator(Path(page.cfg.operator_tokens_file), "alice", role="operator",
                           clients=frozenset({"acme"}))
    page.sign_in()
    other = open_incident(page, host="db1", summary="globex db down")
    fleet = page.client.get("/ui/").text
    assert "web1" in fleet and "db1" not in fleet and "globex" not in fleet
    assert page.client.get("/ui/hosts/db1").status_code == 404
    assert page.client.get(f"/ui/incidents/{other}").status_code == 404
    assert "globex db down" not in page.client.get("/ui/incidents").text
    ack = page.client.post(f"/ui/incidents/{other}/ack", data={"csrf": page.csrf()})
    assert ack.status_code == 404


def test_language_from_the_browser_and_the_switch(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    ru = page.client.get("/ui/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"})
    assert '<html lang="ru">' in ru.text and "Парк серверов" in ru.text
    en = page.client.get("/ui/", headers={"Accept-Language": "de-DE,en;q=0.5"})
    assert '<html lang="en">' in en.text and "Next update window" in en.text
    switched = page.client.get("/ui/lang/ru?next=/ui/incidents", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/ui/incidents"
    after = page.client.get("/ui/incidents", headers={"Accept-Language": "en"})
    assert '<html lang="ru">' in after.text and "Инциденты" in after.text


def test_fleet_filters_and_states(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.clock.now = time.time()
    report = make_report("web1", 1, checks=2, statuses={"check_1": 2})
    r = page.client.post("/api/v1/reports", content=to_json(report),
                         headers={"Authorization": f"Bearer {page.agent_tokens['web1']}",
                                  "Content-Type": "application/json"})
    assert r.status_code in (200, 202), r.text
    page.sign_in()
    critical = page.client.get("/ui/?state=critical").text
    assert 'data-host="web1"' in critical and 'data-host="db1"' not in critical
    assert "check_1" in critical  # the failing check is named
    by_client = page.client.get("/ui/fleet/fragment?client=globex").text
    assert 'data-host="db1"' in by_client and 'data-host="web1"' not in by_client
    host = page.client.get("/ui/hosts/web1").text
    assert "check_1 of web1 at seq 1" in host and 'data-check="check_0"' in host


def test_the_host_page_draws_load_memory_and_disk_from_the_agents_own_samples(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    """Samples as this machine's agent collects them (its real collectors, psutil); the load
    average is set per report so the last value is known. The stored report keeps the three figures
    (not the samples), and the host page draws a line of each over the reports."""
    import dataclasses

    import psutil

    from agent.collectors import HostSampler
    from agent.collectors.registry import HostSources, build_collectors

    collected = HostSampler(build_collectors(HostSources(psutil)), max_age=0).samples()
    names = {s.name for s in collected}
    assert {"boxkeeper_load1", "boxkeeper_memory_used_bytes", "boxkeeper_filesystem_avail_bytes"} <= names
    page = make_ui(tmp_path)
    for seq, load in ((1, 0.5), (2, 1.25), (3, 3.75)):
        samples = tuple(dataclasses.replace(s, value=load) if s.name == "boxkeeper_load1" else s
                        for s in collected)
        report = dataclasses.replace(make_report("web1", seq, checks=1), samples=samples)
        r = page.client.post("/api/v1/reports", content=to_json(report),
                             headers={"Authorization": f"Bearer {page.agent_tokens['web1']}",
                                      "Content-Type": "application/json"})
        assert r.status_code in (200, 202), r.text
    page.sign_in()
    host = page.client.get("/ui/hosts/web1").text
    assert host.count('<figure class="spark">') == 3
    assert "<b>3.75</b>" in host  # the load's last value
    points = host.split('points="')[1].split('"')[0].split()
    assert len(points) == 3 and points[0].startswith("0.0,") and points[-1].startswith("100.0,")
    memory = 100.0 * next(s.value for s in collected if s.name == "boxkeeper_memory_used_bytes") / next(
        s.value for s in collected if s.name == "boxkeeper_memory_total_bytes")
    assert f"<b>{round(memory, 2):.1f}%</b>" in host


def test_a_bad_form_is_a_page_naming_the_field(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    bad = page.client.post("/ui/windows", data={"csrf": page.csrf(), "name": "w1", "target": "client:acme",
                                                "playbook": "bitrix-modules-update", "cron": "0 3 * * 6",
                                                "duration_minutes": "soon"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert "duration_minutes" in bad.text and bad.headers["x-frame-options"] == "DENY"
    cron = page.client.post("/ui/windows", data={"csrf": page.csrf(), "name": "w1", "target": "client:acme",
                                                 "playbook": "bitrix-modules-update", "cron": "0 25 * * *",
                                                 "duration_minutes": "60"})
    assert cron.status_code == 422 and "cron" in cron.text
    api = page.client.get("/api/v1/incidents?limit=0", headers={"Authorization": f"Bearer {page.token}"})
    assert api.status_code == 422 and api.headers["content-type"] == "application/json"  # API: unchanged
    ok = page.client.post("/ui/windows", data={"csrf": page.csrf(), "name": "w1", "target": "client:acme",
                                               "playbook": "bitrix-modules-update", "cron": "0 3 * * 6",
                                               "duration_minutes": "60"}, follow_redirects=True)
    assert ok.status_code == 200 and 'data-window="w1"' in ok.text and "Europe/Moscow" in ok.text


def test_the_confirmation_refuses_what_the_run_would_refuse(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    form = page.client.get("/ui/runs/new")
    assert "bitrix-modules-update" in form.text
    # web1 has no SSH address in this config: it is not offered, and refused when sent anyway
    assert 'value="web1"' not in form.text
    refused = page.client.post("/ui/runs/confirm", data={"csrf": page.csrf(), "host": "web1",
                                                         "playbook": "bitrix-modules-update"})
    assert refused.status_code == 422 and "ssh.address" in refused.text
    unknown = page.client.post("/ui/runs/confirm", data={"csrf": page.csrf(), "host": "web1",
                                                         "playbook": "no-such-book"})
    assert unknown.status_code == 422 and "playbook: expected one of" in unknown.text
