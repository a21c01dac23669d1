"""1c-config-update.yaml through the operator's CLI on a --with-1c test box: a release chain run
release by release (`update run … --chain update_dir=…`), and kill -9 of the controller during the
lock, the update and the rollback followed by `update reconcile` (as test_crash_recovery.py does for
the Bitrix playbook): the infobase always ends unlocked and at one consistent version."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from controller.cli import main
from tests.boxes.box import Box
from tests.boxes.doubles.state import make_update
from tests.controller.workflows.onec_kit import (
    LAST,
    NEXT,
    START,
    infobase_content,
    locks,
    marker,
    onec_vars,
    updates,
    versions,
)
from tests.controller.workflows.test_cli import write_config
from tests.controller.workflows.test_crash_recovery import (
    REPO,
    cli,
    dump_timeline,
    kill_9_at_step_then_reconcile,
)

pytestmark = pytest.mark.integration


def var_args(box: Box, *, chained: str = "", **extra: str) -> list[str]:
    """``--var`` of every variable but the one a ``--chain`` gives."""
    args: list[str] = []
    for key, value in onec_vars(box, **extra).items():
        if key != chained:
            args += ["--var", f"{key}={value}"]
    return args


def run_states(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [str(state) for (state,) in conn.execute("SELECT state FROM workflow_runs ORDER BY id")]


def last_status(db: Path, name: str) -> str:
    """The status of the latest timeline row of a step (the one the reconcile ran)."""
    with sqlite3.connect(db) as conn:
        query = "SELECT status FROM workflow_run_steps WHERE name LIKE ? ORDER BY seq DESC LIMIT 1"
        [(status,)] = conn.execute(query, (name + "%",)).fetchall()
        return str(status)


def consistent_version(box: Box) -> str:
    v = versions(box)
    assert v["config_version"] == v["db_config_version"] == v["data_version"], v
    return v["config_version"]


def test_chain_goes_release_by_release_each_verified(
        box_1c: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(box_1c, tmp_path))
    assert main(["--config", cfg, "hosts", "trust", box_1c.name, "--yes"]) == 0
    run = ["--config", cfg, "update", "run", "1c-config-update", "--host", box_1c.name,
           *var_args(box_1c, chained="update_dir")]
    code = main([*run, "--chain", f"update_dir={updates(box_1c) / NEXT}",
                 "--chain", f"update_dir={updates(box_1c) / LAST}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "chain 1/2" in out and "chain 2/2" in out
    assert run_states(tmp_path / "state/boxkeeper.db") == ["SUCCEEDED", "SUCCEEDED"]
    assert consistent_version(box_1c) == LAST
    assert locks(box_1c) == ("off", "off") and not marker(box_1c).exists()


def test_chain_stops_at_the_first_release_that_rolls_back(
        box_1c: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """3.1.10 succeeds, 3.1.11 fails its /CheckConfig and is rolled back to 3.1.10 (verified), the
    third release is not tried; the exit code is the rolled-back run's."""
    cfg = str(write_config(box_1c, tmp_path))
    assert main(["--config", cfg, "hosts", "trust", box_1c.name, "--yes"]) == 0
    broken = make_update(updates(box_1c) / f"{LAST}-errors", LAST, [NEXT], config_errors=True)
    run = ["--config", cfg, "update", "run", "1c-config-update", "--host", box_1c.name,
           *var_args(box_1c, chained="update_dir")]
    code = main([*run, "--chain", f"update_dir={updates(box_1c) / NEXT}", "--chain", f"update_dir={broken}",
                 "--chain", f"update_dir={updates(box_1c) / LAST}"])
    out = capsys.readouterr().out
    assert code == 4, out  # ROLLED_BACK
    assert "chain stopped: 1 later release(s) not run" in out
    assert run_states(tmp_path / "state/boxkeeper.db") == ["SUCCEEDED", "ROLLED_BACK"]
    assert consistent_version(box_1c) == NEXT
    assert locks(box_1c) == ("off", "off") and not marker(box_1c).exists()


def test_a_bad_chain_is_a_config_error_before_anything_runs(
        box_1c: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(box_1c, tmp_path))
    run = ["--config", cfg, "update", "run", "1c-config-update", "--host", box_1c.name, *var_args(box_1c)]
    assert main([*run, "--chain", "3.1.10.100"]) == 2
    assert "--chain: 3.1.10.100: expected KEY=VALUE" in capsys.readouterr().err
    assert main([*run, "--chain", f"update_dir={updates(box_1c) / LAST}"]) == 2  # update_dir is a --var too
    assert "--chain: update_dir: expected a variable not also given with --var" in capsys.readouterr().err
    assert not (tmp_path / "state/boxkeeper.db").exists() or run_states(tmp_path / "state/boxkeeper.db") == []


#: kill -9 as soon as this step has started (its timeline row is written before it runs)
@pytest.mark.slow
@pytest.mark.parametrize(("kill_at", "release"), [
    ("lock the infobase", NEXT),                                      # BACKUP: the lock being taken
    ("terminate sessions and re-list", NEXT),                         # BACKUP: locked, sessions going
    ("update the configuration (/UpdateCfg)", NEXT),                  # UPDATE: in doubt → rolled back
    ("update the database configuration", NEXT),                      # UPDATE: merged, DB behind
    ("the data-update run", NEXT),                                    # UPDATE: DB done, data behind
    ("restore the database (pg_restore", f"{NEXT}-nothing-merged"),   # ROLLBACK
    ("unlock the infobase", NEXT),                                    # finally, outcome decided
])
def test_kill_9_then_reconcile_leaves_the_infobase_unlocked_and_consistent(
        box_1c: Box, tmp_path: Path, kill_at: str, release: str) -> None:
    cfg = str(write_config(box_1c, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    content_before = infobase_content(box_1c)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box_1c.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    done = kill_9_at_step_then_reconcile(
        cli("--config", cfg, "update", "run", "1c-config-update", "--host", box_1c.name,
            *var_args(box_1c, update_dir=str(updates(box_1c) / release))), cfg, db, kill_at, env)
    [state] = run_states(db)
    assert state in ("SUCCEEDED", "ROLLED_BACK"), done.stdout + dump_timeline(db)
    if kill_at.startswith(("update the", "the data-update", "restore")):
        assert state == "ROLLED_BACK", dump_timeline(db)  # an update in doubt is rolled back, never replayed
    assert locks(box_1c) == ("off", "off"), dump_timeline(db)
    assert not marker(box_1c).exists()
    # the reconcile itself unlocked (the password captured again), not a command the crash left running
    assert last_status(db, "unlock the infobase") == "ok", dump_timeline(db)
    assert consistent_version(box_1c) == (NEXT if state == "SUCCEEDED" else START)
    if state == "ROLLED_BACK":
        assert infobase_content(box_1c) == content_before
    assert not (box_1c.layout.run / "boxkeeper-update.lock").exists()
