"""The Bitrix signal checks' judgement, hermetic: a fake database (the ``Portal`` runner), files in
tmp_path. What each state's summary says is what an operator reads in an incident."""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.checks.base import CheckResult, Resources
from agent.checks.bitrix import agents, backup, licence, mail_queue, push_server, site_checker, updates
from agent.checks.bitrix.portal import Portal, ago
from agent.mysqlclient import DbError, DbSettings, QueryResult
from agent.report import Status
from tests.agent.conftest import LOOPBACK, FakeProcess, FakePsutil

TODAY = datetime.date(2026, 12, 3)


class FakeDb:
    """Answers each statement with the rows of the first ``answers`` key found in it."""

    def __init__(self, answers: dict[str, Sequence[tuple[Any, ...]]] | None = None,
                 error: DbError | None = None) -> None:
        self.answers = answers or {}
        self.error = error
        self.statements: list[str] = []

    def __call__(self, settings: DbSettings, statements: Sequence[str], timeout: float) -> list[QueryResult]:
        if self.error is not None:
            raise self.error
        out = []
        for statement in statements:
            self.statements.append(statement)
            rows = next((r for key, r in self.answers.items() if key in statement), ())
            out.append(QueryResult(tuple(rows), 0.001))
        return out


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "bitrix/backup").mkdir(parents=True)
    (root / "bitrix/updates").mkdir()
    (root / "bitrix/modules").mkdir()
    (root / "bitrix/.settings.php").write_text(
        "<?php return ['connections' => ['value' => ['default' => ['host' => '127.0.0.1:3306', "
        "'database' => 'portal', 'login' => 'bitrix', 'password' => 'pw']]]];")
    return root


def portal(docroot: Path, db: FakeDb, site: str = "default") -> Portal:
    spec = licence.LicenceSpec(name="x", docroot=str(docroot), site=site)  # type: ignore[arg-type]
    return Portal.of(spec, db)


DOWN = DbError("connect", "cannot connect to MySQL at 127.0.0.1:3306: (2003) Can't connect to MySQL server")


# -- licence ------------------------------------------------------------------------------------


def licence_result(docroot: Path, value: object, **spec: Any) -> CheckResult:
    db = FakeDb({"support_finish_date": [(value, TODAY)]} if value is not None else {})
    check = licence.LicenceCheck(licence.LicenceSpec(name="l", docroot=str(docroot), **spec),
                                 portal(docroot, db))
    return check.run(5)


@pytest.mark.parametrize(("days", "status"), [(365, Status.OK), (30, Status.OK), (29, Status.WARNING),
                                              (10, Status.WARNING), (7, Status.WARNING), (6, Status.CRITICAL),
                                              (0, Status.CRITICAL)])
def test_licence_days_left(docroot: Path, days: int, status: Status) -> None:
    ends = TODAY + datetime.timedelta(days=days)
    result = licence_result(docroot, ends.isoformat())
    assert result.status is status
    assert result.summary.startswith(f"Bitrix licence of site default ends on {ends}: {days} days left")
    (sample,) = result.samples
    assert (sample.name, sample.value) == ("boxkeeper_bitrix_licence_remaining_seconds", days * 86400)
    assert sample.labels == {"site": "default"}


def test_licence_expired_names_the_day_the_portal_is_disabled(docroot: Path) -> None:
    result = licence_result(docroot, "2026-11-28")
    assert result.status is Status.CRITICAL
    assert result.summary == ("Bitrix licence of site default expired on 2026-11-28 (5 days ago): the portal "
                              "will be disabled on 2026-12-13 (in 10 days)")
    result = licence_result(docroot, "2026-11-13")
    assert result.summary.endswith("(20 days ago): the portal was to be disabled on 2026-11-28")
    assert result.samples[0].value == -20 * 86400


def test_licence_date_forms_and_problems(docroot: Path) -> None:
    assert "ends on 2027-01-15" in licence_result(docroot, "15.01.2027").summary
    assert licence_result(docroot, "2027-01-15 00:00:00").status is Status.OK
    assert licence_result(docroot, b"2027-01-15").status is Status.OK
    result = licence_result(docroot, "soon")
    assert result.status is Status.UNKNOWN and "not a date YYYY-MM-DD" in result.summary
    result = licence_result(docroot, None)
    assert result.status is Status.UNKNOWN and "no licence end date" in result.summary
    assert licence_result(docroot, "2027-01-15", warning_days=60, critical_days=30).status is Status.WARNING


def test_a_signal_that_cannot_read_the_database_is_unknown_with_the_reason(docroot: Path) -> None:
    check = licence.LicenceCheck(licence.LicenceSpec(name="l", docroot=str(docroot)),
                                 portal(docroot, FakeDb(error=DOWN)))
    result = check.run(5)
    assert result.status is Status.UNKNOWN
    assert result.summary == (f"cannot read the licence date: {DOWN} (settings from "
                              f"{docroot}/bitrix/.settings.php)")
    assert "pw" not in result.summary


# -- agents ---------------------------------------------------------------------------------------


def agents_result(docroot: Path, row: tuple[Any, ...], **spec: Any) -> CheckResult:
    check = agents.AgentsCheck(agents.AgentsSpec(name="a", docroot=str(docroot), **spec),
                               portal(docroot, FakeDb({"b_agent": [row]})), "portal-01")
    return check.run(5)


def test_agents_not_running_reads_well_in_an_incident(docroot: Path) -> None:
    result = agents_result(docroot, (3, 1380, 3, 1320))
    assert result.status is Status.CRITICAL
    assert result.summary == "Bitrix agents are not running on portal-01: newest run 23 min ago, 3 overdue"
    values = {s.name: s.value for s in result.samples}
    assert values == {"boxkeeper_bitrix_agents_active": 3, "boxkeeper_bitrix_agents_overdue": 3,
                      "boxkeeper_bitrix_agents_lag_seconds": 1380}


def test_agents_some_overdue_while_others_run_is_a_warning(docroot: Path) -> None:
    result = agents_result(docroot, (40, 30, 2, 7200))
    assert result.status is Status.WARNING
    assert result.summary == ("2 of 40 Bitrix agents are overdue by more than 15 min on portal-01, "
                              "the oldest due 2 h ago (newest run 30 s ago)")


def test_agents_ok_none_active_never_run_and_a_custom_max_lag(docroot: Path) -> None:
    ok = agents_result(docroot, (3, 45, 0, -15))
    assert ok.status is Status.OK
    assert ok.summary == "Bitrix agents run on portal-01: newest run 45 s ago, 0 overdue of 3"
    assert agents_result(docroot, (0, None, None, None)).status is Status.OK
    never = agents_result(docroot, (3, None, 3, 4000))
    assert never.status is Status.CRITICAL and "newest never run" not in never.summary
    assert never.summary == "Bitrix agents are not running on portal-01: never run, 3 overdue"
    assert agents_result(docroot, (3, 100, 0, 10), max_lag=60).status is Status.CRITICAL
    db = FakeDb({"b_agent": [(1, 1, 0, 0)]})
    spec = agents.AgentsSpec(name="a", docroot=str(docroot), max_lag=90)  # type: ignore[arg-type]
    agents.AgentsCheck(spec, portal(docroot, db), "h").run(5)
    assert "INTERVAL 90 SECOND" in db.statements[0]


def test_agents_of_another_site_name_it(docroot: Path) -> None:
    check = agents.AgentsCheck(agents.AgentsSpec(name="a", docroot=str(docroot), site="shop"),
                               portal(docroot, FakeDb({"b_agent": [(3, 1380, 3, 0)]}), site="shop"),
                               "portal-01")
    result = check.run(5)
    assert result.summary.startswith("Bitrix agents are not running on portal-01 (site shop):")
    assert {s.labels["site"] for s in result.samples} == {"shop"}


# -- mail queue -------------------------------------------------------------------------------------


def mail_result(docroot: Path, row: tuple[Any, ...], **spec: Any) -> CheckResult:
    check = mail_queue.MailQueueCheck(mail_queue.MailQueueSpec(name="m", docroot=str(docroot), **spec),
                                      portal(docroot, FakeDb({"b_event": [row]})), "portal-01")
    return check.run(5)


def test_mail_queue(docroot: Path) -> None:
    empty = mail_result(docroot, (0, None))
    assert (empty.status, empty.summary) == (Status.OK, "Bitrix mail queue on portal-01 is empty")
    assert [s.value for s in empty.samples] == [0, 0]
    fresh = mail_result(docroot, (2, 300))
    assert (fresh.status, fresh.summary) == (Status.OK, "2 mails queued on portal-01, the oldest 5 min old")
    stuck = mail_result(docroot, (14, 7500))
    assert stuck.status is Status.CRITICAL
    assert stuck.summary == ("Bitrix mail is not being sent on portal-01: 14 queued, the oldest 2 h 5 min "
                             "old (oldest over 1 h)")
    assert mail_result(docroot, (2, 1200), warning_age=900).status is Status.WARNING
    assert mail_result(docroot, (500, 60), warning_count=100, critical_count=1000).status is Status.WARNING
    assert mail_result(docroot, (1000, 60), warning_count=100, critical_count=1000).status is Status.CRITICAL


# -- site checker -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "status", "words"), [
    ([("N",)], Status.WARNING, "found errors on site default"),
    ([("Y",)], Status.OK, "passed on site default"),
    ([], Status.OK, "has not been run"),
])
def test_site_checker(docroot: Path, rows: list[tuple[str]], status: Status, words: str) -> None:
    check = site_checker.SiteCheckerCheck(site_checker.SiteCheckerSpec(name="s", docroot=str(docroot)),
                                          portal(docroot, FakeDb({"site_checker_success": rows})))
    result = check.run(5)
    assert result.status is status and words in result.summary


# -- backup -------------------------------------------------------------------------------------------


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    path = tmp_path / "archive"
    path.mkdir()
    return path


def make_file(path: Path, size: int, age: float) -> None:
    path.write_bytes(b"\0" * size)
    then = time.time() - age
    os.utime(path, (then, then))


def backup_result(docroot: Path, archive_dir: Path, events: list[tuple[str, int]] | None = None,
                  error: DbError | None = None, **spec: Any) -> CheckResult:
    db = FakeDb({"b_event_log": events or []}, error)
    check = backup.BackupCheck(backup.BackupSpec(name="b", docroot=str(docroot), archive_dir=str(archive_dir),
                                                 **spec), portal(docroot, db))
    return check.run(5)


def test_backup_fresh_archive_and_success(docroot: Path, archive_dir: Path) -> None:
    make_file(archive_dir / "www_backup_20261202.tar.gz", 2000, 3600 * 5)
    make_file(archive_dir / "www_backup_20261201.tar.gz", 2100, 3600 * 29)
    make_file(archive_dir / "notes.txt", 10, 60)
    result = backup_result(docroot, archive_dir, [("BACKUP_SUCCESS", 3600 * 20)])
    assert result.status is Status.OK, result.summary
    assert result.summary == ("Bitrix backups of site default: newest archive www_backup_20261202.tar.gz 5 h "
                              "old, 2.0 KiB; last BACKUP_SUCCESS 20 h ago")
    values = {s.name: s.value for s in result.samples}
    assert values["boxkeeper_bitrix_backup_size_bytes"] == 2000
    assert 3600 * 5 - 5 < values["boxkeeper_bitrix_backup_age_seconds"] < 3600 * 5 + 5


def test_backup_volumes_count_as_one_archive(docroot: Path, archive_dir: Path) -> None:
    for part in ("", ".1", ".2"):
        make_file(archive_dir / f"portal.tar.gz{part}", 1000, 600)
    make_file(archive_dir / "older.tar.gz", 3100, 90000)
    result = backup_result(docroot, archive_dir)
    assert "newest archive portal.tar.gz 10 min old, 2.9 KiB" in result.summary
    assert result.status is Status.OK  # 3000 against 3100: no drop


def test_backup_problems(docroot: Path, archive_dir: Path) -> None:
    stale = backup_result(docroot, archive_dir, [("BACKUP_SUCCESS", 3600 * 30)])
    assert stale.status is Status.CRITICAL
    assert stale.summary.startswith(
        "Bitrix backups of site default: no successful backup in 26 h; no archive in ")
    none = backup_result(docroot, archive_dir)
    assert none.status is Status.CRITICAL and "no backup found" in none.summary
    failed = backup_result(docroot, archive_dir, [("BACKUP_SUCCESS", 3600 * 20), ("BACKUP_ERROR", 3600)])
    assert failed.status is Status.CRITICAL
    assert "the last backup failed (BACKUP_ERROR in b_event_log 60 min ago)" in failed.summary
    make_file(archive_dir / "b-new.tar.gz", 400, 600)
    make_file(archive_dir / "a-old.tar.gz", 1000, 90000)
    shrunk = backup_result(docroot, archive_dir)
    assert shrunk.status is Status.WARNING
    assert "the newest archive is 60% smaller than the previous one (400 B against 1000 B)" in shrunk.summary
    make_file(docroot / "bitrix/backup/auto_lock", 0, 3600 * 30)
    locked = backup_result(docroot, archive_dir, max_size_drop=90)
    assert locked.status is Status.WARNING
    assert "bitrix/backup/auto_lock is 30 h old: a backup stopped midway" in locked.summary


def test_backup_with_the_database_down_judges_the_files(docroot: Path, archive_dir: Path) -> None:
    make_file(archive_dir / "fresh.tar.gz", 100, 600)
    result = backup_result(docroot, archive_dir, error=DOWN)
    assert result.status is Status.OK
    assert "(b_event_log not read: cannot connect to MySQL" in result.summary
    (archive_dir / "fresh.tar.gz").unlink()
    assert backup_result(docroot, archive_dir, error=DOWN).status is Status.UNKNOWN


# -- updates ---------------------------------------------------------------------------------------


def test_update_leftovers(docroot: Path, tmp_path: Path) -> None:
    spec = updates.UpdatesSpec(name="u", docroot=str(docroot))
    check = updates.build(spec, Resources(state_dir=tmp_path / "state"))
    assert check.run(5).summary == "no bitrix/modules/updater.log yet"
    leftover = docroot / "bitrix/updates/update_m1764700000"
    leftover.mkdir()
    make_file(docroot / "bitrix/updates/.htaccess", 10, 90000)
    assert check.run(5).status is Status.OK  # fresh: an update may be running
    then = time.time() - 7200
    os.utime(leftover, (then, then))
    result = check.run(5)
    assert result.status is Status.WARNING
    assert result.summary.endswith(
        "1 leftovers of an unfinished update in bitrix/updates/: update_m1764700000/ (2 h old)")


# -- push server ------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen(4)
    yield sock
    sock.close()


def push_result(docroot: Path, address: str, processes: list[FakeProcess]) -> CheckResult:
    spec = push_server.PushServerSpec(name="p", docroot=str(docroot),  # type: ignore[arg-type]
                                      address=push_server.Address.parse(address))
    check = push_server.build(spec, Resources(processes=FakePsutil(processes)))  # type: ignore[arg-type]
    return check.run(2)


def test_push_server(docroot: Path, listener: socket.socket) -> None:
    node = FakeProcess(4242, "node", ["/usr/bin/node", "/opt/push-server/server.js", "--config",
                                      "/etc/push-server/push-server-pub-9010.json"])
    address = f"{LOOPBACK}:{listener.getsockname()[1]}"
    ok = push_result(docroot, address, [node])
    assert ok.status is Status.OK and ok.summary == f"Bitrix push server runs: 1 processes, {address} answers"
    down = push_result(docroot, address, [FakeProcess(1, "nginx", ["nginx: master"])])
    assert down.status is Status.CRITICAL
    assert "0 processes match 'push-server' (want at least 1)" in down.summary
    listener.close()
    closed = push_result(docroot, address, [node])
    assert closed.status is Status.CRITICAL and f"{address} does not accept connections" in closed.summary
    assert {s.name: s.value for s in closed.samples} == {"boxkeeper_bitrix_push_server_processes": 1,
                                                         "boxkeeper_bitrix_push_server_up": 0}


def test_ago() -> None:
    assert [ago(s) for s in (0, 89, 90, 1380, 5400, 7500, 86400 * 2 + 3600 * 7, 86400 * 3)] == [
        "0 s", "89 s", "2 min", "23 min", "1 h 30 min", "2 h 5 min", "2 days 7 h", "3 days"]


