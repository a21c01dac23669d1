"""Release holds and ``runs rollback`` with bitrix-modules-update on a real test box (sshd, nginx,
PHP-FPM, MariaDB), through the ``boxkeeper`` CLI as an operator uses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.cli import main
from controller.config import load
from controller.store.db import Database
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import db_fingerprint, portal_version
from tests.controller.workflows.test_bitrix_update import module_version
from tests.controller.workflows.test_cli import var_args, write_config

pytestmark = pytest.mark.integration

OLD, NEW = "25.100.200", "25.100.300"
PLAYBOOK = "bitrix-modules-update"


def cli(cfg: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--config", cfg, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def trusted(box: Box, tmp_path: Path) -> str:
    cfg = str(write_config(box, tmp_path))
    assert main(["--config", cfg, "hosts", "trust", box.name, "--yes"]) == 0
    return cfg


def incidents(cfg: str) -> list[SimpleNamespace]:
    db = Database(load(cfg).database, create=False)
    try:
        with db.read_session() as s:
            return [SimpleNamespace(cause=i.cause, severity=i.severity, summary=i.summary)
                    for i in s.scalars(select(Incident).order_by(Incident.id))]
    finally:
        db.dispose()


def test_a_rolled_back_release_is_held_and_skipped_until_released(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = trusted(box, tmp_path)
    capsys.readouterr()
    targets = f"crm={NEW} main={NEW}"
    box.stage("broken-fatal")  # the updater says success, the portal answers 500
    code, out, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name,
                       *var_args(box, modules=targets))
    assert code == 4 and "ROLLED_BACK" in out
    [incident] = incidents(cfg)
    assert incident.cause == "release_rolled_back"
    assert (f"release crm={NEW} main={NEW} is now held for the fleet; `boxkeeper releases release 1` to "
            "allow it again") in incident.summary

    code, out, _ = cli(cfg, capsys, "releases", "list", "--json")
    [hold] = json.loads(out)
    assert (hold["playbook"], hold["release"], hold["run_id"], hold["state"]) == (
        PLAYBOOK, f"crm={NEW} main={NEW}", 1, "held")

    # The next run of that release (targets in another order) stops after preflight, nothing changed.
    db_before = db_fingerprint(box)
    cron_before = box.layout.cron_file.read_text()
    code, out, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name,
                       *var_args(box, modules=f"main={NEW} crm={NEW}"))
    assert code == 6, out
    assert "SKIPPED" in out and "release held" in out and "boxkeeper releases release 1" in out
    assert portal_version(box) == (200, OLD) and db_fingerprint(box) == db_before
    assert box.layout.cron_file.read_text() == cron_before
    assert not (box.layout.backup_dir / "boxkeeper-run-2").exists()  # no backup taken
    assert not (box.layout.run / "boxkeeper-update.lock").exists()
    assert len(incidents(cfg)) == 1  # a skip opens no incident
    code, out, _ = cli(cfg, capsys, "runs", "--state", "skipped", "--json")
    assert [(r["id"], r["state"]) for r in json.loads(out)] == [(2, "SKIPPED")]

    code, out, _ = cli(cfg, capsys, "releases", "release", "1")
    assert code == 0 and "allowed again" in out
    code, out, _ = cli(cfg, capsys, "releases", "list", "--all", "--json")
    [hold] = json.loads(out)
    assert hold["state"] == "released" and hold["released_by"].startswith("cli:")
    box.stage("good")
    code, out, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name,
                       *var_args(box, modules=targets))
    assert code == 0, out
    assert portal_version(box) == (200, NEW)


def test_without_targets_the_reached_versions_are_held_and_roll_the_next_host_back(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = trusted(box, tmp_path)
    capsys.readouterr()
    box.stage("broken-fatal")
    code, _, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name, *var_args(box))
    assert code == 4
    code, out, _ = cli(cfg, capsys, "releases", "list", "--json")
    assert [h["release"] for h in json.loads(out)] == [f"crm={NEW} main={NEW}"]

    # The same release again: only known once the box is updated, so it is rolled back.
    db_before = db_fingerprint(box)
    box.stage("broken-fatal")
    code, out, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name, *var_args(box))
    assert code == 4, out
    code, out, _ = cli(cfg, capsys, "runs", "show", "2", "--json")
    run = json.loads(out)
    assert run["state"] == "ROLLED_BACK" and run["failed_step"] == "update/release held"
    assert run["captured"]["release_reached"] == f"crm={NEW} main={NEW}"
    assert portal_version(box) == (200, OLD) and db_fingerprint(box) == db_before
    second = incidents(cfg)[-1]
    assert "failed at update/release held" in second.summary
    assert f"release crm={NEW} main={NEW} is held for the fleet" in second.summary


def test_runs_rollback_restores_a_succeeded_runs_backup_pair(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = trusted(box, tmp_path)
    capsys.readouterr()
    db_before = db_fingerprint(box)
    box.stage("good")
    code, _, _ = cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name, *var_args(box))
    assert code == 0 and portal_version(box) == (200, NEW)

    code, out, err = cli(cfg, capsys, "runs", "rollback", "1")
    assert code == 0, out + err
    assert "run 2: bitrix-modules-update on" in out and "ROLLED_BACK" in out
    assert "the earlier run's backup pair is still kept and intact" in out
    assert portal_version(box) == (200, OLD)
    assert module_version(box, "crm") == OLD
    assert db_fingerprint(box) == db_before
    code, out, _ = cli(cfg, capsys, "runs", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows[2]["kind"] == "rollback of run 1" and rows[2]["requested_by"].startswith("cli:")
    assert rows[1]["kind"] == "update"
    [incident] = incidents(cfg)
    assert (incident.cause, incident.severity) == ("release_rolled_back", "warning")
    assert "run 1 undone on request of cli:" in incident.summary
    assert f"release crm={NEW} main={NEW} is now held" in incident.summary

    code, _, err = cli(cfg, capsys, "runs", "rollback", "1")
    assert code == 3 and "run 1 was rolled back already by run 2" in err


def test_runs_rollback_of_a_pruned_backup_says_so_and_changes_nothing(
        box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = trusted(box, tmp_path)
    capsys.readouterr()
    box.stage("good")
    assert cli(cfg, capsys, "update", "run", PLAYBOOK, "--host", box.name, *var_args(box))[0] == 0
    shutil.rmtree(box.layout.backup_dir / "boxkeeper-run-1")
    db_after_update = db_fingerprint(box)

    code, out, err = cli(cfg, capsys, "runs", "rollback", "1")
    assert code == 1
    assert "run 1 was NOT rolled back, nothing changed" in err
    assert f"MISSING {box.layout.backup_dir}/boxkeeper-run-1/db.sql.gz (pruned or removed)" in out
    assert portal_version(box) == (200, NEW) and db_fingerprint(box) == db_after_update
    assert not (box.layout.run / "boxkeeper-update.lock").exists()

    code, _, err = cli(cfg, capsys, "runs", "rollback", "2")
    assert code == 3 and "run 2 is itself a later rollback" in err
