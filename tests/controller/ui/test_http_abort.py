"""Aborting a run from its page, over HTTP (a real uvicorn, httpx): the button only on a going run
and only for an operator of its client, the confirmation naming host and playbook, CSRF, "abort
requested by" until the engine takes it, refusal of an ended run, both languages. What the engine
then does with the request is tested on a real box in tests/controller/workflows/test_run_abort.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from controller import operators
from controller.workflows import runs as store
from controller.workflows.runs import RunSummary
from controller.workflows.state import RunState
from tests.controller.ui.support import Page

PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "bitrix-modules-update.yaml"


def going_run(page: Page, host: str = "web1", state: RunState = RunState.BACKUP) -> int:
    """A run another process drives, recorded as it is while its backup goes."""
    run_id = store.create_run(page.db.session, host=host, playbook="bitrix-modules-update",
                              playbook_path=str(PLAYBOOK), variables={}, dry_run=False, now=page.clock(),
                              started_by="cli:anna")
    with page.db.session() as s:
        store.get_run(s, run_id).state = state.value
    return run_id


def run_of(page: Page, run_id: int) -> RunSummary:
    with page.db.read_session() as s:
        return store.summary(s, run_id, with_timeline=False)


def test_an_operator_aborts_a_going_run_after_a_confirmation(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    operators.set_operator(Path(page.cfg.operator_tokens_file), "alice", role="operator")
    page.sign_in()
    run_id = going_run(page)
    shown = page.client.get(f"/ui/runs/{run_id}")
    assert shown.status_code == 200 and 'id="run-abort"' in shown.text
    assert page.client.get(f"/ui/runs/{run_id}/fragment").text.count('id="run-abort"') == 1  # live part

    confirm = page.client.get(f"/ui/runs/{run_id}/abort")
    assert confirm.status_code == 200
    assert re.search(r'id="abort-host">web1<', confirm.text)
    assert re.search(r'id="abort-playbook">bitrix-modules-update<', confirm.text)
    assert "nothing changed" in confirm.text and "rolled back" in confirm.text
    assert run_of(page, run_id).abort_requested_by is None  # looking at the confirmation asks nothing

    assert page.client.post(f"/ui/runs/{run_id}/abort", data={}).status_code == 403  # no CSRF token
    assert page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": "guess"}).status_code == 403
    assert run_of(page, run_id).abort_requested_by is None

    done = page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": page.csrf(f"/ui/runs/{run_id}/abort")},
                            follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/runs/{run_id}"
    run = run_of(page, run_id)
    assert run.abort_requested_by == "alice" and run.abort_requested_at == page.clock()
    after = page.client.get(f"/ui/runs/{run_id}")
    assert 'id="abort-requested"' in after.text and "Abort requested by: alice" in after.text
    assert 'id="run-abort"' not in after.text  # asked once; the engine takes it at the next step boundary

    ru = page.client.get(f"/ui/runs/{run_id}", headers={"Accept-Language": "ru"})
    assert "Прерывание запросил: alice" in ru.text

    with page.db.session() as s:  # the engine took it and the run ended
        row = store.get_run(s, run_id)
        row.state, row.aborted_at, row.finished_at = "ABORTED", page.clock(), page.clock()
    ended = page.client.get(f"/ui/runs/{run_id}")
    assert 'id="abort-taken"' in ended.text and "Aborted by: alice" in ended.text
    assert 'id="run-abort"' not in ended.text
    refused = page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": page.csrf()})
    assert refused.status_code == 409 and "has ended (ABORTED)" in refused.text
    assert page.client.get(f"/ui/runs/{run_id}/abort").status_code == 409


def test_a_rolling_back_run_offers_no_abort(tmp_path: Path, make_ui: Callable[..., Page]) -> None:
    page = make_ui(tmp_path)
    page.sign_in()
    run_id = going_run(page, state=RunState.ROLLBACK)
    assert 'id="run-abort"' not in page.client.get(f"/ui/runs/{run_id}").text
    refused = page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": page.csrf()})
    assert refused.status_code == 409 and "rolling back already" in refused.text
    assert run_of(page, run_id).abort_requested_by is None


def test_a_viewer_and_an_operator_of_another_client_cannot_abort(
    tmp_path: Path, make_ui: Callable[..., Page]
) -> None:
    page = make_ui(tmp_path)
    path = Path(page.cfg.operator_tokens_file)
    operators.set_operator(path, "alice", role="viewer")
    page.sign_in()
    run_id = going_run(page)
    shown = page.client.get(f"/ui/runs/{run_id}")
    assert shown.status_code == 200 and 'id="run-abort"' not in shown.text
    assert page.client.get(f"/ui/runs/{run_id}/abort").status_code == 403
    assert page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": page.csrf()}).status_code == 403
    operators.set_operator(path, "alice", role="operator", clients=frozenset({"globex"}))  # web1 is acme's
    assert page.client.get(f"/ui/runs/{run_id}").status_code == 404
    assert page.client.post(f"/ui/runs/{run_id}/abort", data={"csrf": page.csrf()}).status_code == 404
    assert run_of(page, run_id).abort_requested_by is None
