"""Aborting one run on a real test box (sshd, nginx, PHP-FPM, MariaDB): through the engine, the API
and the CLI. What is asserted is what an admin checks afterwards: the version the portal serves (a
closed public part answers 503), the portal's database, the cron line, the lock file, the lease.

A run is held at a known step in two ways, neither timed: in-process, an SSH executor that records
the abort as it sends a given command (the step then runs to its end, as the engine never cuts a
step off); across processes, a MariaDB ``LOCK TABLES b_user WRITE`` from the test that keeps the
backup's ``mysqldump`` waiting until the test has asked for the abort (b_user is read by nothing
before the dump: the preflight and the portal page leave it alone).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pymysql
import pytest
from sqlalchemy import func, select

from controller import inventory, operators
from controller.alerting.models import Incident
from controller.api import create_app
from controller.config import load
from controller.store.db import Database
from controller.workflows import aborts
from controller.workflows.engine import Engine
from controller.workflows.executor import Command, CommandResult
from controller.workflows.loader import load_playbook
from controller.workflows.models import HostLease
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.releases import ReleaseHold
from controller.workflows.runs import RunSummary
from controller.workflows.ssh import SSHExecutor, SSHOptions, SSHTarget
from tests.boxes import procs
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME
from tests.controller.workflows.boxkit import (
    PLAYBOOK,
    bitrix_vars,
    db_fingerprint,
    known_hosts_file,
    portal_version,
)
from tests.controller.workflows.test_api import wait_for_run
from tests.controller.workflows.test_cli import var_args, write_config
from tests.controller.workflows.test_crash_recovery import REPO, cli, dump_timeline, step_started

pytestmark = pytest.mark.integration

OLD, NEW = "25.100.200", "25.100.300"
LOCK_FILE = "boxkeeper-update.lock"


class AbortingExecutor(SSHExecutor):
    """The box's real SSH executor; as it sends the first command containing ``marker`` it calls
    ``hook`` (which records an abort, as another process would) and then runs the command."""

    def __init__(self, box: Box, known_hosts: Path, marker: str, hook: Callable[[], None]) -> None:
        info = box.info
        super().__init__(SSHTarget(box.name, info.address, info.ssh_port, info.ssh_user, info.ssh_key,
                                   known_hosts=str(known_hosts)), SSHOptions())
        self.marker, self.hook, self.fired = marker, hook, False

    def run(self, command: Command, timeout: float) -> CommandResult:
        if not self.fired and self.marker in command.text:
            self.fired = True
            self.hook()
        return super().run(command, timeout)


def run_aborted_at(store: Database, box: Box, tmp_path: Path, marker: str, who: str) -> RunSummary:
    said: list[str] = []

    def abort() -> None:
        with store.session() as s:
            said.append(aborts.request_abort(s, 1, actor=who, now=time.time()))

    ex = AbortingExecutor(box, known_hosts_file(box, tmp_path), marker, abort)
    try:
        result = Engine(store.session, incidents=ServiceIncidents()).run(
            load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box))
    finally:
        ex.close()
    assert ex.fired and len(said) == 1, said
    return result


def incidents_of(store: Database, host: str) -> list[Incident]:
    with store.session() as s:
        return list(s.scalars(select(Incident).where(Incident.host_name == host)))


def holds(store: Database) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(ReleaseHold)) or 0)


def leases(store: Database) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(HostLease)) or 0)


def test_abort_during_the_backup_ends_aborted_with_the_portal_as_it_was(
        store: Database, box: Box, tmp_path: Path) -> None:
    cron_before = box.layout.cron_file.read_text()
    fingerprint = db_fingerprint(box)
    box.stage("good")
    # the public part is closed by now (the step before the dump): the abort must open it again
    result = run_aborted_at(store, box, tmp_path, "mysqldump", "cli:anna")

    assert result.state == "ABORTED", dump_timeline_of(result)
    assert result.failed_step == "backup/aborted by cli:anna"
    phases = [e.phase for e in result.timeline if e.kind == "transition"]
    assert phases == ["LOCK", "PREFLIGHT", "BACKUP", "ABORTED"]
    assert not any(e.phase == "update" for e in result.timeline)  # the updater never ran
    assert portal_version(box) == (200, OLD)  # public part open again, nothing updated
    assert db_fingerprint(box) == fingerprint
    assert box.layout.cron_file.read_text() == cron_before
    assert not (box.layout.run / LOCK_FILE).exists()
    assert not list(box.layout.backup_dir.glob("*.site_stopped"))
    assert leases(store) == 0 and holds(store) == 0
    assert incidents_of(store, box.name) == []  # an operator's decision, nothing failed
    [note] = [e for e in result.timeline if e.name.startswith("aborted by cli:anna")]
    assert "nothing on the box has changed" in note.name


def test_abort_during_the_update_rolls_back_and_verifies(store: Database, box: Box, tmp_path: Path) -> None:
    fingerprint = db_fingerprint(box)
    box.stage("good")
    # the abort is recorded as the updater starts; the update runs to its end (25.100.300 installed),
    # then the engine rolls it back at the step boundary
    result = run_aborted_at(store, box, tmp_path, "update:modules", "ops-bob")

    assert result.state == "ROLLED_BACK", dump_timeline_of(result)
    assert result.failed_step == "update/aborted by ops-bob"
    assert result.captured.get("update_result") == "Updates installed successfully"
    phases = [e.phase for e in result.timeline if e.kind == "transition"]
    assert phases[-4:] == ["UPDATE", "ROLLBACK", "ROLLBACK_VERIFY", "ROLLED_BACK"]
    assert portal_version(box) == (200, OLD)
    assert db_fingerprint(box) == fingerprint
    assert not (box.layout.run / LOCK_FILE).exists() and leases(store) == 0
    assert holds(store) == 0  # an abort is no evidence against the release
    [incident] = incidents_of(store, box.name)
    assert incident.cause == "run_aborted" and incident.severity == "warning"
    assert "aborted by ops-bob" in incident.summary and "not held" in incident.summary


def dump_timeline_of(result: RunSummary) -> str:
    return "\n".join(f"{e.seq} {e.phase} {e.name} {e.status} {e.message}" for e in result.timeline)


@contextmanager
def dump_held(box: Box) -> Iterator[Callable[[], None]]:
    """Keep the portal's b_user write-locked (mysqldump waits on it); yields the release."""
    conn = pymysql.connect(unix_socket=str(box.layout.mysql_socket), user="root", database=DB_NAME,
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLES b_user WRITE")

        def release() -> None:
            with conn.cursor() as c:
                c.execute("UNLOCK TABLES")

        yield release
    finally:
        conn.close()


def test_abort_over_the_api_a_viewer_refused_an_ended_run_refused(
        box: Box, tmp_path: Path, live_server: Callable[..., str]) -> None:
    cfg = load(write_config(box, tmp_path))
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice", role="operator")
    viewer = operators.add_operator(Path(cfg.operator_tokens_file), "victor", role="viewer")
    other = operators.add_operator(Path(cfg.operator_tokens_file), "olga", role="operator",
                                   clients=frozenset({"globex"}))
    (Path(cfg.state_dir) / "known_hosts").write_text(box.info.known_hosts.strip() + "\n")
    url = live_server(create_app(cfg, db))
    auth = {"Authorization": f"Bearer {token}"}
    body = {"playbook": "bitrix-modules-update", "host": box.name,
            "vars": {k: v for k, v in bitrix_vars(box).items() if k != "portal_url"}}
    box.stage("good")
    with dump_held(box) as release:
        started = httpx.post(f"{url}/api/v1/runs", json=body, headers=auth, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        db_file = Path(cfg.database.removeprefix("sqlite:///"))
        assert procs.wait_until(lambda: step_started(db_file, "dump the database"), 120, 0.05), \
            dump_timeline(db_file)
        abort = f"{url}/api/v1/runs/{run_id}/abort"
        refused = httpx.post(abort, headers={"Authorization": f"Bearer {viewer}"}, timeout=10)
        assert refused.status_code == 403
        hidden = httpx.post(abort, headers={"Authorization": f"Bearer {other}"}, timeout=10)
        assert (hidden.status_code, hidden.json()) == (404, {"detail": f"no run with id {run_id}"})
        assert httpx.post(f"{url}/api/v1/runs/999/abort", headers=auth, timeout=10).status_code == 404
        asked = httpx.post(abort, headers=auth, timeout=10)
        assert asked.status_code == 202, asked.text
        said = asked.json()
        assert said["requested_by"] == "alice" and "nothing on the box has changed" in said["result"]
        going = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=auth, timeout=10).json()
        assert going["state"] == "BACKUP" and going["abort_requested_by"] == "alice"
        assert going["aborted_at"] is None  # the dump is still going: never cut off
        release()
        run = wait_for_run_state(url, auth, run_id)
    assert run["state"] == "ABORTED", run["error"]
    assert run["failed_step"] == "backup/aborted by alice" and run["aborted_at"] is not None
    assert portal_version(box) == (200, OLD)
    assert not (box.layout.run / LOCK_FILE).exists()
    again = httpx.post(abort, headers=auth, timeout=10)
    assert again.status_code == 409 and "has ended (ABORTED)" in again.json()["detail"]
    listed = httpx.get(f"{url}/api/v1/runs", params={"state": "ABORTED"}, headers=auth, timeout=10).json()
    assert [r["id"] for r in listed] == [run_id]
    metrics = httpx.get(f"{url}/metrics", headers=auth, timeout=10).text
    assert 'boxkeeper_update_runs_total{outcome="ABORTED",playbook="bitrix-modules-update"} 1.0' in metrics


def wait_for_run_state(url: str, headers: dict[str, str], run_id: int) -> dict[str, object]:
    end = time.monotonic() + 180
    while time.monotonic() < end:
        run: dict[str, object] = httpx.get(f"{url}/api/v1/runs/{run_id}", headers=headers, timeout=10).json()
        if run["finished_at"] is not None:
            return run
        time.sleep(0.3)
    return wait_for_run(url, headers, run_id, 1)  # raises, naming the run


def test_abort_from_the_cli_while_update_run_goes(box: Box, tmp_path: Path) -> None:
    cfg = str(write_config(box, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    box.stage("good")
    with dump_held(box) as release:
        run = subprocess.Popen(cli("--config", cfg, "update", "run", "bitrix-modules-update", "--host",
                                   box.name, *var_args(box)),
                               env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert procs.wait_until(lambda: step_started(db, "dump the database") or run.poll() is not None,
                                    120, 0.05)
            assert run.poll() is None, dump_timeline(db)
            asked = subprocess.run(cli("--config", cfg, "runs", "abort", "1"), env=env, cwd=REPO,
                                   capture_output=True, text=True, check=False, timeout=60)
            assert asked.returncode == 0, asked.stderr
            assert "abort of run 1 requested by cli:" in asked.stdout
            shown = subprocess.run(cli("--config", cfg, "runs", "show", "1"), env=env, cwd=REPO,
                                   capture_output=True, text=True, check=False, timeout=60)
            assert "abort requested by cli:" in shown.stdout
        finally:
            release()
        out, err = run.communicate(timeout=300)
    assert run.returncode == 7, out + err  # ABORTED
    assert "ABORTED by cli:" in out and "nothing on the box was changed" in out
    assert portal_version(box) == (200, OLD)
    assert not (box.layout.run / LOCK_FILE).exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM workflow_host_leases").fetchone() == (0,)
    ended = subprocess.run(cli("--config", cfg, "runs", "abort", "1"), env=env, cwd=REPO,
                           capture_output=True, text=True, check=False, timeout=60)
    assert ended.returncode == 3 and "not aborted: run 1 has ended (ABORTED)" in ended.stderr
    unknown = subprocess.run(cli("--config", cfg, "runs", "abort", "99"), env=env, cwd=REPO,
                             capture_output=True, text=True, check=False, timeout=60)
    assert unknown.returncode == 1 and "no run with id 99" in unknown.stderr


def test_ctrl_c_of_update_run_asks_for_an_abort_instead_of_killing_the_run(box: Box, tmp_path: Path) -> None:
    cfg = str(write_config(box, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    box.stage("good")
    with dump_held(box) as release:
        run = subprocess.Popen(cli("--config", cfg, "update", "run", "bitrix-modules-update", "--host",
                                   box.name, *var_args(box)),
                               env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert procs.wait_until(lambda: step_started(db, "dump the database") or run.poll() is not None,
                                    120, 0.05)
            assert run.poll() is None, dump_timeline(db)
            run.send_signal(signal.SIGINT)

            def recorded() -> bool:
                with sqlite3.connect(db, timeout=5) as conn:
                    [(who,)] = conn.execute("SELECT abort_requested_by FROM workflow_runs").fetchall()
                return who is not None

            assert procs.wait_until(lambda: recorded() or run.poll() is not None, 60, 0.05)
            assert run.poll() is None  # the CLI waits for the run to end
        finally:
            release()
        out, err = run.communicate(timeout=300)
    assert run.returncode == 7, out + err
    assert "interrupted: asking for an abort" in out and "abort of run 1 requested by cli:" in out
    assert portal_version(box) == (200, OLD)
    assert not (box.layout.run / LOCK_FILE).exists()
