"""The pages of the features merged after the page (issue #19): the monthly report, release holds,
disabling a window, rollouts. Over HTTP on a real uvicorn, like test_http.py."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from controller import operators
from controller.alerting import incidents as service
from controller.workflows import releases, rollouts
from controller.workflows.models import UpdateWindow, WorkflowRun
from controller.workflows.rollout_models import Rollout
from controller.workflows.window_changes import WindowChange
from controller.workflows.windows import add_window
from tests.controller.ui.support import Page


def _role(page: Page, role: str, clients: frozenset[str] | None = None) -> None:
    operators.set_operator(Path(page.cfg.operator_tokens_file), "alice", role=role, clients=clients)


def test_the_monthly_report_of_a_client_and_its_form(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    _role(page, "viewer", frozenset({"acme"}))
    page.sign_in()
    with page.db.session() as s:  # the clock is 2027-01-15 08:00 UTC
        service.open_incident(s, host="web1", key="check:web1:portal", cause="check", severity="critical",
                              summary="portal down: HTTP 502", now=page.clock())
    assert 'href="/ui/reports"' in page.client.get("/ui/").text  # in the navigation bar
    form = page.client.get("/ui/reports")
    assert form.status_code == 200 and 'value="2027-01"' in form.text
    assert '<option value="acme">' in form.text and "globex" not in form.text
    picked = page.client.get("/ui/reports", params={"client": "acme", "month": "2027-01"},
                             follow_redirects=False)
    assert picked.status_code == 303 and picked.headers["location"] == "/ui/clients/acme/report?month=2027-01"
    report = page.client.get("/ui/clients/acme/report", params={"month": "2027-01"})
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Monthly report: acme — 2027-01" in report.text and "portal down: HTTP 502" in report.text
    csp = report.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert report.headers["cache-control"] == "no-store" and "<script" not in report.text
    # another client's report is not there for this viewer; nor is a client nobody has
    assert page.client.get("/ui/clients/globex/report", params={"month": "2027-01"}).status_code == 404
    assert page.client.get("/ui/clients/nobody/report", params={"month": "2027-01"}).status_code == 404
    bad = page.client.get("/ui/clients/acme/report", params={"month": "2027-13"})
    assert bad.status_code == 422 and "YYYY-MM" in bad.text


def _held(page: Page) -> int:
    with page.db.session() as s:
        found, _ = releases.hold(s, playbook="bitrix-modules-update", release="main=24.100.0",
                                 actor="cli:bob",
                                 now=page.clock(), reason="verify failed on web1")
        return found.id


def _state(page: Page, hold_id: int) -> tuple[str, str | None]:
    with page.db.read_session() as s:
        row = s.get(releases.ReleaseHold, hold_id)
        assert row is not None
        return row.state, row.released_by


def test_release_holds_listed_and_released_by_an_admin_of_every_client(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    hold_id = _held(page)
    page.sign_in()  # alice: admin of every client
    listed = page.client.get("/ui/holds")
    assert listed.status_code == 200 and 'href="/ui/holds"' in listed.text
    assert "main=24.100.0" in listed.text and "verify failed on web1" in listed.text
    assert f'id="release-{hold_id}"' in listed.text
    assert page.client.post(f"/ui/holds/{hold_id}/release", data={}).status_code == 403  # no CSRF
    assert page.client.post(f"/ui/holds/{hold_id}/release", data={"csrf": "guess"}).status_code == 403
    assert _state(page, hold_id) == ("held", None)
    done = page.client.post(f"/ui/holds/{hold_id}/release", data={"csrf": page.csrf()},
                            follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ui/holds"
    assert _state(page, hold_id) == ("released", "alice")
    assert "main=24.100.0" not in page.client.get("/ui/holds").text  # held ones only, by default
    assert "main=24.100.0" in page.client.get("/ui/holds", params={"show": "all"}).text
    again = page.client.post(f"/ui/holds/{hold_id}/release", data={"csrf": page.csrf()})
    assert again.status_code == 404
    assert page.client.post("/ui/holds/999/release", data={"csrf": page.csrf()}).status_code == 404


def test_a_viewer_or_a_client_scoped_admin_cannot_release_a_hold(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    hold_id = _held(page)
    for role, clients in (("viewer", None), ("operator", None), ("admin", frozenset({"acme", "globex"}))):
        _role(page, role, clients)
        page.sign_in()
        listed = page.client.get("/ui/holds")
        assert listed.status_code == 200 and "main=24.100.0" in listed.text  # everyone may read it
        assert f'id="release-{hold_id}"' not in listed.text
        refused = page.client.post(f"/ui/holds/{hold_id}/release", data={"csrf": page.csrf()})
        assert refused.status_code == 403, (role, clients)
        assert _state(page, hold_id) == ("held", None)


def _window(page: Page, name: str, target: str) -> None:
    with page.db.session() as s:
        add_window(s, name=name, target=target, playbook="bitrix-modules-update", cron="0 3 * * 6",
                   duration_minutes=120, timezone="Europe/Moscow", variables={}, now=page.clock(),
                   actor="cli:bob")


def _enabled(page: Page, name: str) -> bool:
    with page.db.read_session() as s:
        row = s.scalars(select(UpdateWindow).where(UpdateWindow.name == name)).one()
        return row.enabled


def test_an_admin_disables_and_enables_a_window(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    _window(page, "acme-sat", "client:acme")
    page.sign_in()
    listed = page.client.get("/ui/windows").text
    assert 'id="disable-acme-sat"' in listed
    assert page.client.post("/ui/windows/acme-sat/disable", data={"csrf": "x"}).status_code == 403
    assert _enabled(page, "acme-sat")
    off = page.client.post("/ui/windows/acme-sat/disable", data={"csrf": page.csrf()}, follow_redirects=False)
    assert off.status_code == 303 and not _enabled(page, "acme-sat")
    assert 'id="enable-acme-sat"' in page.client.get("/ui/windows").text
    on = page.client.post("/ui/windows/acme-sat/enable", data={"csrf": page.csrf()}, follow_redirects=False)
    assert on.status_code == 303 and _enabled(page, "acme-sat")
    with page.db.read_session() as s:  # recorded with who did it, as the CLI's and the API's
        changes = s.scalars(select(WindowChange).order_by(WindowChange.id)).all()
        assert [(c.action, c.actor) for c in changes] == [("add", "cli:bob"), ("disable", "alice"),
                                                          ("enable", "alice")]
    added = page.client.post("/ui/windows", data={
        "csrf": page.csrf(), "name": "web1-sun", "target": "web1", "cron": "0 4 * * 0",
        "playbook": "bitrix-modules-update", "duration_minutes": "60"}, follow_redirects=False)
    assert added.status_code == 303
    with page.db.read_session() as s:  # a window added on the page is recorded as its operator's
        row = s.scalars(select(WindowChange).where(WindowChange.window_name == "web1-sun")).one()
        assert (row.action, row.actor) == ("add", "alice")
    assert page.client.post("/ui/windows/nope/disable", data={"csrf": page.csrf()}).status_code == 404
    assert page.client.post("/ui/windows/acme-sat/toggle", data={"csrf": page.csrf()}).status_code == 404


def test_an_operator_cannot_disable_a_window_nor_see_another_clients(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    _window(page, "acme-sat", "client:acme")
    _window(page, "globex-db", "db1")
    _role(page, "operator")
    page.sign_in()
    listed = page.client.get("/ui/windows").text
    assert "acme-sat" in listed and 'id="disable-acme-sat"' not in listed
    assert page.client.post("/ui/windows/acme-sat/disable", data={"csrf": page.csrf()}).status_code == 403
    _role(page, "admin", frozenset({"acme"}))
    page.sign_in()
    listed = page.client.get("/ui/windows").text
    assert 'id="disable-acme-sat"' in listed and "globex-db" not in listed
    assert page.client.post("/ui/windows/globex-db/disable", data={"csrf": page.csrf()}).status_code == 404
    assert _enabled(page, "acme-sat") and _enabled(page, "globex-db")


def _rollout(page: Page, hosts: list[str], client: str | None) -> int:
    with page.db.session() as s:
        return rollouts.create_rollout(s, rollouts.make_plan(hosts), playbook="bitrix-modules-update",
                                       started_by="cli:bob", client=client, now=page.clock())


def _control(page: Page, rollout_id: int) -> tuple[str, str | None, str]:
    with page.db.read_session() as s:
        row = s.get(Rollout, rollout_id)
        assert row is not None
        return row.state, row.control, row.detail


def test_rollouts_listed_shown_and_steered_by_an_operator_of_their_client(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    mine = _rollout(page, ["web1"], "acme")
    theirs = _rollout(page, ["db1"], "globex")
    both = _rollout(page, ["web1", "db1"], None)
    _role(page, "operator", frozenset({"acme"}))
    page.sign_in()
    listed = page.client.get("/ui/rollouts")
    assert listed.status_code == 200 and 'href="/ui/rollouts"' in listed.text
    assert f'href="/ui/rollouts/{mine}"' in listed.text
    for hidden in (theirs, both):  # a rollout is seen when all its hosts are of the operator's clients
        assert f'href="/ui/rollouts/{hidden}"' not in listed.text
        assert page.client.get(f"/ui/rollouts/{hidden}").status_code == 404
        assert page.client.post(f"/ui/rollouts/{hidden}/pause", data={"csrf": page.csrf()}).status_code == 404
    detail = page.client.get(f"/ui/rollouts/{mine}")
    assert detail.status_code == 200 and "web1" in detail.text and "cli:bob" in detail.text
    assert 'id="rollout-pause"' in detail.text and 'id="rollout-abort"' in detail.text
    assert page.client.post(f"/ui/rollouts/{mine}/pause", data={}).status_code == 403  # no CSRF
    assert _control(page, mine)[1] is None
    paused = page.client.post(f"/ui/rollouts/{mine}/pause", data={"csrf": page.csrf()})
    assert paused.status_code == 303 and paused.headers["location"] == f"/ui/rollouts/{mine}"
    state, control, log = _control(page, mine)
    assert (state, control) == ("RUNNING", "pause") and "(by alice)" in log
    assert "(by alice)" in page.client.get(f"/ui/rollouts/{mine}").text  # the log is on the page
    resumed = page.client.post(f"/ui/rollouts/{mine}/resume", data={"csrf": page.csrf()})
    assert resumed.status_code == 303 and _control(page, mine)[1] is None
    refused = page.client.post(f"/ui/rollouts/{mine}/resume", data={"csrf": page.csrf()})
    assert refused.status_code == 409 and "not paused" in refused.text
    page.client.post(f"/ui/rollouts/{mine}/abort", data={"csrf": page.csrf()})
    assert _control(page, mine)[1] == "abort"
    with page.db.session() as s:  # the driver ends it
        row = s.get(Rollout, mine)
        assert row is not None
        row.state = rollouts.ABORTED
    ended = page.client.get(f"/ui/rollouts/{mine}").text
    assert "ABORTED" in ended and 'id="rollout-pause"' not in ended
    assert page.client.post(f"/ui/rollouts/{mine}/pause", data={"csrf": page.csrf()}).status_code == 409
    assert page.client.post(f"/ui/rollouts/{mine}/stop", data={"csrf": page.csrf()}).status_code == 404
    assert page.client.post("/ui/rollouts/999/pause", data={"csrf": page.csrf()}).status_code == 404


def test_a_viewer_sees_a_rollout_but_cannot_steer_it(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    rollout_id = _rollout(page, ["web1", "db1"], None)
    _role(page, "viewer")
    page.sign_in()
    assert f'href="/ui/rollouts/{rollout_id}"' in page.client.get("/ui/rollouts").text
    detail = page.client.get(f"/ui/rollouts/{rollout_id}").text
    assert "db1" in detail and 'id="rollout-pause"' not in detail and 'id="rollout-abort"' not in detail
    for verb in ("pause", "resume", "abort"):
        refused = page.client.post(f"/ui/rollouts/{rollout_id}/{verb}", data={"csrf": page.csrf()})
        assert refused.status_code == 403, verb
    assert _control(page, rollout_id)[:2] == ("RUNNING", None)


def test_a_holds_texts_are_escaped(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    evil = "<script>alert(1)</script>"
    with page.db.session() as s:
        releases.hold(s, playbook="bitrix-modules-update", release=f"main={evil}", actor="cli:bob",
                      now=page.clock(), reason=f"verify failed: {evil}")
    page.sign_in()
    listed = page.client.get("/ui/holds").text
    assert evil not in listed and "verify failed: &lt;script&gt;alert(1)&lt;/script&gt;" in listed


# ------------------------------------------------------------------- starting a rollout, holding by hand

#: every host has an SSH address (nothing listens there: the rollout's canary run fails to connect)
SSH_CLIENTS = {"clients": [
    {"name": "acme", "timezone": "Europe/Moscow", "hosts": [
        {"name": "web1", "ssh": {"address": "127.0.2.251:9"}, "portal_url": "http://127.0.2.251:9/"},
        {"name": "web2", "ssh": {"address": "127.0.2.252:9"}, "portal_url": "http://127.0.2.252:9/"}]},
    {"name": "globex", "hosts": [
        {"name": "db1", "ssh": {"address": "127.0.2.253:9"}, "portal_url": "http://127.0.2.253:9/"}]},
]}
HOSTS = (("web1", "acme"), ("web2", "acme"), ("db1", "globex"))


def _rollout_rows(page: Page) -> list[tuple[str, str, str | None, list[str]]]:
    """(playbook, started_by, client, hosts in order) of every recorded rollout."""
    with page.db.read_session() as s:
        out = []
        for rollout_id in s.scalars(select(Rollout.id).order_by(Rollout.id)):
            found = rollouts.summary(s, rollout_id)
            out.append((found.playbook, found.started_by, found.client, [h.host for h in found.hosts]))
        return out


def _wait_ended(page: Page, rollout_id: int) -> str:
    """The rollout runs in the controller's thread: let it end before the test's database goes."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with page.db.read_session() as s:
            row = s.get(Rollout, rollout_id)
            assert row is not None
            if row.state in rollouts.ENDED:
                return row.state
        time.sleep(0.2)
    raise AssertionError(f"rollout {rollout_id} did not end in 120 s")


def _confirm(page: Page, **form: str | list[str]) -> Any:
    data: dict[str, str | list[str]] = {"csrf": page.csrf(), "playbook": "bitrix-modules-update",
                                        "batch_size": "1", "max_failures": "0", **form}
    return page.client.post("/ui/rollouts/confirm", data=data)


def test_an_operator_starts_a_rollout_after_a_confirmation_naming_hosts_and_playbook(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path, hosts=HOSTS, config=SSH_CLIENTS)
    _role(page, "operator", frozenset({"acme"}))
    page.sign_in()
    assert 'id="start-rollout"' in page.client.get("/ui/rollouts").text
    form = page.client.get("/ui/rollouts/new").text
    assert 'name="hosts" value="web1"' in form and 'name="hosts" value="web2"' in form
    assert "db1" not in form and "globex" not in form  # another client's hosts are not offered
    no_csrf = {"playbook": "bitrix-modules-update", "scope": "client", "client": "acme"}
    assert page.client.post("/ui/rollouts/confirm", data=no_csrf).status_code == 403
    shown = _confirm(page, scope="client", client="acme", canary="web2", batch_size="1", max_failures="1",
                     variables="php=/usr/bin/php8.2")
    assert shown.status_code == 200, shown.text
    # the confirmation names the playbook and the hosts in the order they will run, the canary first
    assert re.search(r'id="confirm-playbook">bitrix-modules-update<', shown.text)
    batches = re.findall(r'data-batch="(\d+)">(.*?)</li>', shown.text, re.S)
    assert [(n, re.findall(r'data-host="([^"]+)"', text)) for n, text in batches] == [
        ("0", ["web2"]), ("1", ["web1"])]
    assert "Canary" in shown.text or "canary" in shown.text
    assert _rollout_rows(page) == []  # nothing started before the confirmation
    hidden = dict(re.findall(r'type="hidden" name="(playbook|canary|batch_size|max_failures|variables)" '
                             r'value="([^"]*)"', shown.text))
    confirmed = {**hidden, "hosts": re.findall(r'type="hidden" name="hosts" value="([^"]+)"', shown.text)}
    assert page.client.post("/ui/rollouts", data={**confirmed, "csrf": "guess"}).status_code == 403
    assert _rollout_rows(page) == []
    started = page.client.post("/ui/rollouts", data={**confirmed, "csrf": page.csrf()},
                               follow_redirects=False)
    assert started.status_code == 303
    rollout_id = int(started.headers["location"].rsplit("/", 1)[-1])
    assert started.headers["location"] == f"/ui/rollouts/{rollout_id}"
    # recorded as POST /api/v1/rollouts records it: the operator as started_by
    assert _rollout_rows(page) == [("bitrix-modules-update", "alice", "acme", ["web2", "web1"])]
    with page.db.read_session() as s:
        row = s.get(Rollout, rollout_id)
        assert row is not None and (row.canary, row.batch_size, row.max_failures) == ("web2", 1, 1)
    detail = page.client.get(f"/ui/rollouts/{rollout_id}").text
    assert "alice" in detail and 'data-host="web2"' in detail
    # nothing answers SSH at these addresses: the canary fails and the rollout stops there
    assert _wait_ended(page, rollout_id) == rollouts.STOPPED
    with page.db.read_session() as s:
        run = s.scalars(select(WorkflowRun).order_by(WorkflowRun.id)).first()
        assert run is not None and (run.host, run.started_by) == ("web2", "alice")


def test_a_client_scoped_operator_cannot_start_a_rollout_on_another_clients_host(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path, hosts=HOSTS, config=SSH_CLIENTS)
    _role(page, "operator", frozenset({"acme"}))
    page.sign_in()
    mixed = _confirm(page, scope="hosts", hosts=["web1", "db1"])
    assert mixed.status_code == 403 and "alice may not start a rollout on db1 (" in mixed.text  # db1 alone
    direct = page.client.post("/ui/rollouts", data={"csrf": page.csrf(), "playbook": "bitrix-modules-update",
                                                    "hosts": ["db1"], "batch_size": "1", "max_failures": "0"})
    assert direct.status_code == 403 and "db1" in direct.text
    assert _confirm(page, scope="client", client="globex").status_code == 422  # not a client it sees
    everything = _confirm(page, scope="all")  # "all": every host of its clients, as the API's
    assert everything.status_code == 200
    assert re.findall(r'class="confirm-host" data-host="([^"]+)"', everything.text) == ["web1", "web2"]
    bad = _confirm(page, scope="hosts", hosts=["web1"], batch_size="0")
    assert bad.status_code == 422 and "batch size" in bad.text
    assert _rollout_rows(page) == []


def test_a_viewer_never_sees_the_rollout_form_and_is_refused(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path, hosts=HOSTS, config=SSH_CLIENTS)
    _role(page, "viewer")
    page.sign_in()
    assert 'id="start-rollout"' not in page.client.get("/ui/rollouts").text
    assert page.client.get("/ui/rollouts/new").status_code == 403
    assert _confirm(page, scope="all").status_code == 403
    started = page.client.post("/ui/rollouts", data={
        "csrf": page.csrf(), "playbook": "bitrix-modules-update", "hosts": ["web1"], "batch_size": "1",
        "max_failures": "0"})
    assert started.status_code == 403
    assert _rollout_rows(page) == []


def test_an_admin_holds_a_release_by_hand_and_others_are_refused(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    page.sign_in()  # alice: admin of every client
    listed = page.client.get("/ui/holds").text
    assert 'id="hold-form"' in listed and '<option value="bitrix-modules-update">' in listed
    form = {"playbook": "bitrix-modules-update", "release": "main=24.200.0 iblock=24.100.0",
            "reason": "breaks the CRM on 24.200"}
    assert page.client.post("/ui/holds", data=form).status_code == 403  # no CSRF
    held = page.client.post("/ui/holds", data={**form, "csrf": page.csrf()}, follow_redirects=False)
    assert held.status_code == 303 and held.headers["location"] == "/ui/holds"
    with page.db.read_session() as s:  # recorded as `releases hold` records it: the words sorted, who held it
        holds = releases.list_holds(s)
        assert [(h.playbook, h.release, h.reason, h.held_by, h.run_id) for h in holds] == [
            ("bitrix-modules-update", "iblock=24.100.0 main=24.200.0", form["reason"], "alice", None)]
        hold_id = holds[0].id
    listed = page.client.get("/ui/holds").text
    assert "iblock=24.100.0 main=24.200.0" in listed and "breaks the CRM on 24.200" in listed
    assert f'id="release-{hold_id}"' in listed  # and releasable
    again = page.client.post("/ui/holds", data={**form, "csrf": page.csrf(), "reason": ""})
    assert again.status_code == 303  # held already: the hold is kept as it was
    with page.db.read_session() as s:
        assert [h.reason for h in releases.list_holds(s, include_released=True)] == [form["reason"]]
    empty = page.client.post("/ui/holds", data={**form, "release": "  ", "csrf": page.csrf()})
    assert empty.status_code == 422 and "release" in empty.text
    page.client.post(f"/ui/holds/{hold_id}/release", data={"csrf": page.csrf()})
    assert _state(page, hold_id) == ("released", "alice")
    for role, clients in (("operator", None), ("admin", frozenset({"acme", "globex"})), ("viewer", None)):
        _role(page, role, clients)
        page.sign_in()
        assert 'id="hold-form"' not in page.client.get("/ui/holds").text
        refused = page.client.post("/ui/holds", data={**form, "release": "main=1.0", "csrf": page.csrf()})
        assert refused.status_code == 403, (role, clients)
    with page.db.read_session() as s:
        assert len(releases.list_holds(s, include_released=True)) == 1


def test_the_incidents_list_refreshes_its_rows(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    _role(page, "operator", frozenset({"acme"}))
    page.sign_in()
    listed = page.client.get("/ui/incidents", params={"host": "web1"}).text
    assert 'data-refresh="/ui/incidents/fragment?show=open&amp;host=web1"' in listed
    assert "portal down" not in listed
    with page.db.session() as s:  # opened after the page was drawn
        service.open_incident(s, host="web1", key="check:web1:portal", cause="check", severity="critical",
                              summary="portal down: HTTP 502", now=page.clock())
        service.open_incident(s, host="db1", key="check:db1:mysql", cause="check", severity="critical",
                              summary="globex mysql down", now=page.clock())
    rows = page.client.get("/ui/incidents/fragment", params={"show": "open", "host": "web1"})
    assert rows.status_code == 200 and "portal down: HTTP 502" in rows.text and "<html" not in rows.text
    everything = page.client.get("/ui/incidents/fragment").text
    assert "portal down" in everything and "globex mysql down" not in everything  # its clients only
    page.client.cookies.clear()
    assert page.client.get("/ui/incidents/fragment").status_code == 401  # ui.js reloads to the sign-in


def test_an_admin_changes_a_windows_hosts_and_schedule(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    _window(page, "acme-sat", "client:acme")
    _window(page, "globex-db", "db1")
    _role(page, "admin", frozenset({"acme"}))
    page.sign_in()
    assert 'id="edit-acme-sat"' in page.client.get("/ui/windows").text
    form = page.client.get("/ui/windows/acme-sat/edit").text
    assert 'value="0 3 * * 6"' in form and '<option value="client:acme" selected>' in form
    assert "client:globex" not in form  # another client's hosts are not offered
    change = {"target": "web1", "playbook": "bitrix-modules-update", "cron": "30 2 * * 0",
              "duration_minutes": "90", "timezone": "Europe/Moscow"}
    assert page.client.post("/ui/windows/acme-sat/edit", data=change).status_code == 403  # no CSRF
    done = page.client.post("/ui/windows/acme-sat/edit", data={**change, "csrf": page.csrf()},
                            follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ui/windows"
    with page.db.read_session() as s:
        row = s.scalars(select(UpdateWindow).where(UpdateWindow.name == "acme-sat")).one()
        assert (row.target, row.cron, row.duration_minutes) == ("web1", "30 2 * * 0", 90)
        edit = s.scalars(select(WindowChange).where(WindowChange.action == "edit")).one()
        assert edit.actor == "alice" and "30 2 * * 0" in str(edit.changes)  # recorded as the API's PATCH
    bad = page.client.post("/ui/windows/acme-sat/edit", data={**change, "cron": "0 25 * * *",
                                                             "csrf": page.csrf()})
    assert bad.status_code == 422 and "cron" in bad.text
    moved = page.client.post("/ui/windows/acme-sat/edit",
                             data={**change, "target": "db1", "csrf": page.csrf()})
    assert moved.status_code == 403  # onto another client's host
    assert page.client.get("/ui/windows/globex-db/edit").status_code == 404
    other = page.client.post("/ui/windows/globex-db/edit", data={**change, "csrf": page.csrf()})
    assert other.status_code == 404
    _role(page, "operator")
    page.sign_in()
    assert 'id="edit-acme-sat"' not in page.client.get("/ui/windows").text
    assert page.client.get("/ui/windows/acme-sat/edit").status_code == 403
    refused = page.client.post("/ui/windows/acme-sat/edit", data={**change, "csrf": page.csrf()})
    assert refused.status_code == 403
