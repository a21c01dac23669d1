"""An operator's abort on a scripted host: read at step boundaries, ABORTED before the update, the
rollback path once the update phase has begun, a rollback never cut short, an ended run refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from controller.cli import main
from controller.store.db import Database
from controller.workflows import aborts, rollouts
from controller.workflows.engine import Engine
from controller.workflows.errors import RunStateError
from controller.workflows.loader import load_playbook
from controller.workflows.runs import RunSummary
from controller.workflows.state import EXIT_CODES, RunState
from tests.controller.workflows.conftest import RecordingIncidents
from tests.controller.workflows.fakes import Crash, FakeExecutor
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


def test_a_controller_restarted_after_the_abort_was_taken_finishes_it(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    first = healthy_host()
    abort_while(store, first, r"make-backup")
    first.on(r"verify-backup", Crash(), once=True)  # never reached: the abort is taken before it
    first.on(r"^resume-cron", Crash(), once=True)  # the controller dies in the final steps
    with pytest.raises(Crash):
        engine(store, incidents).run(load_playbook(test_playbook_path), "box1", first, {})
    second = healthy_host()
    [result] = engine(store, incidents).reconcile(lambda host: second, lambda path: load_playbook(path))
    assert result.state == "ABORTED" and second.ran("^resume-cron") == 1 and second.ran("rm -f") == 1
    assert second.ran("do-update") == 0 and second.ran("restore") == 0 and incidents.opened == []


def test_a_pending_abort_is_taken_by_the_restarted_controller(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    """The request was recorded while the controller was down (the run left in UPDATE): the update in
    doubt is rolled back anyway, and the release is not held for an abort."""
    first = healthy_host().on(r"do-update", Crash(), once=True)
    with pytest.raises(Crash):
        engine(store, incidents).run(load_playbook(test_playbook_path), "box1", first, {})
    with store.session() as s:
        aborts.request_abort(s, 1, actor="cli:anna", now=time.time())
    second = healthy_host()
    [result] = engine(store, incidents).reconcile(lambda host: second, lambda path: load_playbook(path))
    assert result.state == "ROLLED_BACK" and second.ran("restore /backup/run-1$") == 1


def test_rollouts_abort_with_runs_asks_each_going_run(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``boxkeeper rollouts abort ID --runs``: the rollout starts no new run, and the run going on the
    canary is aborted at its next step boundary (ABORTED: it was backing up)."""
    config = tmp_path / "controller.yaml"
    config.write_text(f"state_dir: {tmp_path}/state\ndatabase: sqlite:///{tmp_path}/boxkeeper.db\n")
    playbook = load_playbook(test_playbook_path)
    with store.session() as s:
        rollout_id = rollouts.create_rollout(s, rollouts.make_plan(["box1", "box2"]), playbook="test-update",
                                             started_by="cli:anna", client=None, now=time.time())
    said: list[int] = []

    def run_host(host: str, started: Callable[[int], None]) -> RunSummary | str:
        ex = healthy_host()

        def abort_from_the_cli(_command: str) -> tuple[int, str, str]:
            said.append(main(["--config", str(config), "rollouts", "abort", str(rollout_id), "--runs"]))
            return (0, "", "")

        ex.on(r"make-backup", abort_from_the_cli, once=True)
        e = engine(store, incidents)
        run_id = e.start(playbook, host, {})
        started(run_id)
        return e.execute(run_id, playbook, ex, secrets=e.secrets(playbook, {}))

    done = rollouts.RolloutDriver(store.session, run_host=run_host).drive(rollout_id)
    assert said == [0] and "abort asked of run(s) 1" in capsys.readouterr().out
    assert done.state == "ABORTED"
    assert [(h.host, h.outcome) for h in done.hosts] == [("box1", "ABORTED"), ("box2", "NOT_ATTEMPTED")]


def test_a_canary_rolled_back_on_an_abort_does_not_stop_the_rollout(
        store: Database, incidents: RecordingIncidents, test_playbook_path: Path) -> None:
    """An operator's abort is no evidence against the release: no budget spent (0 allowed here)."""
    playbook = load_playbook(test_playbook_path)
    with store.session() as s:
        rollout_id = rollouts.create_rollout(s, rollouts.make_plan(["box1", "box2"]), playbook="test-update",
                                             started_by="cli:anna", client=None, now=time.time())

    def run_host(host: str, started: Callable[[int], None]) -> RunSummary | str:
        ex = healthy_host()
        if host == "box1":
            abort_while(store, ex, r"do-update")
        e = engine(store, incidents)
        run_id = e.start(playbook, host, {})
        started(run_id)
        return e.execute(run_id, playbook, ex, secrets=e.secrets(playbook, {}))

    done = rollouts.RolloutDriver(store.session, run_host=run_host).drive(rollout_id)
    assert [(h.host, h.outcome) for h in done.hosts] == [("box1", "ROLLED_BACK"), ("box2", "SUCCEEDED")]
    assert done.state == "FINISHED" and done.incident_id is None
