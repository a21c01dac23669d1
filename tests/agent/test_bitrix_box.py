"""Proof on a test box (real MariaDB, nginx, PHP-FPM, cron): each Bitrix signal of the ``bitrix:``
profile turns its check to the right state at its next run after the box breaks, and back to OK
once the break is undone.

The checks are the ones the profile expands to (the config read as a user writes it), run the
way the scheduler runs them, one run per interval. Where a real break takes wall time (cron paused
for 20 minutes, a mail stuck for two hours, a backup 30 hours old) the box's database is moved to
that moment with SQL, as if the time had passed; everything else is the real thing: the cron line
commented out as on a BitrixVM, the vendor-like updater run by hand, a PHP page that dies, MariaDB
stopped, the backup directory full.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent.checks.base import Check, CheckResult, Resources
from agent.checks.registry import build_check
from agent.config import parse
from agent.report import Status
from tests.boxes import mariadb
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME

pytestmark = pytest.mark.integration

HOST = "portal-01"


def checks(box: Box, tmp_path: Path, **signals: Any) -> dict[str, Check]:
    """The profile's checks for the box's site, by signal name."""
    defaults: dict[str, Any] = {
        "php_fatals": {"log": str(box.layout.logs / "php-errors.log")},
        "backup": {"archive_dir": str(box.layout.backup_dir)},
        "push_server": False,
    }
    cfg = parse({"host": HOST, "bitrix": [{"docroot": box.info.docroot, "signals": {**defaults, **signals}}]})
    resources = Resources(host=cfg.host, state_dir=tmp_path / "state")
    return {spec.name.removeprefix("bitrix-"): build_check(spec, resources) for spec in cfg.checks}


def run(check: Check) -> CheckResult:
    return check.run(10.0)


def sql(box: Box, statement: str) -> str:
    return mariadb.sql(box.layout.mysql_socket, statement, DB_NAME)


def as_bitrix(box: Box, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command as the portal's user, from the docroot's bitrix/ (how cron and admins run them)."""
    return subprocess.run(["runuser", "-u", "bitrix", "--", *argv], capture_output=True, text=True,
                          timeout=120, check=False, cwd=Path(box.info.docroot) / "bitrix")


def cron_events(box: Box) -> None:
    """What the site's cron line runs every minute (agents due, queued mail)."""
    res = as_bitrix(box, "php", "-f", f"{box.info.docroot}/bitrix/modules/main/tools/cron_events.php")
    assert res.returncode == 0, res.stdout + res.stderr


def pause_cron(box: Box, paused: bool) -> None:
    """Comment (or uncomment) the site's cron line, as a BitrixVM admin pauses it."""
    path = box.layout.cron_file
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        if "cron_events.php" in line:
            line = ("#" + line.lstrip("#")) if paused else line.lstrip("#")
        out.append(line)
    path.write_text("\n".join(out) + "\n")


def test_all_signals_are_ok_on_a_pristine_box(box: Box, tmp_path: Path) -> None:
    cron_events(box)  # the cron line's minute (a box just made from its template may not have had it yet)
    for name, check in checks(box, tmp_path).items():
        first = run(check)
        assert first.status is Status.OK, f"{name}: {first.summary}"


def test_licence_expired_and_ten_days_left(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["licence"]
    assert run(check).status is Status.OK
    box.fault("licence-expired")
    expired = run(check)
    assert expired.status is Status.CRITICAL
    assert "Bitrix licence of site default expired on" in expired.summary
    assert "(20 days ago)" in expired.summary
    assert "disabled on" in expired.summary
    box.fault("licence-expired", undo=True)
    assert run(check).status is Status.OK
    sql(box, "UPDATE b_option SET VALUE=DATE_FORMAT(CURDATE() + INTERVAL 10 DAY, '%Y-%m-%d') "
             "WHERE MODULE_ID='main' AND NAME='~support_finish_date'")
    soon = run(check)
    assert soon.status is Status.WARNING and ": 10 days left (fewer than 30)" in soon.summary
    assert soon.samples[0].value == 10 * 86400
    sql(box, "UPDATE b_option SET VALUE=DATE_FORMAT(CURDATE() + INTERVAL 365 DAY, '%Y-%m-%d') "
             "WHERE MODULE_ID='main' AND NAME='~support_finish_date'")
    assert run(check).status is Status.OK


def test_agents_stop_when_the_sites_cron_line_is_paused_though_cron_runs(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path, agents={"max_lag": "10m"})["agents"]
    cron_events(box)
    assert run(check).status is Status.OK
    pause_cron(box, True)
    # 20 minutes later: nothing ran since (the agents' last run and next due time, moved back)
    sql(box, "UPDATE b_agent SET LAST_EXEC = LAST_EXEC - INTERVAL 20 MINUTE, "
             "NEXT_EXEC = NEXT_EXEC - INTERVAL 20 MINUTE WHERE ACTIVE='Y'")
    stopped = run(check)
    assert box.is_running("cron")  # crond itself is fine: only the site's line is off
    assert stopped.status is Status.CRITICAL
    assert stopped.summary.startswith(f"Bitrix agents are not running on {HOST}: newest run 2")
    assert stopped.summary.endswith("min ago, 3 overdue")
    lag = {s.name: s.value for s in stopped.samples}["boxkeeper_bitrix_agents_lag_seconds"]
    assert lag >= 20 * 60
    pause_cron(box, False)
    cron_events(box)  # the line's next minute
    back = run(check)
    assert back.status is Status.OK and ", 0 overdue of 3" in back.summary


def test_mail_queued_and_not_sent(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["mail_queue"]
    cron_events(box)
    assert run(check).summary.endswith("is empty")
    pause_cron(box, True)
    sql(box, "INSERT INTO b_event (EVENT_NAME, LID, C_FIELDS, DATE_INSERT, SUCCESS_EXEC) VALUES "
             "('CRM_DEAL_ASSIGNED', 's1', '', NOW() - INTERVAL 2 HOUR, 'N'), "
             "('USER_INFO', 's1', '', NOW() - INTERVAL 10 MINUTE, 'N')")
    stuck = run(check)
    assert stuck.status is Status.CRITICAL
    assert stuck.summary == (f"Bitrix mail is not being sent on {HOST}: 2 queued, the oldest 2 h old "
                             "(oldest over 1 h)")
    pause_cron(box, False)
    cron_events(box)
    sent = run(check)
    assert (sent.status, sent.summary) == (Status.OK, f"Bitrix mail queue on {HOST} is empty")


def test_a_failed_update_leaves_upd_error(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["updates"]
    assert "from its end" in run(check).summary  # the box's old UPD_* lines never alert
    box.stage("broken-migration")
    res = as_bitrix(box, "php", "bitrix.php", "update:modules", "-n")
    assert res.returncode == 1, res.stdout + res.stderr
    failed = run(check)
    assert failed.status is Status.CRITICAL
    assert failed.summary.startswith("Bitrix updater logged 1 new UPD_ERROR on site default: ")
    assert "- UPD_ERROR - [main] Error installing update: SQL error in statement 2" in failed.summary
    assert run(check).status is Status.OK  # the next interval: nothing new


def test_a_php_fatal_in_the_error_log(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["php_fatals"]
    assert run(check).status is Status.OK
    box.stage("broken-fatal")
    assert as_bitrix(box, "php", "bitrix.php", "update:modules", "-n").returncode == 0
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(box.info.portal_url, timeout=10)  # noqa: S310 - the box's own portal
    page.value.close()
    assert page.value.code == 500
    fatal = run(check)
    assert fatal.status is Status.WARNING
    assert fatal.summary.startswith(f"1 new PHP fatal error in {box.layout.logs / 'php-errors.log'} "
                                    "(site default); last: ")
    assert "PHP Fatal error" in fatal.summary
    assert run(check).status is Status.OK


def test_mariadb_stopped(box: Box, tmp_path: Path) -> None:
    signals = checks(box, tmp_path)
    box.fault("stop-mariadb")
    results = {name: run(check) for name, check in signals.items()}
    where = f"{box.info.db.host}:{box.info.db.port}"
    assert results["mysql"].status is Status.CRITICAL
    assert results["mysql"].summary.startswith(f"cannot connect to MySQL at {where}: (2003)")
    for name, what in (("licence", "the licence date"), ("agents", "the agents (b_agent)"),
                       ("mail_queue", "the mail queue (b_event)"),
                       ("site_checker", "the site checker's result (b_option)")):
        assert results[name].status is Status.UNKNOWN, results[name].summary
        assert results[name].summary.startswith(f"cannot read {what}: cannot connect to MySQL at {where}")
        assert "settings from" in results[name].summary and "crashed" not in results[name].summary
    assert results["backup"].status is Status.UNKNOWN  # no archive, and b_event_log unreadable
    assert "b_event_log not read: cannot connect" in results["backup"].summary
    for name in ("updates", "php_fatals"):  # files only: unaffected
        assert results[name].status is Status.OK
    box.fault("stop-mariadb", undo=True)
    for name, check in signals.items():
        assert run(check).status is Status.OK, name


def test_backup_dir_full_and_no_fresh_backup(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["backup"]
    assert run(check).status is Status.OK  # BACKUP_SUCCESS 20 h ago (the seed)
    box.fault("backup-full")
    full = run(check)
    assert full.status is Status.CRITICAL
    assert f"backup dir {box.layout.backup_dir} is full (100% used, 0 B free)" in full.summary
    box.fault("backup-full", undo=True)
    assert run(check).status is Status.OK
    sql(box, "UPDATE b_event_log SET TIMESTAMP_X = NOW() - INTERVAL 30 HOUR "
             "WHERE AUDIT_TYPE_ID='BACKUP_SUCCESS'")
    stale = run(check)
    assert stale.status is Status.CRITICAL and "no successful backup in 26 h" in stale.summary
    archive = box.layout.backup_dir / "www_backup_portal_20261203.tar.gz"  # what a backup run leaves
    archive.write_bytes(os.urandom(64 * 1024))
    fresh = run(check)
    assert fresh.status is Status.OK
    assert "newest archive www_backup_portal_20261203.tar.gz 0 s old, 64.0 KiB" in fresh.summary
    old = time.time() - 3600
    smaller = box.layout.backup_dir / "www_backup_portal_20261204.tar.gz"
    smaller.write_bytes(b"\0" * 1024)
    os.utime(archive, (old, old))
    shrunk = run(check)
    assert shrunk.status is Status.WARNING and "98% smaller than the previous one" in shrunk.summary


def test_site_checker_found_errors(box: Box, tmp_path: Path) -> None:
    check = checks(box, tmp_path)["site_checker"]
    sql(box, "UPDATE b_option SET VALUE='N' WHERE MODULE_ID='main' AND NAME='site_checker_success'")
    assert run(check).status is Status.WARNING
    sql(box, "UPDATE b_option SET VALUE='Y' WHERE MODULE_ID='main' AND NAME='site_checker_success'")
    assert run(check).status is Status.OK
