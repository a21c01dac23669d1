"""An operator's abort on a scripted host: read at step boundaries, ABORTED before the update, the
rollback path once the update phase has begun, a rollback never cut short, an ended run refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.store.db import Database
from controller.workflows import aborts
from controller.workflows.engine import Engine
from controller.workflows.errors import RunStateError
from controller.workflows.loader import load_playbook
from controller.workflows.state import EXIT_CODES, RunState
from tests.controller.workflows.conftest import RecordingIncidents
from tests.controller.workflows.fakes import FakeExecutor
from tests.controller.workflows.test_engine import healthy_host, states


def abort_while(store: Database, ex: FakeExecutor, pattern: str, who: str = "cli:anna") -> list[str]:
    """While the command matching ``pattern`` runs on the host, ``who`` asks to abort run 1 (as
    another process would); what the request said is appended to the returned list."""
    said: list[str] = []

    def respond(_command: str) -> tuple[int, str, str]:
        with store.session() as s:
            said.append(aborts.request_abort(s, 1, actor=who, now=time.time()))
        return (0, "backup ok\n" if "verify-backup" in pattern else "", "")

    ex.on(pattern, respond, once=True)
    return said


def engine(store: Database, incidents: RecordingIncidents) -> Engine:
    return Engine(store.session, incidents=incidents, sleep=lambda _s: None)


def test_abort_during_the_backup_ends_aborted_after_the_final_steps(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    ex = healthy_host()
    said = abort_while(store, ex, r"make-backup")
    result = engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ABORTED" and EXIT_CODES[RunState.ABORTED] == 7
    assert "nothing on the box has changed" in said[0]
    assert states(result) == ["LOCK", "PREFLIGHT", "BACKUP", "ABORTED"]
    assert ex.ran("verify-backup") == 0 and ex.ran("do-update") == 0 and ex.ran("restore") == 0
    assert ex.ran("^resume-cron") == 1 and ex.ran("rm -f") == 1  # finally steps, then the unlock
    assert result.failed_step == "backup/aborted by cli:anna"
    [note] = [e for e in result.timeline if e.name.startswith("aborted by")]
    assert "aborted by cli:anna" in note.name and note.phase == "BACKUP"
    assert incidents.opened == []  # not a failure of anything
    with store.session() as s:
        assert s.execute(text("select count(*) from workflow_host_leases")).scalar() == 0
        row = s.execute(text("select abort_requested_by, aborted_at from workflow_runs")).one()
    assert row[0] == "cli:anna" and row[1] is not None


def test_abort_during_the_update_rolls_back_and_holds_nothing(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    ex = healthy_host()
    said = abort_while(store, ex, r"do-update", who="ops-bob")
    result = engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert "rolls back" in said[0]
    assert result.state == "ROLLED_BACK"
    assert states(result)[-4:] == ["UPDATE", "ROLLBACK", "ROLLBACK_VERIFY", "ROLLED_BACK"]
    assert ex.ran("^version-moved") == 0 and ex.ran("restore /backup/run-1$") == 1
    assert ex.ran("^version-is 1.0$") == 1
    assert result.failed_step == "update/aborted by ops-bob"
    [incident] = incidents.opened
    assert incident.cause == "run_aborted" and incident.severity == "warning"
    assert "aborted by ops-bob" in incident.summary and "not held" in incident.summary
    with store.session() as s:
        assert s.execute(text("select count(*) from release_holds")).scalar() == 0


def test_abort_asked_during_the_last_verify_step_still_rolls_back(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    ex = healthy_host()
    abort_while(store, ex, r"^version-moved")
    result = engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ROLLED_BACK" and ex.ran("^version-is 1.0$") == 1


def test_a_rollback_is_never_cut_short_and_an_ended_run_is_refused(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    ex = healthy_host().on(r"do-update", (1, "UPD_ERROR\n", ""))
    refused: list[str] = []

    def respond(_command: str) -> tuple[int, str, str]:
        with store.session() as s, pytest.raises(RunStateError) as caught:
            aborts.request_abort(s, 1, actor="cli:anna", now=time.time())
        refused.append(str(caught.value))
        return (0, "", "")

    ex.on(r"restore /backup", respond, once=True)
    result = engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ROLLED_BACK" and result.failed_step == "update/update modules"
    assert "rolling back already" in refused[0]
    with store.session() as s, pytest.raises(RunStateError, match="has ended \\(ROLLED_BACK\\)"):
        aborts.request_abort(s, 1, actor="cli:anna", now=time.time())


def test_a_second_request_says_who_asked_first(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    ex = healthy_host()
    said = abort_while(store, ex, r"^check-disk")
    again: list[str] = []

    def respond(_command: str) -> tuple[int, str, str]:
        with store.session() as s:
            again.append(aborts.request_abort(s, 1, actor="ops-bob", now=time.time()))
        return (0, "VERSION=1.0\n", "")

    ex.on(r"^read-version", respond, once=True)
    # the first request is taken before "version before" runs: that step never runs
    result = engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ABORTED" and "requested by cli:anna" in said[0]
    assert again == [] and ex.ran("read-version") == 0 and ex.ran("pause-cron") == 0
    assert ex.ran("resume-cron") == 0  # no backup started: no final steps of the playbook
    assert ex.ran("rm -f") == 1
