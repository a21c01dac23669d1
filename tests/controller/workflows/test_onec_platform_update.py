"""1c-platform-update.yaml on a --with-1c test box: real sshd, the box's systemctl with the 1C units
TEST DOUBLE (srv1cv8-<version>@default, ras-<version>), the rac/designer doubles of both versions,
a cluster registry directory and an Apache config holding the publication's LoadModule line.

The publication's 200 is the box's nginx portal (no Apache here): the switch of the line is checked
in the file, the answer over HTTP."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary
from tests.boxes.box import Box
from tests.boxes.doubles import APACHE_CONF, PLATFORM, REGISTRY, install_platform
from tests.boxes.remote import run as remote_run
from tests.controller.workflows.boxkit import executor, known_hosts_file
from tests.controller.workflows.onec_kit import IB_USER, onec_vars
from tests.controller.workflows.test_cli import write_config
from tests.controller.workflows.test_crash_recovery import (
    REPO,
    cli,
    dump_timeline,
    kill_9_at_step_then_reconcile,
)

pytestmark = pytest.mark.integration
PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "1c-platform-update.yaml"
NEW_PLATFORM = "8.3.27.1100"


def units(box: Box) -> dict[str, dict[str, bool]]:
    data: dict[str, dict[str, bool]] = json.loads((box.layout.onec_state / "units.json").read_text())
    return data


def loaded_module(box: Box) -> str:
    [line] = [x for x in (box.layout.root / APACHE_CONF).read_text().splitlines() if "_1cws_module" in x]
    return line


def distribution(box: Box, tmp_path: Path, *, ragent_runs: bool = True) -> Path:
    """The new version as its installer would lay it out (the doubles of that version)."""
    distr = install_platform(tmp_path / "distr" / NEW_PLATFORM, box.layout.onec_state)
    if not ragent_runs:
        (distr / "ragent").chmod(0o644)  # its unit cannot start (ExecStart not executable)
    return distr


def platform_vars(box: Box, distr: Path) -> dict[str, str]:
    base = onec_vars(box)
    platforms = box.layout.root / "opt/1cv8/x86_64"
    return {
        "old_version": PLATFORM,
        "new_version": NEW_PLATFORM,
        "install_command": f"cp -a {distr} {platforms}/",
        "platform_root": str(platforms),
        "cluster_registry": str(box.layout.root / REGISTRY),
        "apache_conf": str(box.layout.root / APACHE_CONF),
        "publication_url": box.info.portal_url,
        "infobases": "buh",
        "ib_user": IB_USER,
        "ib_password_file": base["ib_password_file"],
        "designer_prefix": "",
        "backup_dir": base["backup_dir"],
        "lock_dir": base["lock_dir"],
    }


def run_update(store: Database, box: Box, tmp_path: Path, distr: Path) -> RunSummary:
    values = platform_vars(box, distr)
    ex = executor(box, known_hosts_file(box, tmp_path))
    try:
        engine = Engine(store.session, incidents=ServiceIncidents())
        return engine.run(load_playbook(PLAYBOOK), box.name, ex, values)
    finally:
        ex.close()


def test_new_platform_runs_side_by_side_and_the_old_one_stays(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    registry = box_1c.layout.root / REGISTRY
    registry_before = {p.name: p.read_bytes() for p in registry.iterdir()}
    run = run_update(store, box_1c, tmp_path, distribution(box_1c, tmp_path))

    assert run.state == "SUCCEEDED", run.error
    u = units(box_1c)
    assert u[f"srv1cv8-{NEW_PLATFORM}@default"] == {"active": True, "enabled": True}
    assert u[f"ras-{NEW_PLATFORM}"] == {"active": True, "enabled": True}
    assert u[f"srv1cv8-{PLATFORM}@default"] == {"active": False, "enabled": False}
    assert u[f"ras-{PLATFORM}"] == {"active": False, "enabled": False}
    assert f"/{NEW_PLATFORM}/wsap24.so" in loaded_module(box_1c)
    assert (box_1c.layout.root / "opt/1cv8/x86_64" / PLATFORM / "rac").exists()  # never removed by the run
    new_rac = box_1c.layout.root / "opt/1cv8/x86_64" / NEW_PLATFORM / "rac"
    assert remote_run(box_1c.info, f"{new_rac} cluster list").exit_code == 0
    assert {p.name: p.read_bytes() for p in registry.iterdir()} == registry_before
    backup = Path(onec_vars(box_1c)["backup_dir"]) / f"boxkeeper-run-{run.id}" / "reg_1541.tar.gz"
    assert backup.stat().st_size > 0


def test_a_new_server_unit_that_does_not_start_is_rolled_back_to_the_old_units_and_line(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    line_before = loaded_module(box_1c)
    run = run_update(store, box_1c, tmp_path, distribution(box_1c, tmp_path, ragent_runs=False))

    assert run.state == "ROLLED_BACK", run.error
    assert run.failed_step == "update/enable and start the new version's units"
    u = units(box_1c)
    assert u[f"srv1cv8-{PLATFORM}@default"] == {"active": True, "enabled": True}
    assert u[f"ras-{PLATFORM}"] == {"active": True, "enabled": True}
    assert not u[f"srv1cv8-{NEW_PLATFORM}@default"]["active"] and not u[f"ras-{NEW_PLATFORM}"]["active"]
    assert loaded_module(box_1c) == line_before
    assert remote_run(box_1c.info, "rac cluster list").exit_code == 0  # the cluster answers again
    assert (box_1c.layout.root / "opt/1cv8/x86_64" / NEW_PLATFORM).is_dir()  # left installed, not removed


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [
    "stop the old version's units",               # UPDATE: the server half switched
    "switch the publication's wsap24.so line",    # UPDATE: new units running, old line
    "enable and start the old version's units",   # ROLLBACK (a new unit that does not start)
])
def test_kill_9_then_reconcile_runs_the_old_platform_again(box_1c: Box, tmp_path: Path, kill_at: str) -> None:
    """kill -9 of the controller mid-switch, then `update reconcile`: an update in doubt is rolled
    back, so the old units run, the line names the old version and the cluster answers."""
    cfg = str(write_config(box_1c, tmp_path))
    db = tmp_path / "state" / "boxkeeper.db"
    line_before = loaded_module(box_1c)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(cli("--config", cfg, "hosts", "trust", box_1c.name, "--yes"), env=env, cwd=REPO,
                          capture_output=True, check=False).returncode == 0
    distr = distribution(box_1c, tmp_path, ragent_runs=not kill_at.startswith("enable and start the old"))
    args = [a for key, value in platform_vars(box_1c, distr).items() for a in ("--var", f"{key}={value}")]
    command = cli("--config", cfg, "update", "run", "1c-platform-update", "--host", box_1c.name, *args)
    done = kill_9_at_step_then_reconcile(command, cfg, db, kill_at, env)
    with sqlite3.connect(db) as conn:
        [(state,)] = conn.execute("SELECT state FROM workflow_runs").fetchall()
    assert state == "ROLLED_BACK", done.stdout + dump_timeline(db)
    u = units(box_1c)
    assert u[f"srv1cv8-{PLATFORM}@default"] == {"active": True, "enabled": True}, dump_timeline(db)
    assert u[f"ras-{PLATFORM}"] == {"active": True, "enabled": True}
    assert not u.get(f"srv1cv8-{NEW_PLATFORM}@default", {}).get("active")
    assert loaded_module(box_1c) == line_before
    assert remote_run(box_1c.info, "rac cluster list").exit_code == 0
