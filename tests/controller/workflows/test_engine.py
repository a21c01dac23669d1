"""The run state machine on a scripted host: outcomes, audit trail, redaction, leases, quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from controller.store.db import Database
from controller.workflows import runs
from controller.workflows.engine import Engine
from controller.workflows.errors import (
    ConnectionLostError,
    HostBusyError,
    HostKeyMismatchError,
    HostQuarantinedError,
)
from controller.workflows.loader import load_playbook
from controller.workflows.state import EXIT_CODES, RunState
from tests.controller.workflows.conftest import RecordingIncidents
from tests.controller.workflows.fakes import FakeExecutor

SECRET = "Sup3r$ecret'pw"


def healthy_host() -> FakeExecutor:
    ex = FakeExecutor()
    ex.on(r"^read-version", (0, "VERSION=1.0\n", ""))
    ex.on(r"^read-password", (0, f"PASSWORD={SECRET}\n", ""))
    ex.on(r"^verify-backup", (0, "backup ok\n", ""))
    return ex


def make_engine(store: Database, incidents: RecordingIncidents) -> Engine:
    return Engine(store.session, incidents=incidents, sleep=lambda _s: None)


def states(summary: runs.RunSummary) -> list[str]:
    return [e.phase for e in summary.timeline if e.kind == "transition"]


def test_good_update_succeeds_with_full_audit_trail(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host()
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "SUCCEEDED"
    assert states(result) == ["LOCK", "PREFLIGHT", "BACKUP", "BACKUP_VERIFY", "UPDATE", "VERIFY", "SUCCEEDED"]
    assert ex.ran("^pause-cron") == 1 and ex.ran("^resume-cron") == 1
    assert ex.ran("restore") == 0
    assert ex.ran("set -o noclobber; echo boxkeeper-run-1-[0-9a-f]{12}@") == 1 and ex.ran("rm -f") == 1
    assert ex.ran("^version-moved 1.0$") == 1 and ex.ran("^version-is") == 0
    assert result.captured == {"version_before": "1.0"}
    assert incidents.opened == []
    steps = [e for e in result.timeline if e.kind == "run"]
    assert all(e.status == "ok" and e.exit_code == 0 and e.duration is not None for e in steps)
    with store.session() as s:
        assert s.execute(text("select count(*) from workflow_host_leases")).scalar() == 0


def test_failed_update_is_rolled_back_never_success(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"do-update", (1, "2026-01-01 - UPD_ERROR - migration failed\n", ""))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ROLLED_BACK"
    assert EXIT_CODES[RunState.ROLLED_BACK] != 0
    assert states(result)[-4:] == ["UPDATE", "ROLLBACK", "ROLLBACK_VERIFY", "ROLLED_BACK"]
    assert ex.ran("restore /backup/run-1$") == 1 and ex.ran("^version-is 1.0$") == 1
    assert ex.ran("^version-moved") == 0 and ex.ran("^resume-cron") == 1
    assert result.failed_step == "update/update modules"
    [incident] = incidents.opened
    assert incident.cause == "release_rolled_back" and incident.severity == "critical"
    assert "ERROR_WRONG_CODE" in incident.summary and "/backup/run-1" in incident.summary
    assert "UPD_ERROR - migration failed" in incident.details["failed_output"]
    assert incident.details["captured"] == {"version_before": "1.0"}


def test_verify_failure_after_a_clean_update_rolls_back(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"^version-moved", (1, "", "still 1.0"))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ROLLED_BACK" and result.failed_step == "verify/version moved"


def test_failed_rollback_quarantines_the_host(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"do-update", (1, "", "")).on(r"restore", (2, "", "tar: error"))
    engine = make_engine(store, incidents)
    pb = load_playbook(test_playbook_path)
    result = engine.run(pb, "box1", ex, {})
    assert result.state == "QUARANTINED"
    assert states(result)[-3:] == ["ROLLBACK", "ROLLBACK_FAILED", "QUARANTINED"]
    assert incidents.opened[-1].cause == "host_quarantined" and incidents.opened[-1].severity == "critical"
    with pytest.raises(HostQuarantinedError, match="unquarantine box1"):
        engine.run(pb, "box1", healthy_host(), {})
    with store.session() as s:
        assert runs.unquarantine(s, "box1")
    assert engine.run(pb, "box1", healthy_host(), {}).state == "SUCCEEDED"


def test_failed_rollback_verify_quarantines(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"do-update", (1, "", "")).on(r"^version-is", (1, "", "2.0"))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "QUARANTINED"


def test_failed_preflight_changes_nothing(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"^check-disk", (1, "", "only 10 MB free"))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "FAILED" and result.failed_step == "preflight/disk"
    for changing in ("^pause-cron", "make-backup", "do-update", "restore", "^resume-cron"):
        assert ex.ran(changing) == 0, changing
    assert ex.ran("rm -f") == 1  # the lock file is removed
    [incident] = incidents.opened
    assert incident.cause == "release_failed" and "only 10 MB free" in incident.details["failed_output"]


def test_failed_backup_stops_before_update_and_resumes_cron(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"^verify-backup", (0, "gzip: invalid compressed data", ""))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "FAILED" and result.failed_step == "backup_verify/check backup"
    assert ex.ran("do-update") == 0 and ex.ran("^resume-cron") == 1
    assert "lacks the success pattern" in (result.error or "")


def test_dry_run_is_preflight_only(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host()
    result = make_engine(store, incidents).run(
        load_playbook(test_playbook_path), "box1", ex, {}, dry_run=True
    )
    assert result.state == "SUCCEEDED" and result.dry_run
    assert states(result) == ["LOCK", "PREFLIGHT", "SUCCEEDED"]
    assert ex.ran("^pause-cron|make-backup|do-update|^resume-cron") == 0


def test_self_upgrade_loop_reruns_the_updater_within_its_bound(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    restart = (0, "Update System upgraded successfully. Restart the command.\n", "")
    ex = healthy_host().on(r"do-update", restart, once=True)
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "SUCCEEDED" and ex.ran("do-update") == 2

    ex = healthy_host().on(r"do-update", restart)
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box2", ex, {})
    assert result.state == "ROLLED_BACK" and ex.ran("do-update") == 3
    assert "still not done after 3 attempt(s)" in (result.error or "")


def test_lost_connection_during_update_rolls_back(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"do-update", ConnectionLostError("box1", "connection lost during a command"))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "ROLLED_BACK"
    update = next(e for e in result.timeline if e.name == "update modules")
    assert update.status == "error" and "connection lost" in update.message


def test_changed_host_key_is_refused_with_an_incident(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = FakeExecutor().on(".", HostKeyMismatchError("box1", "host key differs from the pinned key: refused"))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "FAILED"
    assert [i.cause for i in incidents.opened] == ["host_key_refused"]
    assert incidents.opened[0].severity == "critical"


def test_second_run_for_a_host_is_refused(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    engine = make_engine(store, incidents)
    pb = load_playbook(test_playbook_path)
    first = engine.start(pb, "box1", {})
    with pytest.raises(HostBusyError, match=f"run {first}"):
        engine.start(pb, "box1", {})
    assert engine.start(pb, "box2", {}) != first  # other hosts are independent
    assert engine.execute(first, pb, healthy_host()).state == "SUCCEEDED"
    assert engine.run(pb, "box1", healthy_host(), {}).state == "SUCCEEDED"  # lease released


def test_lock_file_held_by_another_run_fails_without_change(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    ex = healthy_host().on(r"noclobber", (3, "host is locked by boxkeeper-run-77@other\n", ""))
    result = make_engine(store, incidents).run(load_playbook(test_playbook_path), "box1", ex, {})
    assert result.state == "FAILED"
    assert "locked by boxkeeper-run-77" in incidents.opened[0].details["failed_output"]
    assert ex.ran("^check-disk") == 0


def test_secrets_never_reach_the_store_or_incidents(
    store: Database, incidents: RecordingIncidents, test_playbook_path: Path
) -> None:
    # the programs print the secrets they were given (as a careless vendor script would)
    ex = healthy_host().on(r"do-update", (1, "token is tok-FROM-CLI-9\n", f"db password {SECRET}"))
    ex.on(r"restore", (0, f"restoring with {SECRET}", ""))
    result = make_engine(store, incidents).run(
        load_playbook(test_playbook_path), "box1", ex, {"api_token": "tok-FROM-CLI-9"}
    )
    assert result.state == "ROLLED_BACK"
    # the values reach the host only in the commands' environment, never in a command's text
    assert {"BOXKEEPER_SECRET_api_token": "tok-FROM-CLI-9"} in ex.envs
    assert {"BOXKEEPER_SECRET_captured_db_password": SECRET} in ex.envs
    dump = "\n".join(store.engine.raw_connection().driver_connection.iterdump())  # type: ignore[union-attr]
    for secret in (SECRET, "tok-FROM-CLI-9"):
        assert not any(secret in c for c in ex.commands)
        assert secret not in dump
        assert secret not in repr(incidents.opened)
    assert 'DB_PASSWORD="$BOXKEEPER_SECRET_captured_db_password" make-backup' in dump


def test_runs_listing(store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    engine = make_engine(store, incidents)
    pb = load_playbook(test_playbook_path)
    engine.run(pb, "box1", healthy_host(), {})
    engine.run(pb, "box2", healthy_host().on("^check-disk", (1, "", "")), {})
    with store.session() as s:
        listed = runs.list_runs(s)
    assert [(r.id, r.host, r.state) for r in listed] == [(2, "box2", "FAILED"), (1, "box1", "SUCCEEDED")]
