"""kill -9 of the controller process at step boundaries, then restart (``update reconcile``): every run
ends SUCCEEDED or ROLLED_BACK and the box is healthy (portal up, cron line back, lock file gone)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.boxes import procs
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import portal_version
from tests.controller.workflows.test_cli import var_args, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def step_started(db: Path, name: str) -> bool:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT COUNT(*) FROM workflow_run_steps WHERE name LIKE ?",
                               (name + "%",)).fetchone()
            return bool(row[0])
    except sqlite3.Error:
        return False


def dump_timeline(db: Path) -> str:
    with sqlite3.connect(db, timeout=5) as conn:
        rows = conn.execute("SELECT seq, phase, name, status, message, substr(stdout_tail, -300), "
                            "substr(stderr_tail, -300) FROM workflow_run_steps ORDER BY seq")
        return "\n".join(" | ".join(str(c) for c in row) for row in rows)


def cli(*args: str) -> list[str]:
    """The ``boxkeeper`` command an operator runs (installed next to this interpreter)."""
    return [str(Path(sys.executable).parent / "boxkeeper"), *args]


def kill_9_at_step_then_reconcile(command: list[str], cfg: str, db: Path, kill_at: str,
                                  env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (an ``update run``), kill -9 it as the step ``kill_at`` starts, then
    ``update reconcile`` as a restarted controller does; its result (it must exit 0)."""
    run = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reached = procs.wait_until(lambda: step_started(db, kill_at) or run.poll() is not None, 120, 0.02)
        assert reached and run.poll() is None, dump_timeline(db)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    time.sleep(0.2)
    done = subprocess.run(cli("--config", cfg, "update", "reconcile"), env=env, cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


#: kill -9 as soon as this step has started (its row is written before it runs): one point per phase
@pytest.mark.parametrize(("kill_at", "release"), [
    ("take the host lock file", "good"),           # LOCK
    ("MySQL answers", "good"),                     # PREFLIGHT
    ("pause the site's cron line", "good"),        # BACKUP
    ("dump the database", "good"),                 # BACKUP, the public part just closed
    ("archive the docroot", "good"),               # BACKUP, after the dump
    ("the dump is complete", "good"),              # BACKUP_VERIFY
    ("update modules", "hang"),                    # UPDATE: the updater is still running on the box
    ("portal home page", "good"),                  # VERIFY
    ("restore the files", "broken-fatal"),         # ROLLBACK
    ("re-enable the site's cron line", "good"),    # finally
    ("put the public part back", "broken-fatal"),  # finally of a rolled-back run
])
def test_kill_9_then_reconcile(box: Box, tmp_path: Path, kill_at: str, release: str) -> None:
    cfg = str(write_config(box, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    cron_before = box.layout.cron_file.read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    box.stage(release)
    done = kill_9_at_step_then_reconcile(
        cli("--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name,
            *var_args(box, update_timeout="600")), cfg, db, kill_at, env)
    with sqlite3.connect(db) as conn:
        [(state,)] = conn.execute("SELECT state FROM workflow_runs").fetchall()
    assert state in ("SUCCEEDED", "ROLLED_BACK"), done.stdout + dump_timeline(db)
    expected = "25.100.300" if state == "SUCCEEDED" else "25.100.200"
    if release != "good":
        assert state == "ROLLED_BACK"  # an update in doubt is rolled back, never replayed
    assert portal_version(box) == (200, expected)  # the public part is open again (closed: 503)
    assert not list(box.layout.backup_dir.glob("*.site_stopped"))  # put back as recorded, record gone
    assert box.layout.cron_file.read_text() == cron_before
    assert not (box.layout.run / "boxkeeper-update.lock").exists()


def test_serve_reconciles_a_run_left_by_a_crash_at_start(box: Box, tmp_path: Path) -> None:
    """No operator action: the next `boxkeeper serve` finishes the run (an update in doubt → rollback)."""
    cfg = str(write_config(box, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    box.stage("hang")
    run = subprocess.Popen(cli("--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name,
                               *var_args(box, update_timeout="600")),
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reached = procs.wait_until(
            lambda: step_started(db, "update modules") or run.poll() is not None, 120, 0.02)
        assert reached and run.poll() is None, dump_timeline(db)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(30)

    def final_state() -> str | None:
        with sqlite3.connect(db, timeout=5) as conn:
            [(state,)] = conn.execute("SELECT state FROM workflow_runs").fetchall()
        return str(state) if state in ("SUCCEEDED", "FAILED", "ROLLED_BACK", "QUARANTINED") else None

    assert final_state() is None  # the crash left it unfinished
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(cli("--config", cfg, "serve", "--listen", "127.0.2.250:0"), env=env,
                                 cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert procs.wait_until(lambda: final_state() is not None or serve.poll() is not None, 240, 0.2)
            assert serve.poll() is None, log.read_text()
            assert final_state() == "ROLLED_BACK", dump_timeline(db)
        finally:
            serve.terminate()
            serve.wait(30)
    assert "reconciled run 1" in log.read_text()
    assert portal_version(box) == (200, "25.100.200")
    assert not (box.layout.run / "boxkeeper-update.lock").exists()
