"""A rollout whose driving process died is ended STOPPED with its incident, not left RUNNING forever;
a live driver's heartbeat keeps its rollout from being taken for dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controller.alerting.models import Incident
from controller.config import load
from controller.store.db import Database
from controller.workflows import rollouts
from controller.workflows.models import WorkflowRun
from controller.workflows.rollout_models import Rollout
from controller.workflows.rollouts import make_plan
from controller.workflows.runs import RunSummary
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import portal_version
from tests.controller.workflows.test_rollouts import (
    OLD,
    REPO,
    fleet_config,
    release_paused_update,
    rollout_incidents,
    runtime_of,
    wait_for,
)

T0 = 1_800_000_000.0


def _new(store: Database, hosts: str, now: float) -> int:
    with store.session() as s:
        return rollouts.create_rollout(s, make_plan(hosts), playbook="p", started_by="cli:root",
                                       client=None, now=now)


def test_a_silent_rollout_is_stopped_once_with_an_incident_and_a_fresh_one_is_left(store: Database) -> None:
    dead, alive = _new(store, "abc", T0), _new(store, "de", T0 + 100)
    reaped = rollouts.reap(store.session, now=T0 + rollouts.STALE_AFTER + 1)
    assert [r.id for r in reaped] == [dead]
    [done] = reaped
    assert done.state == "STOPPED" and [h.outcome for h in done.hosts] == ["NOT_ATTEMPTED"] * 3
    assert "its driving process stopped (no sign of life since 2027-01-15 08:00:00 UTC)" in done.detail
    with store.read_session() as s:
        incident = s.get(Incident, done.incident_id)
        assert incident is not None and incident.status == "open"
        assert incident.summary == (
            f"rollout {dead} of p stopped: its driving process stopped (no sign of life since "
            "2027-01-15 08:00:00 UTC); failed: none; not attempted: a, b, c")
        assert s.get(Rollout, alive).state == "RUNNING"  # type: ignore[union-attr]
    assert rollouts.reap(store.session, now=T0 + rollouts.STALE_AFTER + 2) == []  # once


def test_a_started_hosts_outcome_is_its_runs_state(store: Database) -> None:
    rollout_id = _new(store, "ab", T0)
    with store.session() as s:
        run = WorkflowRun(host="a", playbook="p", playbook_path="/p.yaml", variables={}, dry_run=False,
                          lock_token="t", state="ROLLED_BACK", phase_status="done", captured={},
                          started_by="cli:root", created_at=T0, updated_at=T0)
        s.add(run)
        s.flush()
        rollouts._set_host(s, rollout_id, "a", run_id=run.id, outcome=rollouts.STARTED)
    [done] = rollouts.reap(store.session, now=T0 + 3600)
    assert [(h.host, h.outcome) for h in done.hosts] == [("a", "ROLLED_BACK"), ("b", "NOT_ATTEMPTED")]
    with store.read_session() as s:
        incident = s.get(Incident, done.incident_id)
        assert incident is not None and "failed: a (ROLLED_BACK, run 1); not attempted: b" in incident.summary


def test_a_live_drivers_heartbeat_keeps_its_long_rollout_from_being_reaped(store: Database) -> None:
    """A canary that takes longer than STALE_AFTER: the heartbeat (every 0.05 s here) keeps the
    rollout fresh, so a reaper looking meanwhile leaves it, and the driver ends it itself."""
    rollout_id = _new(store, "ab", time.time())
    going, finish = threading.Event(), threading.Event()

    def run_host(host: str, begun: Callable[[int], None]) -> RunSummary | str:
        going.set()
        finish.wait(30)
        return RunSummary(1, host, "p", "SUCCEEDED", False, None, None, {}, 0.0, 1.0)

    driver = rollouts.RolloutDriver(store.session, run_host=run_host, heartbeat=0.05)
    result: list[rollouts.RolloutSummary] = []
    thread = threading.Thread(target=lambda: result.append(driver.drive(rollout_id)))
    thread.start()
    try:
        assert going.wait(30)
        time.sleep(0.5)  # ten heartbeats
        with store.read_session() as s:
            last = s.get(Rollout, rollout_id).updated_at  # type: ignore[union-attr]
        assert time.time() - last < 0.5
        assert rollouts.reap(store.session, now=time.time(), stale_after=0.4) == []
    finally:
        finish.set()
        thread.join(30)
    assert result[0].state == "SUCCEEDED"


def test_a_reaped_rollouts_starved_driver_starts_nothing_more_and_keeps_the_reapers_verdict(
        store: Database) -> None:
    rollout_id = _new(store, "abc", time.time())
    started: list[str] = []

    def run_host(host: str, begun: Callable[[int], None]) -> RunSummary | str:
        started.append(host)
        if host == "a":  # while the canary goes, its driver is taken for dead
            rollouts.reap(store.session, now=time.time() + 3600)
        return RunSummary(len(started), host, "p", "SUCCEEDED", False, None, None, {}, 0.0, 1.0)

    done = rollouts.RolloutDriver(store.session, run_host=run_host).drive(rollout_id)
    assert started == ["a"] and done.state == "STOPPED"
    assert "its driving process stopped" in done.detail


@pytest.mark.integration
def test_serve_stops_the_rollout_of_a_killed_update_run_and_names_the_hosts_left(
        boxes: Callable[..., list[Box]], tmp_path: Path) -> None:
    """`update run --client` is killed (-9) while its canary updates; two minutes later (its
    heartbeat's age set back here) the controller's start-up reconciles the canary's run and stops
    the rollout with an incident naming the host that was never updated."""
    fleet = boxes(2)
    cfg = fleet_config(fleet, tmp_path)
    fleet[0].stage("pause")
    fleet[1].stage("good")
    rt = runtime_of(cfg)
    other = subprocess.Popen([sys.executable, "-m", "controller.cli", "--config", cfg, "update", "run",
                              "bitrix-modules-update", "--client", "acme"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    db = Database(load(cfg).database)
    try:
        wait_for(lambda: _state_of(db, 1) == "UPDATE")  # the canary is mid-update
        other.send_signal(signal.SIGKILL)
        other.wait(30)
        release_paused_update(fleet[0])
        with db.session() as s:  # the driver's last sign of life, two minutes later
            s.execute(update(Rollout).values(updated_at=Rollout.updated_at - 2 * rollouts.STALE_AFTER))
        rt.start_service()
        wait_for(lambda: _rollout_state(db) == "STOPPED", deadline=240)
    finally:
        rt.stop_service()
        db.dispose()
    with rt.db.read_session() as s:
        [rollout] = rollouts.list_rollouts(s)
        canary_state = _state_of_in(s, 1)
    assert canary_state in ("SUCCEEDED", "ROLLED_BACK")  # reconciled from the box, not left mid-update
    assert [(h.host, h.outcome) for h in rollout.hosts] == [
        (fleet[0].name, canary_state), (fleet[1].name, "NOT_ATTEMPTED")]
    [incident] = rollout_incidents(cfg)
    assert "its driving process stopped" in incident.summary
    assert incident.summary.endswith(f"not attempted: {fleet[1].name}")
    assert portal_version(fleet[1]) == OLD
    rt.db.dispose()


def _state_of(db: Database, run_id: int) -> str | None:
    with db.read_session() as s:
        return _state_of_in(s, run_id)


def _state_of_in(s: Session, run_id: int) -> str | None:
    return s.scalar(select(WorkflowRun.state).where(WorkflowRun.id == run_id))


def _rollout_state(db: Database) -> str | None:
    with db.read_session() as s:
        return s.scalar(select(Rollout.state).where(Rollout.id == 1))
