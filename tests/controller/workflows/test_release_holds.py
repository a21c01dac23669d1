"""Release holds and later rollbacks on a scripted host: what the engine decides and records.

The same behaviour on real test boxes (Bitrix): tests/controller/workflows/test_bitrix_holds.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from controller.errors import ConfigError
from controller.store.base import Base
from controller.store.db import Database
from controller.workflows import later, releases
from controller.workflows.engine import Engine
from controller.workflows.errors import RollbackRefused
from controller.workflows.loader import load_playbook
from controller.workflows.playbook import Playbook
from controller.workflows.runs import RunSummary
from controller.workflows.state import EXIT_CODES, RunState
from tests.controller.workflows.conftest import TEST_PLAYBOOK, RecordingIncidents
from tests.controller.workflows.fakes import Crash, FakeExecutor

RELEASE = """
release:
  - {after: preflight, key: "{{ captured.target }}", ignore: [none]}
  - {after: update, key: "{{ captured.reached }}"}
rollback_later:
  check:
    name: the backup is still kept
    run: backup-kept {{ backup_dir }}/run-{{ run_id }}
"""


def playbook(tmp_path: Path, extra: str = RELEASE) -> Playbook:
    text = textwrap.dedent(TEST_PLAYBOOK) + textwrap.dedent(extra)
    # the release the update offers (preflight) and what it reached (update)
    text = text.replace("""    - name: db password
""", """    - name: target
      run:
        command: read-target
        capture: {name: target, regex: '^TARGET=(.*)$'}
    - name: db password
""")
    text = text.replace("""  verify:
""", """    - name: reached
      run:
        command: read-reached
        capture: {name: reached, regex: '^REACHED=(.*)$'}
  verify:
""")
    path = tmp_path / "held-update.yaml"
    path.write_text(text)
    return load_playbook(path)


def host(target: str = "cfg 3.1.10.1", reached: str = "", *, update_ok: bool = True) -> FakeExecutor:
    ex = FakeExecutor()
    ex.on(r"^read-version", (0, "VERSION=1.0\n", ""))
    ex.on(r"^read-password", (0, "PASSWORD=pw-123\n", ""))
    ex.on(r"^verify-backup", (0, "backup ok\n", ""))
    ex.on(r"^read-target", (0, f"TARGET={target}\n", ""))
    ex.on(r"^read-reached", (0, f"REACHED={reached}\n", ""))
    if not update_ok:
        ex.on(r"^version-moved", (1, "", "portal answers 500"))
    return ex


def engine(store: Database, incidents: RecordingIncidents) -> Engine:
    return Engine(store.session, incidents=incidents, sleep=lambda _s: None)


def run(store: Database, incidents: RecordingIncidents, pb: Playbook, name: str,
        ex: FakeExecutor) -> RunSummary:
    return engine(store, incidents).run(pb, name, ex, {})


def transitions(summary: RunSummary) -> list[str]:
    return [e.phase for e in summary.timeline if e.kind == "transition"]


def test_migration_0005_matches_the_models(store: Database) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diffs if any(t in repr(d) for t in
                                    ("release_holds", "workflow_later_rollbacks", "workflow_window_changes"))]
    assert ours == []


def test_a_rolled_back_release_is_held_and_skipped_on_other_hosts_until_released(
        store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    first = run(store, incidents, pb, "box1", host(update_ok=False))
    assert first.state == "ROLLED_BACK"
    [incident] = incidents.opened
    assert ("release 3.1.10.1 cfg is now held for the fleet; `boxkeeper releases release 1` to allow it "
            "again") in incident.summary
    assert incident.details["release"] == "3.1.10.1 cfg"  # words sorted: one spelling per release
    with store.session() as s:
        [hold] = releases.list_holds(s)
    assert (hold.playbook, hold.run_id, hold.host, hold.held_by) == ("test-update", first.id, "box1",
                                                                     f"run {first.id}")

    other = host(target="3.1.10.1   cfg")  # the same release, spelled with other spacing
    skipped = run(store, incidents, pb, "box2", other)
    assert skipped.state == "SKIPPED" and EXIT_CODES[RunState.SKIPPED] == 6
    assert transitions(skipped) == ["LOCK", "PREFLIGHT", "SKIPPED"]
    assert other.ran("pause-cron|make-backup|do-update|restore") == 0  # nothing changed on the box
    assert other.ran("rm -f") == 1  # the lock file removed
    assert "release held" in (skipped.error or "") and "boxkeeper releases release 1" in (skipped.error or "")
    assert len(incidents.opened) == 1  # a skip is no failure: no incident

    with store.session() as s:
        released = releases.release(s, hold.id, actor="cli:ops", now=1000.0)
    assert (released.state, released.released_by, released.released_at) == ("released", "cli:ops", 1000.0)
    again = run(store, incidents, pb, "box2", host())
    assert again.state == "SUCCEEDED"  # the lease of the skipped run was released too


def test_another_release_is_not_held(store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    assert run(store, incidents, pb, "box1", host(update_ok=False)).state == "ROLLED_BACK"
    assert run(store, incidents, pb, "box2", host(target="cfg 3.1.10.2")).state == "SUCCEEDED"


def test_a_key_known_only_after_the_update_rolls_a_held_release_back(store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    first = run(store, incidents, pb, "box1", host(target="", reached="crm=2 main=2", update_ok=False))
    assert first.state == "ROLLED_BACK"
    assert incidents.opened[0].details["release"] == "crm=2 main=2"

    second = run(store, incidents, pb, "box2", host(target="", reached="main=2 crm=2"))  # verify would pass
    assert second.state == "ROLLED_BACK"
    assert second.failed_step == "update/release held"
    assert transitions(second)[-3:] == ["ROLLBACK", "ROLLBACK_VERIFY", "ROLLED_BACK"]
    summary = incidents.opened[1].summary
    assert "failed at update/release held" in summary
    assert "release crm=2 main=2 is held for the fleet; `boxkeeper releases release 1`" in summary
    with store.session() as s:
        assert len(releases.list_holds(s)) == 1  # the existing hold is kept, not doubled


def test_an_ignored_or_unknown_key_holds_nothing_and_says_so(store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    ex = host(target="none", reached="")
    ex.on(r"do-update", (1, "", "UPD_ERROR"))
    assert run(store, incidents, pb, "box1", ex).state == "ROLLED_BACK"
    assert "no release identity was recorded" in incidents.opened[0].summary
    with store.session() as s:
        assert releases.list_holds(s) == []


def test_a_held_release_in_a_dry_run_is_reported_skipped(store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    with store.session() as s:
        releases.hold(s, playbook="test-update", release="cfg 3.1.10.1", actor="cli:ops", now=1.0)
    result = engine(store, RecordingIncidents()).run(pb, "box1", host(), {}, dry_run=True)
    assert result.state == "SKIPPED"


def test_later_rollback_restores_the_earlier_runs_backup_and_holds_its_release(
        store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    good = run(store, incidents, pb, "box1", host())
    assert good.state == "SUCCEEDED"

    ex = host()
    rollback_id = later.create(store.session, of_run=good.id, playbook=pb, actor="cli:ops", now=2.0)
    result = engine(store, incidents).execute(rollback_id, pb, ex)
    assert result.state == "ROLLED_BACK"
    assert transitions(result) == ["LOCK", "PREFLIGHT", "ROLLBACK", "ROLLBACK_VERIFY", "ROLLED_BACK"]
    assert ex.ran(rf"^backup-kept '?/backup/run-{good.id}'?$") == 1
    assert ex.ran(rf"restore '?/backup/run-{good.id}'?") == 1  # the earlier run's backup
    assert ex.ran("read-password") == 1 and ex.ran("read-version") == 0  # only the secret read again
    assert ex.ran("version-is '?1.0'?") == 1  # verified against the version before the earlier run
    assert ex.ran("do-update|make-backup") == 0 and ex.ran("resume-cron") == 1
    assert result.captured["version_before"] == "1.0"
    [incident] = incidents.opened
    assert (incident.cause, incident.severity) == ("release_rolled_back", "warning")
    assert f"run {good.id} undone on request of cli:ops" in incident.summary
    assert "release 3.1.10.1 cfg is now held" in incident.summary
    with store.session() as s:
        assert later.rollback_of(s, rollback_id) == later.RollbackOf(good.id, "cli:ops")
        [hold] = releases.list_holds(s)
        assert "rolled back later by cli:ops" in hold.reason


def test_later_rollback_stops_before_any_change_when_the_backup_is_gone(
        store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    good = run(store, incidents, pb, "box1", host())
    ex = host().on(r"^backup-kept", (1, "MISSING /backup/run-1 (pruned)\n", ""))
    rollback_id = later.create(store.session, of_run=good.id, playbook=pb, actor="cli:ops", now=2.0)
    result = engine(store, incidents).execute(rollback_id, pb, ex)
    assert result.state == "FAILED"
    assert result.failed_step == "preflight/the backup is still kept"
    assert ex.ran("restore|resume-cron") == 0
    [incident] = incidents.opened
    assert (incident.cause, incident.severity) == ("rollback_not_started", "warning")
    assert "MISSING" in (result.error or "") or "MISSING" in incident.details["failed_output"]
    assert f"rollback of run {good.id} not started (cli:ops)" in incident.summary


def test_later_rollback_is_refused_with_the_reason(store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    failed = run(store, incidents, pb, "box1", host(update_ok=False))
    with pytest.raises(RollbackRefused, match=f"run {failed.id} ended ROLLED_BACK"):
        later.create(store.session, of_run=failed.id, playbook=pb, actor="cli:ops", now=2.0)
    with store.session() as s:
        releases.release(s, 1, actor="cli:ops", now=3.0)
    first = run(store, incidents, pb, "box1", host())
    second = run(store, incidents, pb, "box1", host())
    with pytest.raises(RollbackRefused, match=f"run {second.id} .* changed box1 after run {first.id}"):
        later.create(store.session, of_run=first.id, playbook=pb, actor="cli:ops", now=4.0)
    with pytest.raises(RollbackRefused, match="no run with id 99"):
        later.create(store.session, of_run=99, playbook=pb, actor="cli:ops", now=4.0)
    plain = playbook(tmp_path, extra="")
    with pytest.raises(RollbackRefused, match="declares no rollback_later"):
        later.create(store.session, of_run=second.id, playbook=plain, actor="cli:ops", now=4.0)


@pytest.mark.parametrize(("extra", "key", "expected"), [
    ("release: [{after: verify, key: x}]", "release[0].after", "preflight or update"),
    ("release: [{after: update, key: '{{ captured.nope }}'}]", "release[0].key", "captured.<name>"),
    ("rollback_later: {check: {name: c, run: 'ls {{ nope }}'}}", "rollback_later.check.run.command",
     "only declared variables"),
])
def test_release_and_rollback_later_are_validated(tmp_path: Path, extra: str, key: str,
                                                  expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        playbook(tmp_path, extra)
    assert err.value.key == key and expected in str(err.value)


def test_a_later_rollback_cut_by_a_controller_crash_resumes_as_a_rollback_never_an_update(
        store: Database, tmp_path: Path) -> None:
    pb = playbook(tmp_path)
    incidents = RecordingIncidents()
    good = run(store, incidents, pb, "box1", host())
    rollback_id = later.create(store.session, of_run=good.id, playbook=pb, actor="cli:ops", now=2.0)
    crashing = host().on(r"^backup-kept", Crash("controller killed"))
    with pytest.raises(Crash):
        engine(store, incidents).execute(rollback_id, pb, crashing)

    after_restart = host()
    [result] = engine(store, incidents).reconcile(lambda _host: after_restart, lambda _path: pb)
    assert result.id == rollback_id and result.state == "ROLLED_BACK"
    assert after_restart.ran("do-update|make-backup|pause-cron") == 0
    assert after_restart.ran(rf"restore '?/backup/run-{good.id}'?") == 1
    assert any("controller restarted: rollback of run" in e.name for e in result.timeline)
