"""Crash recovery: the controller dies (a BaseException no code catches) at each step boundary in turn;
a new engine reconciles the run from the store and the host, as DESIGN.md says."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.errors import ConnectError
from controller.workflows.loader import load_playbook
from tests.controller.workflows.conftest import RecordingIncidents
from tests.controller.workflows.fakes import Crash, FakeExecutor
from tests.controller.workflows.test_engine import healthy_host


@pytest.mark.parametrize(
    ("crash_at", "update_fails", "outcome", "expect_after"),
    [
        ("noclobber", False, "SUCCEEDED", ["^check-disk", "do-update"]),
        ("^read-version", False, "SUCCEEDED", ["^read-version", "do-update"]),
        ("make-backup", False, "SUCCEEDED", ["^read-password", "make-backup", "do-update"]),
        ("^verify-backup", False, "SUCCEEDED", ["make-backup", "^verify-backup", "do-update"]),
        ("do-update", False, "ROLLED_BACK", ["restore", "^version-is", "^resume-cron"]),
        ("^version-moved", False, "SUCCEEDED", ["^version-moved", "^resume-cron"]),
        ("restore", True, "ROLLED_BACK", ["restore", "^version-is", "^resume-cron"]),
        ("^version-is", True, "ROLLED_BACK", ["restore", "^version-is"]),
        ("^resume-cron", False, "SUCCEEDED", ["^resume-cron", "rm -f"]),
    ],
)
def test_restart_after_a_crash_finishes_the_run_safely(
    store: Database,
    incidents: RecordingIncidents,
    test_playbook_path: Path,
    crash_at: str,
    update_fails: bool,
    outcome: str,
    expect_after: list[str],
) -> None:
    pb = load_playbook(test_playbook_path)
    first = healthy_host().on(crash_at, Crash(), once=True)
    if update_fails:
        first.on("do-update", (1, "UPD_ERROR", ""))
    with pytest.raises(Crash):
        Engine(store.session, incidents=incidents, sleep=lambda _s: None).run(pb, "box1", first, {})

    second = healthy_host()
    restarted = Engine(store.session, incidents=RecordingIncidents(), sleep=lambda _s: None)
    [result] = restarted.reconcile(lambda host: second, lambda path: load_playbook(path))
    assert result.state == outcome
    for pattern in expect_after:
        assert second.ran(pattern) >= 1, (pattern, second.commands)
    if outcome == "ROLLED_BACK":
        assert second.ran("do-update") == 0  # never replays an update blindly
        restore = next(i for i, c in enumerate(second.commands) if " restore " in c)
        # the secret was captured again from the host, and handed to the restore command
        assert second.envs[restore]["BOXKEEPER_SECRET_captured_db_password"].startswith("Sup3r")
    assert second.closed == 1
    assert any("controller restarted" in e.name for e in result.timeline) or crash_at == "^resume-cron"
    assert restarted.reconcile(lambda host: FakeExecutor(), load_playbook) == []  # nothing left


def test_rollback_is_quarantine_when_the_host_is_gone_after_restart(
    store: Database,
    incidents: RecordingIncidents,
    test_playbook_path: Path,
) -> None:
    pb = load_playbook(test_playbook_path)
    with pytest.raises(Crash):
        Engine(store.session, incidents=incidents).run(
            pb, "box1", healthy_host().on("do-update", Crash()), {}
        )

    gone = FakeExecutor().on(".", ConnectError("box1", "cannot connect"))
    restarted_incidents = RecordingIncidents()
    engine = Engine(store.session, incidents=restarted_incidents)
    [result] = engine.reconcile(lambda host: gone, load_playbook)
    assert result.state == "QUARANTINED"
    assert restarted_incidents.opened[0].cause == "host_quarantined"


def test_a_crash_in_finally_gets_its_secrets_back_before_finishing(
    store: Database,
    incidents: RecordingIncidents,
    test_playbook_path: Path,
) -> None:
    """The finally of the shipped playbook puts the portal's option back with the DB password: after a
    crash there, the restarted engine must read the password again before running it."""
    needs_secret = "      run: DB_PASSWORD={{ captured.db_password }} resume-cron"
    text = test_playbook_path.read_text().replace("      run: resume-cron", needs_secret)
    assert "DB_PASSWORD={{ captured.db_password }} resume-cron" in text
    test_playbook_path.write_text(text)
    pb = load_playbook(test_playbook_path)
    with pytest.raises(Crash):
        Engine(store.session, incidents=incidents, sleep=lambda _s: None).run(
            pb, "box1", healthy_host().on("resume-cron", Crash(), once=True), {})

    second = healthy_host()
    restarted_incidents = RecordingIncidents()
    [result] = Engine(store.session, incidents=restarted_incidents, sleep=lambda _s: None).reconcile(
        lambda host: second, lambda path: load_playbook(path))
    assert result.state == "SUCCEEDED"
    resume = next(i for i, c in enumerate(second.commands) if "resume-cron" in c)
    assert second.envs[resume]["BOXKEEPER_SECRET_captured_db_password"].startswith("Sup3r")
    assert restarted_incidents.opened == []  # no "a final step failed" incident
