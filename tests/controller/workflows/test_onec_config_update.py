"""1c-config-update.yaml on --with-1c test boxes: real sshd and PostgreSQL (the infobase's database
`buh`), the 1C TEST DOUBLES for rac and the designer (tests/boxes/doubles; DOMAIN.md's documented
behaviour only).

Every trap of DOMAIN.md's designer table is one case here. What is asserted is what an admin would
check afterwards: the run's outcome, the versions and the documents in `buh`, the infobase's locks
(sessions-deny, scheduled-jobs-deny), the agent's update marker, the dump on disk, the incident.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.store.db import Database
from controller.workflows import releases
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary
from tests.boxes import postgres
from tests.boxes.box import Box
from tests.boxes.doubles.state import make_update
from tests.controller.workflows.boxkit import executor, known_hosts_file
from tests.controller.workflows.onec_kit import (
    LAST,
    NEXT,
    PLAYBOOK,
    START,
    HookedExecutor,
    cluster,
    infobase_content,
    locks,
    marker,
    onec_vars,
    updates,
    versions,
)

pytestmark = pytest.mark.integration


Hooks = dict[str, Callable[[], None]]


def run_update(store: Database, box: Box, tmp_path: Path, *, before: Hooks | None = None,
               **extra: str) -> tuple[RunSummary, HookedExecutor]:
    ex = HookedExecutor(executor(box, known_hosts_file(box, tmp_path)), dict(before or {}))
    try:
        engine = Engine(store.session, incidents=ServiceIncidents())
        return engine.run(load_playbook(PLAYBOOK), box.name, ex, onec_vars(box, **extra)), ex
    finally:
        ex.close()


def open_incidents(store: Database, host: str) -> list[Incident]:
    with store.session() as s:
        return list(s.scalars(select(Incident).where(Incident.host_name == host, Incident.status == "open")))


def step_output(run: RunSummary, name: str) -> str:
    [entry] = [e for e in run.timeline if e.name.startswith(name)]
    return entry.stdout_tail


def assert_rolled_back(store: Database, box: Box, run: RunSummary, content_before: str) -> None:
    assert run.state == "ROLLED_BACK", run.error
    assert infobase_content(box) == content_before  # versions and documents as before, row for row
    assert locks(box) == ("off", "off")
    assert not marker(box).exists()
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "release_rolled_back" and incident.severity == "critical"


def test_good_release_succeeds_with_a_verified_dump_and_a_readable_designer_log(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    state = cluster(box_1c)
    state.add_session(user="Бухгалтер")
    state.add_session(user="Кладовщик", app="1CV8")
    seen_marker: list[str] = []
    seen_locks: list[tuple[str, str]] = []

    def during_update() -> None:
        seen_marker.append(marker(box_1c).read_text())
        seen_locks.append(locks(box_1c))

    run, ex = run_update(store, box_1c, tmp_path, before={"/UpdateCfg": during_update})

    assert run.state == "SUCCEEDED", run.error
    assert versions(box_1c) == {"config_version": NEXT, "db_config_version": NEXT, "data_version": NEXT}
    assert run.captured["version_before"] == START and run.captured["version_after"] == NEXT
    # Locked while it ran, users' sessions terminated, unlocked and the marker gone afterwards.
    assert seen_locks == [("on", "on")]
    assert seen_marker and f"boxkeeper run {run.id} on {box_1c.name}" in seen_marker[0]
    assert state.sessions() == []
    assert locks(box_1c) == ("off", "off") and cluster(box_1c).infobase()["permission_code"] == ""
    assert not marker(box_1c).exists()
    # The dump is a real custom-format dump of buh.
    dump = box_1c.layout.root / f"var/backups/boxkeeper-1c/boxkeeper-run-{run.id}/buh.dump"
    listing = subprocess.run([str(postgres.PG_BIN / "pg_restore"), "-l", str(dump)], capture_output=True,
                             text=True, check=True).stdout
    assert "TABLE DATA public documents" in listing
    # The designer's /Out log (UTF-8 with BOM, CRLF) reads as plain lines in the timeline.
    log = step_output(run, "update the configuration")
    assert "Обновление конфигурации успешно завершено" in log
    assert "\ufeff" not in log and "\r" not in log
    assert open_incidents(store, box_1c.name) == []
    # The password went to rac and the designer only as an expansion of the channel's environment.
    assert all("secret" not in text for text in ex.seen)


def test_nothing_merged_is_not_success(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """/UpdateCfg exits 0 with its success message and merges nothing: the version decides."""
    before = infobase_content(box_1c)
    run, _ = run_update(store, box_1c, tmp_path, update_dir=str(updates(box_1c) / f"{NEXT}-nothing-merged"))
    assert run.failed_step == "update/the configuration is at the release's version"
    assert "Обновление конфигурации успешно завершено" in step_output(run, "update the configuration")
    assert_rolled_back(store, box_1c, run, before)


def test_file_without_applicable_updates_is_rolled_back(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """UpdInfo.txt lists the installed version but the .cfu does not: the designer's rc 1 and
    "Файл не содержит доступных обновлений" fail the update."""
    before = infobase_content(box_1c)
    release = make_update(tmp_path / "mislabelled", NEXT, ["3.1.9.190"])
    info = release / "UpdInfo.txt"
    info.write_text(info.read_text().replace(";3.1.9.190;", f";3.1.9.190;{START};"))
    box_dir = updates(box_1c) / f"{NEXT}-mislabelled"
    subprocess.run(["cp", "-r", str(release), str(box_dir)], check=True)
    run, _ = run_update(store, box_1c, tmp_path, update_dir=str(box_dir))
    assert run.failed_step == "update/update the configuration (/UpdateCfg)"
    assert "Файл не содержит доступных обновлений" in step_output(run, "update the configuration")
    assert_rolled_back(store, box_1c, run, before)


def test_a_release_for_other_versions_stops_in_preflight(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """3.1.11.50 applies only from 3.1.10.100: refused before anything changes (chains go in order)."""
    before = infobase_content(box_1c)
    run, ex = run_update(store, box_1c, tmp_path, update_dir=str(updates(box_1c) / LAST))
    assert run.state == "FAILED"
    assert run.failed_step == "preflight/the current version is in the release's FromVersions"
    assert not any("/UpdateCfg" in text or "sessions-deny=on" in text for text in ex.seen)
    assert infobase_content(box_1c) == before and locks(box_1c) == ("off", "off")


def test_interactive_only_update_is_rolled_back(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    before = infobase_content(box_1c)
    release = updates(box_1c) / f"{NEXT}-interactive-only"
    run, _ = run_update(store, box_1c, tmp_path, update_dir=str(release))
    assert run.failed_step == "update/update the configuration (/UpdateCfg)"
    assert "Невозможно выполнение обновления конфигурации в командном режиме" in step_output(
        run, "update the configuration")
    assert_rolled_back(store, box_1c, run, before)


def test_check_config_101_is_rolled_back(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """The merged configuration has errors: /CheckConfig exits 101 after a clean-looking update."""
    before = infobase_content(box_1c)
    release = make_update(updates(box_1c) / f"{NEXT}-errors", NEXT, [START], config_errors=True)
    run, _ = run_update(store, box_1c, tmp_path, update_dir=str(release))
    assert run.failed_step == "verify/the configuration checks clean (/CheckConfig)"
    [check] = [e for e in run.timeline if e.name.startswith("the configuration checks clean")]
    assert check.exit_code == 101
    assert_rolled_back(store, box_1c, run, before)


def test_update_db_cfg_refused_with_sessions_unless_forced(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """A session that slipped in with the permission code: /UpdateDBCfg without force refuses with
    the list of sessions (rolled back); with -SessionTerminate force (the default) it is terminated."""
    before = infobase_content(box_1c)

    def user_logs_in() -> None:
        cluster(box_1c).add_session(user="Кладовщик")

    run, _ = run_update(store, box_1c, tmp_path, before={"/UpdateDBCfg": user_logs_in},
                        force_session_terminate="false")
    assert run.failed_step == "update/update the database configuration (/UpdateDBCfg)"
    assert "Кладовщик" in step_output(run, "update the database configuration")
    assert_rolled_back(store, box_1c, run, before)

    # The rollback held the release for the fleet; the session, not the release, was at fault.
    with store.session() as s:
        [hold] = releases.list_holds(s)
        releases.release(s, hold.id, actor="cli:ops", now=0.0)
    cluster(box_1c).add_session(user="Кладовщик")  # connected after the rollback: the next run ends it
    forced, _ = run_update(store, box_1c, tmp_path, before={"/UpdateDBCfg": user_logs_in})
    assert forced.state == "SUCCEEDED", forced.error
    assert versions(box_1c)["db_config_version"] == NEXT and cluster(box_1c).sessions() == []


def test_restore_ib_rollback_waits_for_sessions_to_be_gone(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """rollback_with=restoreib: /RestoreIB ignores -SessionTerminate and refuses while a session
    exists, so the rollback terminates sessions first; a user connected then does not stop it."""
    before = infobase_content(box_1c)

    def user_logs_in() -> None:
        cluster(box_1c).add_session(user="Бухгалтер")

    run, _ = run_update(store, box_1c, tmp_path, before={"/RestoreIB": user_logs_in}, dump_ib="true",
                        rollback_with="restoreib", update_dir=str(updates(box_1c) / f"{NEXT}-nothing-merged"))
    assert "Загрузка информационной базы успешно завершена" in step_output(run, "load the infobase")
    assert "Выгрузка информационной базы успешно завершена" in step_output(run, "also unload the infobase")
    assert cluster(box_1c).sessions() == []
    assert_rolled_back(store, box_1c, run, before)


def test_wrong_password_stops_before_any_change(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """A wrong infobase password is found in preflight (rac refuses it like the designer would):
    FAILED with nothing changed; the password never shows in the timeline."""
    before = infobase_content(box_1c)
    state = cluster(box_1c)
    with state.edit() as data:
        data["infobases"]["buh"]["users"]["Администратор"] = "changed-by-someone"
    run, _ = run_update(store, box_1c, tmp_path)
    assert run.state == "FAILED"
    assert run.failed_step == "preflight/credentials work and the infobase is not locked by someone else"
    assert "Недостаточно прав" in (run.error or "") + "".join(e.stderr_tail for e in run.timeline)
    assert infobase_content(box_1c) == before and locks(box_1c) == ("off", "off")
    assert not marker(box_1c).exists()
    assert all("secret" not in (e.command or "") + e.stdout_tail + e.stderr_tail for e in run.timeline)


def test_password_file_readable_by_others_is_refused(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    values = onec_vars(box_1c)
    Path(values["ib_password_file"]).chmod(0o644)
    ex = executor(box_1c, known_hosts_file(box_1c, tmp_path))
    try:
        engine = Engine(store.session, incidents=ServiceIncidents())
        run = engine.run(load_playbook(PLAYBOOK), box_1c.name, ex, values)
    finally:
        ex.close()
    assert run.state == "FAILED" and run.failed_step == "preflight/infobase password from its file"
    assert "readable by group or others" in step_output(run, "infobase password from its file")


def test_sessions_that_keep_coming_back_stop_the_run(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    """rac's terminate exits 0 whether or not the session went away: only an empty re-list counts.
    Sessions the cluster keeps listing (here: new ones arriving all the time, as a client that logs
    in again with the permission code would) fail the lock after terminate_rounds, before any change."""
    before = infobase_content(box_1c)
    state = cluster(box_1c)
    stop = threading.Event()

    def keep_logging_in() -> None:
        while not stop.is_set():
            state.add_session(user="Робот")
            stop.wait(0.1)

    worker = threading.Thread(target=keep_logging_in, daemon=True)
    try:
        run, _ = run_update(store, box_1c, tmp_path, before={"terminate --session": worker.start},
                            terminate_rounds="2")
    finally:
        stop.set()
        worker.join(10)
    assert run.state == "FAILED" and run.failed_step == "backup/terminate sessions and re-list until none"
    assert "sessions still listed" in step_output(run, "terminate sessions")
    assert infobase_content(box_1c) == before
    assert locks(box_1c) == ("off", "off") and not marker(box_1c).exists()
