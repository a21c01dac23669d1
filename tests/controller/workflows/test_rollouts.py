"""Rollouts: ``update run --hosts|--client``, ``rollouts``, ``runs follow``, the API and windows, on
real test boxes (the bitrix-modules-update playbook over SSH), plus the plan's arithmetic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from controller import inventory, operators
from controller.alerting.models import Incident
from controller.api import create_app
from controller.cli import main
from controller.config import load
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.store.base import Base
from controller.store.db import Database
from controller.workflows import rollouts
from controller.workflows import runs as runstore
from controller.workflows.models import WorkflowRun
from controller.workflows.rollout_models import Rollout
from controller.workflows.rollouts import make_plan
from controller.workflows.runs import RunSummary
from controller.workflows.windows import add_window, occurrences
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import bitrix_vars, portal_version

REPO = Path(__file__).resolve().parents[3]
GOOD, OLD = (200, "25.100.300"), (200, "25.100.200")


# ------------------------------------------------------------------------------ the plan (no boxes)


def test_plan_puts_the_canary_first_and_cuts_batches_by_number_or_percent() -> None:
    hosts = [f"h{i}" for i in range(8)]
    assert make_plan(hosts, batch="25%").batches() == [
        ("h0",), ("h1", "h2"), ("h3", "h4"), ("h5", "h6"), ("h7",)]
    plan = make_plan(hosts, canary="h5", batch=4)
    assert plan.batches() == [("h5",), ("h0", "h1", "h2", "h3"), ("h4", "h6", "h7")]
    assert make_plan(["a", "b", "a"], batch="10%").batches() == [("a",), ("b",)]  # at least one a batch
    with pytest.raises(ConfigError, match="--canary: canary: expected one of the rollout's hosts"):
        make_plan(hosts, canary="nope")
    with pytest.raises(ConfigError, match="--batch-size: batch size: expected a number of hosts >= 1 or a "
                                          "percentage"):
        make_plan(hosts, batch="0")
    with pytest.raises(ConfigError, match="batch size"):
        make_plan(hosts, batch="150%")


def test_migration_0005_matches_the_rollout_models(store: Database) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "rollout" in repr(d) or "started_by" in repr(d)] == []


def test_a_skipped_run_does_not_spend_the_budget_and_a_refusal_does(store: Database) -> None:
    """SKIPPED (a held release) is not a failure; a refused host is; the incident names both lists."""
    states = {"a": "SUCCEEDED", "b": "SKIPPED", "c": "refused: c is busy", "d": "SUCCEEDED"}
    started: list[str] = []

    def run_host(host: str, begun: Callable[[int], None]) -> RunSummary | str:
        started.append(host)
        state = states[host]
        if state.startswith("refused"):
            return state
        return RunSummary(len(started), host, "p", state, False, None, None, {}, 0.0, 1.0)

    with store.session() as s:
        rollout_id = rollouts.create_rollout(s, make_plan("abcd"), playbook="p", started_by="test",
                                             client=None, now=0.0)
    done = rollouts.RolloutDriver(store.session, run_host=run_host).drive(rollout_id)
    assert started == ["a", "b", "c"]
    assert [h.outcome for h in done.hosts] == ["SUCCEEDED", "SKIPPED", "REFUSED", "NOT_ATTEMPTED"]
    assert done.state == "STOPPED" and done.failures == 1
    with store.read_session() as s:
        incident = s.get(Incident, done.incident_id)
        assert incident is not None
        assert incident.summary.endswith("failed: c (REFUSED); not attempted: d")


# ------------------------------------------------------------------------------ on test boxes



def fleet_config(boxes: list[Box], tmp_path: Path) -> str:
    """One client with every box (its playbook variables in the inventory), host keys pinned."""
    hosts = []
    for box in boxes:
        hosts.append({
            "name": box.name,
            "portal_url": box.info.portal_url,
            "ssh": {"address": f"{box.info.address}:{box.info.ssh_port}", "user": box.info.ssh_user,
                    "key_file": box.info.ssh_key},
            "vars": {k: v for k, v in bitrix_vars(box).items() if k != "portal_url"},
        })
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / "known_hosts").write_text("".join(b.info.known_hosts.strip() + "\n" for b in boxes))
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(state), "database": f"sqlite:///{state}/boxkeeper.db",
                                    "clients": [{"name": "acme", "hosts": hosts}]}))
    return str(path)


def cli_json(capsys: pytest.CaptureFixture[str], cfg: str, *argv: str) -> Any:
    capsys.readouterr()
    assert main(["--config", cfg, *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def rollout_incidents(cfg: str) -> list[Incident]:
    db = Database(load(cfg).database)
    try:
        with db.read_session() as s:
            found = list(s.scalars(select(Incident).where(Incident.cause == "rollout_stopped")))
            s.expunge_all()
            return found
    finally:
        db.dispose()


def wait_for(what: Callable[[], bool], deadline: float = 180) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if what():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {deadline}s")


def release_paused_update(box: Box) -> None:
    """The `pause` release waits for this file before it installs."""
    (box.layout.update_server / "release/go").write_text("")


@pytest.mark.integration
@pytest.mark.slow
def test_a_failed_canary_stops_the_rollout_before_any_other_host_and_opens_one_incident(
        boxes: Callable[..., list[Box]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = boxes(3)
    cfg = fleet_config(fleet, tmp_path)
    for box in fleet:
        box.stage("good")
    fleet[1].fault("stop-nginx")  # the canary's portal is down: its preflight fails, nothing changes
    names = [b.name for b in fleet]
    code = main(["--config", cfg, "update", "run", "bitrix-modules-update", "--hosts", ",".join(names),
                 "--canary", names[1], "--batch-size", "2"])
    out = capsys.readouterr().out
    assert code == 6
    assert f"{names[1]:<14} failed preflight/portal answers" in out  # progress: host, step, outcome
    assert f"{names[1]:<14} run 1     FAILED" in out  # the summary line per host
    assert f"STOPPED: the canary {names[1]} did not succeed (FAILED)" in out
    assert [portal_version(b) for b in (fleet[0], fleet[2])] == [OLD, OLD]  # never touched

    [shown] = cli_json(capsys, cfg, "rollouts")
    assert shown["state"] == "STOPPED" and shown["started_by"].startswith("cli:")
    assert [(h["host"], h["outcome"]) for h in shown["hosts"]] == [
        (names[1], "FAILED"), (names[0], "NOT_ATTEMPTED"), (names[2], "NOT_ATTEMPTED")]
    [incident] = rollout_incidents(cfg)
    assert incident.id == shown["incident_id"] and incident.severity == "critical"
    assert f"rollout {shown['id']} of bitrix-modules-update stopped" in incident.summary
    assert f"failed: {names[1]} (FAILED, run 1)" in incident.summary
    assert f"not attempted: {names[0]}, {names[2]}" in incident.summary


@pytest.mark.integration
@pytest.mark.slow
def test_a_batch_of_two_runs_in_parallel_after_the_canary_and_all_succeed(
        boxes: Callable[..., list[Box]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # three hosts: the canary alone, then one batch of two at once (the cutting of longer host lists
    # into batches is test_plan_puts_the_canary_first_and_cuts_batches_by_number_or_percent's)
    fleet = boxes(3)
    cfg = fleet_config(fleet, tmp_path)
    for box in fleet:
        box.stage("good")
    assert main(["--config", cfg, "update", "run", "bitrix-modules-update", "--client", "acme",
                 "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert all(portal_version(b) == GOOD for b in fleet)
    for box in fleet:
        assert f"{box.name:<14} ok     verify/" in out  # each host's steps as they finished
    assert "rollout 1: SUCCEEDED: 0 failed of 3" in out

    shown = cli_json(capsys, cfg, "rollouts", "show", "1")
    assert shown["state"] == "SUCCEEDED" and shown["batch_size"] == 2
    assert [h["batch"] for h in shown["hosts"]] == [0, 1, 1]
    runs = {r["host"]: r for r in shown["runs"]}
    assert {r["state"] for r in runs.values()} == {"SUCCEEDED"}
    a, b = (runs[h["host"]] for h in shown["hosts"][1:3])
    assert a["created_at"] < b["finished_at"] and b["created_at"] < a["finished_at"]  # at once
    canary = runs[shown["hosts"][0]["host"]]
    assert canary["finished_at"] < min(a["created_at"], b["created_at"])  # the canary first, alone
    listed = cli_json(capsys, cfg, "runs")
    assert {r["started_by"] for r in listed} == {shown["started_by"]}


@pytest.mark.integration
@pytest.mark.slow
def test_a_failure_budget_of_one_stops_at_the_second_failure(
        boxes: Callable[..., list[Box]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = boxes(4)
    cfg = fleet_config(fleet, tmp_path)
    for box in fleet:
        box.stage("good")
    fleet[1].fault("stop-nginx")
    fleet[2].fault("stop-nginx")
    names = [b.name for b in fleet]
    assert main(["--config", cfg, "update", "run", "bitrix-modules-update", "--hosts", ",".join(names),
                 "--max-failures", "1"]) == 6
    out = capsys.readouterr().out
    assert "STOPPED: failure budget spent (2 host(s) failed, 1 allowed)" in out
    shown = cli_json(capsys, cfg, "rollouts", "show", "1")
    assert [h["outcome"] for h in shown["hosts"]] == ["SUCCEEDED", "FAILED", "FAILED", "NOT_ATTEMPTED"]
    assert portal_version(fleet[0]) == GOOD and portal_version(fleet[3]) == OLD
    [incident] = rollout_incidents(cfg)
    assert f"failed: {names[1]} (FAILED, run 2), {names[2]} (FAILED, run 3); not attempted: {names[3]}" \
        in incident.summary


def runtime_of(cfg: str) -> WorkflowRuntime:
    config = load(cfg)
    db = Database(config.database)
    db.upgrade()
    inventory.sync_config(config, db)
    return WorkflowRuntime(config, db)


def drive_in_thread(rt: WorkflowRuntime, rollout_id: int,
                    into: list[rollouts.RolloutSummary]) -> threading.Thread:
    def drive() -> None:
        into.append(rt.drive_rollout(rollout_id, "bitrix-modules-update", {}, started_by="test"))

    thread = threading.Thread(target=drive)
    thread.start()
    return thread


def host_outcomes(rt: WorkflowRuntime, rollout_id: int) -> list[str]:
    with rt.db.read_session() as s:
        return [h.outcome for h in rollouts.summary(s, rollout_id).hosts]


def run_state(rt: WorkflowRuntime, host: str) -> str | None:
    with rt.db.read_session() as s:
        return s.scalar(select(WorkflowRun.state).where(WorkflowRun.host == host))


@pytest.mark.integration
@pytest.mark.slow
def test_pause_lets_the_going_run_finish_and_starts_nothing_until_resumed(
        boxes: Callable[..., list[Box]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = boxes(2)  # the canary, paused while it updates, and one host that waits for the resume
    cfg = fleet_config(fleet, tmp_path)
    fleet[0].stage("pause")  # the canary's updater waits for a go
    fleet[1].stage("good")
    rt = runtime_of(cfg)
    names = [b.name for b in fleet]
    rollout_id = rt.prepare_rollout("bitrix-modules-update", names, {}, started_by="test")
    result: list[rollouts.RolloutSummary] = []
    driver = drive_in_thread(rt, rollout_id, result)
    try:
        wait_for(lambda: run_state(rt, names[0]) == "UPDATE")
        assert main(["--config", cfg, "rollouts", "pause", str(rollout_id)]) == 0
        assert "pause requested" in capsys.readouterr().out
        release_paused_update(fleet[0])
        wait_for(lambda: cli_json(capsys, cfg, "rollouts", "show", str(rollout_id))["state"] == "PAUSED")
        # paused after the canary finished: nothing else started
        assert host_outcomes(rt, rollout_id) == ["SUCCEEDED", "PENDING"]
        assert portal_version(fleet[0]) == GOOD and portal_version(fleet[1]) == OLD
        assert main(["--config", cfg, "rollouts", "abort", "999"]) == 1
        assert main(["--config", cfg, "rollouts", "resume", str(rollout_id)]) == 0
    finally:
        release_paused_update(fleet[0])
        driver.join(300)
    assert result and result[0].state == "SUCCEEDED"
    assert host_outcomes(rt, rollout_id) == ["SUCCEEDED"] * 2
    assert main(["--config", cfg, "rollouts", "pause", str(rollout_id)]) == 1  # it has ended
    assert "has ended (SUCCEEDED)" in capsys.readouterr().err
    rt.db.dispose()


@pytest.mark.integration
@pytest.mark.slow
def test_abort_lets_the_going_run_finish_its_workflow_and_starts_no_other(
        boxes: Callable[..., list[Box]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = boxes(2)
    cfg = fleet_config(fleet, tmp_path)
    fleet[0].stage("pause")
    fleet[1].stage("good")
    rt = runtime_of(cfg)
    names = [b.name for b in fleet]
    rollout_id = rt.prepare_rollout("bitrix-modules-update", names, {}, started_by="test")
    result: list[rollouts.RolloutSummary] = []
    driver = drive_in_thread(rt, rollout_id, result)
    try:
        wait_for(lambda: run_state(rt, names[0]) == "UPDATE")  # the canary is mid-update
        assert main(["--config", cfg, "rollouts", "abort", str(rollout_id)]) == 0
    finally:
        release_paused_update(fleet[0])
        driver.join(300)
    assert result and result[0].state == "ABORTED"
    assert host_outcomes(rt, rollout_id) == ["SUCCEEDED", "NOT_ATTEMPTED"]
    assert portal_version(fleet[0]) == GOOD  # updated and verified, not cut off
    assert portal_version(fleet[1]) == OLD
    assert rollout_incidents(cfg) == []  # an operator's abort is not an incident
    shown = cli_json(capsys, cfg, "rollouts", "show", str(rollout_id))
    assert "abort requested" in shown["detail"] and "(by cli:" in shown["detail"]
    rt.db.dispose()


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_during_a_rollout_aborts_it_and_the_going_run_still_finishes(
        boxes: Callable[..., list[Box]], tmp_path: Path) -> None:
    fleet = boxes(2)
    cfg = fleet_config(fleet, tmp_path)
    fleet[0].stage("pause")
    fleet[1].stage("good")
    assert main(["--config", cfg, "migrate"]) == 0
    other = subprocess.Popen([sys.executable, "-m", "controller.cli", "--config", cfg, "update", "run",
                              "bitrix-modules-update", "--client", "acme"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    db = Database(load(cfg).database)
    try:
        wait_for(lambda: _state_of_first_run(db) == "UPDATE")  # the canary is mid-update
        other.send_signal(signal.SIGINT)
        wait_for(lambda: _control(db) == "abort")
    finally:
        release_paused_update(fleet[0])
        stdout, stderr = other.communicate(timeout=300)
        db.dispose()
    assert other.returncode == 7, stderr  # ABORTED
    assert "interrupted: abort of rollout 1 requested" in stdout
    assert f"{fleet[0].name:<14} run 1     SUCCEEDED" in stdout
    assert f"{fleet[1].name:<14} -         NOT_ATTEMPTED" in stdout
    assert portal_version(fleet[0]) == GOOD and portal_version(fleet[1]) == OLD


def _state_of_first_run(db: Database) -> str | None:
    with db.read_session() as s:
        return s.scalar(select(WorkflowRun.state).where(WorkflowRun.id == 1))


def _control(db: Database) -> str | None:
    with db.read_session() as s:
        return s.scalar(select(Rollout.control).where(Rollout.id == 1))


@pytest.mark.integration
@pytest.mark.slow
def test_runs_follow_prints_the_steps_of_a_run_started_by_another_process(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = fleet_config([box], tmp_path)
    box.stage("pause")
    assert main(["--config", cfg, "migrate"]) == 0
    other = subprocess.Popen([sys.executable, "-m", "controller.cli", "--config", cfg, "update", "run",
                              "bitrix-modules-update", "--host", box.name], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        db = Database(load(cfg).database)
        wait_for(lambda: _has_run(db))
        db.dispose()
        threading.Timer(1.0, release_paused_update, [box]).start()
        capsys.readouterr()
        code = main(["--config", cfg, "runs", "follow", "1"])
        out = capsys.readouterr().out
    finally:
        release_paused_update(box)
        stdout, stderr = other.communicate(timeout=300)
    assert code == 0 and other.returncode == 0, stderr
    assert out.startswith(f"following run 1: bitrix-modules-update on {box.name} (started by cli:")
    assert "ok     preflight/portal answers" in out and "ok     update/" in out
    assert "== VERIFY → SUCCEEDED" in out
    assert f"run 1: bitrix-modules-update on {box.name}: SUCCEEDED" in out.splitlines()[-1]
    assert "ok     update/" in stdout  # the starting process printed its progress too


def _has_run(db: Database) -> bool:
    with db.read_session() as s:
        return s.scalar(select(WorkflowRun.id)) is not None


@pytest.mark.integration
@pytest.mark.slow
def test_a_rollout_started_through_the_api_records_the_operator(
        boxes: Callable[..., list[Box]], tmp_path: Path, live_server: Callable[..., str]) -> None:
    fleet = boxes(2)
    cfg = load(fleet_config(fleet, tmp_path))
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    url = live_server(create_app(cfg, db))
    auth = {"Authorization": f"Bearer {token}"}
    for box in fleet:
        box.stage("good")
    bad = httpx.post(f"{url}/api/v1/rollouts", json={"playbook": "bitrix-modules-update", "client": "acme",
                                                     "batch_size": "0"}, headers=auth, timeout=10)
    assert bad.status_code == 422 and "batch size" in bad.text
    body = {"playbook": "bitrix-modules-update", "client": "acme"}
    started = httpx.post(f"{url}/api/v1/rollouts", json=body, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    rollout_id = started.json()["id"]
    assert started.json()["hosts"] == [b.name for b in fleet]

    def ended() -> bool:
        shown = httpx.get(f"{url}/api/v1/rollouts/{rollout_id}", headers=auth, timeout=10).json()
        return shown["state"] in rollouts.ENDED

    wait_for(ended, 300)
    shown = httpx.get(f"{url}/api/v1/rollouts/{rollout_id}", headers=auth, timeout=10).json()
    assert shown["state"] == "SUCCEEDED" and shown["started_by"] == "alice"
    assert [(r["host"], r["state"], r["started_by"]) for r in shown["runs"]] == [
        (b.name, "SUCCEEDED", "alice") for b in fleet]
    assert all(portal_version(b) == GOOD for b in fleet)
    late = httpx.post(f"{url}/api/v1/rollouts/{rollout_id}/abort", headers=auth, timeout=10)
    assert late.status_code == 409 and "has ended" in late.text


@pytest.mark.integration
@pytest.mark.slow
def test_a_window_over_a_client_runs_as_a_rollout_started_by_the_window(
        boxes: Callable[..., list[Box]], tmp_path: Path) -> None:
    fleet = boxes(2)  # the client's hosts: the canary and one more
    rt = runtime_of(fleet_config(fleet, tmp_path))
    for box in fleet:
        box.stage("good")
    now = datetime.now(UTC)
    with rt.db.session() as s:  # a daily window that started this minute
        window_id = add_window(s, name="nightly", target="client:acme", playbook="bitrix-modules-update",
                               cron=f"{now.minute} {now.hour} * * *", duration_minutes=120, timezone="UTC",
                               variables={}, now=time.time()).id
    rt.window_scheduler().run_window(window_id)
    with rt.db.read_session() as s:
        [occurrence] = occurrences(s, window_id)
        [rollout] = rollouts.list_rollouts(s)
        runs = [runstore.summary(s, h.run_id, with_timeline=False) for h in rollout.hosts if h.run_id]
    assert occurrence["status"] == "done" and occurrence["detail"].startswith(f"rollout {rollout.id}")
    assert rollout.state == "SUCCEEDED" and rollout.started_by == "window:nightly"
    assert [h.host for h in rollout.hosts] == [b.name for b in fleet] and rollout.client == "acme"
    assert [(r.host, r.state, r.started_by) for r in runs] == [
        (b.name, "SUCCEEDED", "window:nightly") for b in fleet]
    assert occurrence["run_ids"] == [r.id for r in runs]
    assert all(portal_version(b) == GOOD for b in fleet)
    rt.db.dispose()
