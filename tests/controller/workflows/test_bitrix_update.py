"""bitrix-modules-update.yaml on real test boxes (sshd, nginx, PHP-FPM, MariaDB; the harness in tests/boxes).

Each release the box's stand-in update server can serve is run through the whole workflow; what is
asserted is what an admin would check afterwards: the version the portal serves, the database
content, the backup pair on disk, the cron line, the incident.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.errors import HostBusyError
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary
from tests.boxes import faults, mariadb, procs
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME
from tests.controller.workflows.boxkit import (
    PLAYBOOK,
    bitrix_vars,
    db_fingerprint,
    executor,
    known_hosts_file,
    portal_version,
)

pytestmark = pytest.mark.integration

OLD, NEW = "25.100.200", "25.100.300"


def run_update(store: Database, box: Box, tmp_path: Path, **extra: str) -> RunSummary:
    ex = executor(box, known_hosts_file(box, tmp_path))
    try:
        engine = Engine(store.session, incidents=ServiceIncidents())
        return engine.run(load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box, **extra))
    finally:
        ex.close()


def open_incidents(store: Database, host: str) -> list[Incident]:
    with store.session() as s:
        return list(s.scalars(select(Incident).where(Incident.host_name == host, Incident.status == "open")))


def updaters_running(box: Box) -> list[int]:
    return [
        p.pid
        for p in procs.processes_of(box.layout.root)
        if "update:modules" in " ".join(p.info.get("cmdline") or [])
    ]


def test_good_release_succeeds_and_keeps_a_verified_backup_pair(
    store: Database, box: Box, tmp_path: Path
) -> None:
    cron_before = box.layout.cron_file.read_text()
    box.stage("good")
    result = run_update(store, box, tmp_path)

    assert result.state == "SUCCEEDED", result.error
    assert portal_version(box) == (200, NEW)
    pair = box.layout.backup_dir / f"boxkeeper-run-{result.id}"
    with gzip.open(pair / "db.sql.gz", "rt") as dump:
        text = dump.read()
    assert "CREATE TABLE `b_option`" in text
    assert text.rstrip().splitlines()[-1].startswith("-- Dump completed")
    listing = subprocess.run(
        ["tar", "-tzf", str(pair / "files.tar.gz")], capture_output=True, text=True, check=True
    )
    assert "./bitrix/.settings.php" in listing.stdout.split()
    assert "./bitrix/cache/" not in listing.stdout  # caches are not backed up
    assert box.layout.cron_file.read_text() == cron_before  # cron line active again
    assert not (box.layout.run / "boxkeeper-update.lock").exists()
    assert result.captured["sm_version_before"] == OLD and result.captured["sm_version_after"] == NEW
    assert open_incidents(store, box.name) == []


@pytest.mark.parametrize("release", ["broken-fatal", "broken-migration", "broken-silent", "hang"])
def test_broken_release_is_rolled_back_to_the_same_db_and_version(
    store: Database, box: Box, tmp_path: Path, release: str
) -> None:
    cron_before = box.layout.cron_file.read_text()
    db_before = db_fingerprint(box)
    assert portal_version(box) == (200, OLD)
    box.stage(release)
    result = run_update(store, box, tmp_path, update_timeout="15")

    assert result.state == "ROLLED_BACK", result.error
    assert portal_version(box) == (200, OLD)
    assert db_fingerprint(box) == db_before
    assert box.layout.cron_file.read_text() == cron_before
    assert Path(f"{box.info.docroot}.failed-run-{result.id}").is_dir()  # the failed tree, kept as evidence
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "release_rolled_back" and incident.severity == "critical"
    assert "ERROR_WRONG_CODE" in incident.summary and f"boxkeeper-run-{result.id}" in incident.summary
    assert incident.details["captured"]["sm_version_before"] == OLD
    if release == "hang":
        assert "timed out" in (result.error or "")
        assert procs.wait_until(lambda: not updaters_running(box), 30)  # killed on the host


def test_self_upgrade_reruns_the_updater_and_succeeds(store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("self-upgrade")
    result = run_update(store, box, tmp_path)
    assert result.state == "SUCCEEDED", result.error
    assert portal_version(box) == (200, NEW)
    log = (Path(box.info.docroot) / "bitrix/modules/updater.log").read_text()
    assert "Update system upgraded" in log and f"Module main updated to version {NEW}" in log


def test_full_backup_disk_stops_before_any_change(store: Database, box: Box, tmp_path: Path) -> None:
    cron_before = box.layout.cron_file.read_text()
    box.stage("good")
    faults.apply(box, "backup-full")
    try:
        result = run_update(store, box, tmp_path)
    finally:
        faults.apply(box, "backup-full", undo=True)
    assert result.state == "FAILED"
    assert not [e for e in result.timeline if e.phase == "UPDATE"]  # no update attempted
    assert portal_version(box) == (200, OLD)
    assert box.layout.cron_file.read_text() == cron_before
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "release_failed"


def test_expired_licence_stops_in_preflight(store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("good")
    faults.apply(box, "licence-expired")
    result = run_update(store, box, tmp_path)
    assert result.state == "FAILED" and result.failed_step == "preflight/licence valid"
    assert portal_version(box)[1] == OLD


def test_secrets_read_from_the_box_are_never_stored_nor_in_its_process_table(
        store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("broken-migration")  # a rollback: the password is used in every phase
    tables: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what every local user of the box sees with `ps`, all through the run
        while not stop.is_set():
            tables.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.02)

    # Sampling alone can miss a short mysqldump: the box's mysql and mysqldump (first on the SSH
    # session's PATH) also take the whole process table the moment each of them starts.
    snaps = tmp_path / "ps-at-start"
    snaps.mkdir()
    shims = [box.layout.bin / tool for tool in ("mysql", "mysqldump")]
    for shim in shims:
        real = shutil.which(shim.name)
        shim.write_text(f'#!/bin/sh\nps -eo args > {snaps}/{shim.name}.$$\nexec {real} "$@"\n')
        shim.chmod(0o755)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_update(store, box, tmp_path)
    finally:
        stop.set()
        watcher.join()
        for shim in shims:
            shim.unlink()
    assert result.state == "ROLLED_BACK"
    dump = "\n".join(store.engine.raw_connection().driver_connection.iterdump())  # type: ignore[union-attr]
    assert box.info.db.password not in dump
    assert 'MYSQL_PWD="$BOXKEEPER_SECRET_captured_db_password" mysqldump' in dump
    # the process table was taken while each DB command ran, and no argv ever held the password
    tables += [f.read_text() for f in snaps.iterdir()]
    assert {f.name.split(".")[0] for f in snaps.iterdir()} == {"mysql", "mysqldump"}
    assert any("mysqldump" in t for t in tables) and any("mysql " in t for t in tables)
    assert not [t for t in tables if box.info.db.password in t]


def test_changed_host_key_is_refused_before_anything_runs(store: Database, box: Box, tmp_path: Path) -> None:
    other = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    assert other.returncode == 0
    fake_key = (tmp_path / "k.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{box.info.address}]:{box.info.ssh_port} {fake_key[0]} {fake_key[1]}\n")
    ex = executor(box, kh)
    result = Engine(store.session, incidents=ServiceIncidents()).run(
        load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box)
    )
    assert result.state == "FAILED" and "differs from the pinned key" in (result.error or "")
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "host_key_refused" and incident.severity == "critical"
    assert not (box.layout.run / "boxkeeper-update.lock").exists()


def test_unknown_host_key_is_refused(store: Database, box: Box, tmp_path: Path) -> None:
    ex = executor(box, tmp_path / "empty_known_hosts")
    result = Engine(store.session, incidents=ServiceIncidents()).run(
        load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box)
    )
    assert result.state == "FAILED" and "no pinned host key" in (result.error or "")


def test_second_run_for_a_busy_host_is_refused(store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("hang")
    engine = Engine(store.session, incidents=ServiceIncidents())
    pb = load_playbook(PLAYBOOK)
    ex = executor(box, known_hosts_file(box, tmp_path))
    results: list[RunSummary] = []
    worker = threading.Thread(
        target=lambda: results.append(engine.run(pb, box.name, ex, bitrix_vars(box, update_timeout="10")))
    )
    worker.start()
    try:
        lock = box.layout.run / "boxkeeper-update.lock"
        assert procs.wait_until(lock.exists, 30)
        with pytest.raises(HostBusyError):
            engine.start(pb, box.name, bitrix_vars(box))
        # Another controller (its own store) is stopped by the lock file on the host.
        other = Database(f"sqlite:///{tmp_path}/other.db")
        other.upgrade()
        ex2 = executor(box, known_hosts_file(box, tmp_path))
        second = Engine(other.session, incidents=ServiceIncidents()).run(pb, box.name, ex2, bitrix_vars(box))
        ex2.close()
        other.engine.dispose()
        assert second.state == "FAILED" and "host is locked by boxkeeper-run-1-" in (
            second.error or ""
        ) + "".join(e.stdout_tail for e in second.timeline)
    finally:
        worker.join(120)
        ex.close()
    assert results[0].state == "ROLLED_BACK"


def kill_sshd_during_update(box: Box, restart_after: float | None) -> threading.Thread:
    """Kill sshd (with every session) once the updater runs; start it again after a while, or never."""

    def fault() -> None:
        assert procs.wait_until(lambda: bool(updaters_running(box)), 60, 0.05)
        box.kill_sshd()
        if restart_after is not None:
            time.sleep(restart_after)
            box.start_service("sshd")

    thread = threading.Thread(target=fault)
    thread.start()
    return thread


def test_sshd_killed_mid_update_reconnects_and_rolls_back(store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("hang")
    fault = kill_sshd_during_update(box, restart_after=3.0)
    ex = executor(box, known_hosts_file(box, tmp_path), reconnect_deadline=60.0, reconnect_interval=0.5)
    try:
        result = Engine(store.session, incidents=ServiceIncidents()).run(
            load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box, update_timeout="120"))
    finally:
        fault.join(90)
        ex.close()
    assert result.state == "ROLLED_BACK", result.error
    assert "connection lost" in (result.error or "")
    assert portal_version(box) == (200, OLD)
    assert procs.wait_until(lambda: not updaters_running(box), 30)  # the rollback stopped the updater


def test_host_gone_mid_update_is_quarantined(store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("hang")
    fault = kill_sshd_during_update(box, restart_after=None)
    ex = executor(box, known_hosts_file(box, tmp_path), reconnect_deadline=3.0, reconnect_interval=0.5)
    try:
        result = Engine(store.session, incidents=ServiceIncidents()).run(
            load_playbook(PLAYBOOK), box.name, ex, bitrix_vars(box, update_timeout="120"))
    finally:
        fault.join(90)
        ex.close()
    assert result.state == "QUARANTINED"
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "host_quarantined" and incident.severity == "critical"


def module_version(box: Box, module: str) -> str:
    text = (Path(box.info.docroot) / f"bitrix/modules/{module}/install/version.php").read_text()
    return text.split('"VERSION" => "')[1].split('"')[0]


def site_stopped(box: Box) -> str:
    """main/site_stopped as stored (empty: no row)."""
    query = "SELECT VALUE FROM b_option WHERE MODULE_ID='main' AND NAME='site_stopped'"
    return mariadb.sql(box.layout.mysql_socket, query, DB_NAME).strip()


def test_module_only_release_succeeds_with_the_kernel_unchanged(
        store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("crm-only")
    result = run_update(store, box, tmp_path)

    assert result.state == "SUCCEEDED", result.error
    assert portal_version(box) == (200, OLD)  # SM_VERSION did not move, and that is right
    assert module_version(box, "crm") == NEW and module_version(box, "main") == OLD
    [check] = [e for e in result.timeline if e.name == "module versions as the update says"]
    assert "UPDATED=crm\n" in check.stdout_tail
    assert open_incidents(store, box.name) == []


def test_module_short_of_its_target_version_is_rolled_back_and_named(
        store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("crm-incomplete")  # crm's migration runs, its version stays: the updater says success
    result = run_update(store, box, tmp_path, modules=f"crm={NEW} main={NEW}")

    assert result.state == "ROLLED_BACK", result.error
    assert result.failed_step == "verify/module versions as the update says"
    assert module_version(box, "crm") == OLD and portal_version(box) == (200, OLD)
    [incident] = open_incidents(store, box.name)
    seen = incident.details["failed_output"]
    assert f"PROBLEM: module crm is at {OLD}, not at its target version {NEW}" in seen
    assert "module main" not in seen


def test_modules_restricts_the_updater_and_the_kernel_must_stay(
        store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("good")  # offers crm and main
    result = run_update(store, box, tmp_path, modules="crm")
    assert result.state == "SUCCEEDED", result.error
    assert (module_version(box, "crm"), module_version(box, "main")) == (NEW, OLD)
    assert portal_version(box) == (200, OLD)


def test_agents_that_stop_running_after_an_update_roll_it_back(
        store: Database, box: Box, tmp_path: Path) -> None:
    box.stage("broken-agents")  # pages fine, cron_events.php exits 0 silently but runs no agent
    result = run_update(store, box, tmp_path)
    assert result.state == "ROLLED_BACK", result.error
    assert result.failed_step == "verify/cron agents run (a due agent's LAST_EXEC moves)"
    checks = [e for e in result.timeline if e.name.startswith("cron agents run")]
    # after the update the due agent did not run; after the rollback the restored runner ran it
    assert [e.status for e in checks] == ["failed", "ok"]
    assert "RAN=0" in checks[0].stdout_tail and "RAN=1" in checks[1].stdout_tail


@pytest.mark.parametrize(("attempts", "state"), [("3", "ROLLED_BACK"), ("5", "SUCCEEDED")])
def test_update_attempts_bounds_the_updater_restarts(
        store: Database, box: Box, tmp_path: Path, attempts: str, state: str) -> None:
    box.stage("restart-loop")  # asks to be restarted 4 times before it installs anything
    result = run_update(store, box, tmp_path, update_attempts=attempts)
    assert result.state == state, result.error
    if state == "ROLLED_BACK":
        assert result.failed_step == "update/update modules (bitrix.php update:modules -n)"
        assert "still not done after 3 attempt(s)" in (result.error or "")
        assert portal_version(box) == (200, OLD)
    else:
        assert portal_version(box) == (200, NEW)


@pytest.mark.parametrize("close_site", ["true", "false"])
def test_public_part_is_closed_while_the_update_runs_and_open_after(
        store: Database, box: Box, tmp_path: Path, close_site: str) -> None:
    box.stage("pause")  # the updater waits for a "go" file
    results: list[RunSummary] = []
    worker = threading.Thread(
        target=lambda: results.append(run_update(store, box, tmp_path, close_site=close_site)))
    worker.start()
    try:
        assert procs.wait_until(lambda: bool(updaters_running(box)), 60, 0.05)
        during = httpx.get(box.info.portal_url, timeout=10)
        admin = httpx.get(box.info.portal_url + "bitrix/admin/", timeout=10)
    finally:
        (box.layout.update_server / "release/go").write_text("")
        worker.join(120)
    if close_site == "true":
        assert during.status_code == 503 and 'id="site-closed"' in during.text
        assert "PORTAL_OK" not in during.text
    else:
        assert during.status_code == 200 and "PORTAL_OK" in during.text
    assert admin.status_code == 200 and "ADMIN_OK" in admin.text  # the control panel stays open
    assert results[0].state == "SUCCEEDED", results[0].error
    assert portal_version(box) == (200, NEW)
    assert site_stopped(box) == ""  # as before the run: no such option row
    assert not list(box.layout.backup_dir.glob("*.site_stopped"))


def test_public_part_is_open_again_after_a_rollback(store: Database, box: Box, tmp_path: Path) -> None:
    mariadb.sql(box.layout.mysql_socket,
                "INSERT INTO b_option (MODULE_ID, NAME, VALUE) VALUES ('main', 'site_stopped', 'N')", DB_NAME)
    box.stage("broken-silent")
    result = run_update(store, box, tmp_path)
    assert result.state == "ROLLED_BACK", result.error
    assert site_stopped(box) == "N" and portal_version(box) == (200, OLD)
    [closing] = [e for e in result.timeline if e.name.startswith("close the public part")]
    assert "site_stopped before the run: N" in closing.stdout_tail
    assert "public part closed" in closing.stdout_tail


def _aged(path: Path, days: float) -> None:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize(("release", "state"), [("good", "SUCCEEDED"), ("broken-fatal", "ROLLED_BACK")])
def test_old_backup_pairs_and_failed_trees_are_pruned_only_after_success(
        store: Database, box: Box, tmp_path: Path, release: str, state: str) -> None:
    backups = box.layout.backup_dir
    old_pairs = []
    for n, days in ((901, 9), (902, 7), (903, 5), (904, 3)):  # earlier runs, oldest first
        pair = backups / f"boxkeeper-run-{n}"
        pair.mkdir()
        (pair / "db.sql.gz").write_bytes(b"x" * 4096)
        _aged(pair, days)
        old_pairs.append(pair)
    other = backups / "not-ours"  # anything else in the backup dir is left alone
    other.mkdir()
    _aged(other, 30)
    old_tree = Path(f"{box.info.docroot}.failed-run-801")
    new_tree = Path(f"{box.info.docroot}.failed-run-802")
    for tree, days in ((old_tree, 20), (new_tree, 2)):
        tree.mkdir()
        _aged(tree, days)
    box.stage(release)
    result = run_update(store, box, tmp_path, keep_pairs="3", keep_failed_days="14")

    assert result.state == state, result.error
    [space] = [e for e in result.timeline if e.name.startswith("free space")]
    assert "kept: 4 backup pair(s)" in space.stdout_tail and "2 failed tree(s)" in space.stdout_tail
    this_pair = backups / f"boxkeeper-run-{result.id}"
    assert this_pair.is_dir() and other.is_dir()
    if state == "SUCCEEDED":  # this run's pair and the two newest earlier ones
        assert [p.exists() for p in old_pairs] == [False, False, True, True]
        assert not old_tree.exists() and new_tree.is_dir()
    else:  # a rolled-back run keeps everything
        assert all(p.exists() for p in old_pairs) and old_tree.is_dir() and new_tree.is_dir()


def test_another_site_is_in_the_pair_and_its_page_is_checked(
        store: Database, box: Box, tmp_path: Path) -> None:
    site, url = box.add_site()
    box.stage("good")
    result = run_update(store, box, tmp_path, sites=f"{site}={url}")

    assert result.state == "SUCCEEDED", result.error
    archive = box.layout.backup_dir / f"boxkeeper-run-{result.id}/site-1.tar.gz"
    listing = subprocess.run(["tar", "-tvzf", str(archive)], capture_output=True, text=True,
                             check=True).stdout
    assert "./index.php" in listing and "./bitrix -> ../../www/bitrix" in listing  # its files, its links
    [check] = [e for e in result.timeline if e.name == "the other sites' pages"]
    assert check.status == "ok" and f"{url}: HTTP 200" in check.stdout_tail
    assert "SHOP_OK" in httpx.get(url, timeout=10).text


def test_release_that_breaks_only_another_site_is_rolled_back(
        store: Database, box: Box, tmp_path: Path) -> None:
    site, url = box.add_site()
    box.stage("broken-shop")  # the portal's own pages stay fine; the shop lists deals and breaks
    result = run_update(store, box, tmp_path, sites=f"{site}={url}")

    assert result.state == "ROLLED_BACK", result.error
    assert result.failed_step == "verify/the other sites' pages"
    [incident] = open_incidents(store, box.name)
    assert f"{url}: error page: DB query error" in incident.details["failed_output"]
    assert "SHOP_OK" in httpx.get(url, timeout=10).text and portal_version(box) == (200, OLD)
    assert Path(f"{site}.failed-run-{result.id}/index.php").is_file()  # its failed tree, kept as evidence
    assert (site / "bitrix").is_symlink()
