"""bitrix-modules-update.yaml on real test boxes (sshd, nginx, PHP-FPM, MariaDB; the harness in tests/boxes).

Each release the box's stand-in update server can serve is run through the whole workflow; what is
asserted is what an admin would check afterwards: the version the portal serves, the database
content, the backup pair on disk, the cron line, the incident.
"""

from __future__ import annotations

import gzip
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.errors import HostBusyError
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary
from tests.boxes import faults, procs
from tests.boxes.box import Box
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

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_update(store, box, tmp_path)
    finally:
        stop.set()
        watcher.join()
    assert result.state == "ROLLED_BACK"
    dump = "\n".join(store.engine.raw_connection().driver_connection.iterdump())  # type: ignore[union-attr]
    assert box.info.db.password not in dump
    assert 'MYSQL_PWD="$BOXKEEPER_SECRET_captured_db_password" mysqldump' in dump
    # the run was watched while its DB commands ran, and no argv ever held the password
    assert any("mysqldump" in table for table in tables) and any("mysql " in table for table in tables)
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
