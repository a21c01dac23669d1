"""Each staged release does exactly what tests/README.md says, run as a playbook would run it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.boxes import Box
from tests.boxes.mariadb import sql
from tests.boxes.procs import processes_of, wait_until
from tests.boxes.remote import Result, connect, run, run_on

pytestmark = pytest.mark.integration
UPDATE = "cd {docroot}/bitrix && php bitrix.php update:modules -n"


def _update(box: Box) -> Result:
    return run(box.info, UPDATE.format(docroot=box.info.docroot), timeout=60)


def _page(box: Box) -> httpx.Response:
    return httpx.get(box.info.portal_url, timeout=10)


def _columns(box: Box, table: str) -> list[str]:
    return sql(Path(box.info.db.socket), f"SHOW COLUMNS FROM {table}", "portal").split("\n")


def _log(box: Box) -> str:
    return (Path(box.info.docroot) / "bitrix/modules/updater.log").read_text()


def _version(box: Box, module: str) -> str:
    text = (Path(box.info.docroot) / f"bitrix/modules/{module}/install/version.php").read_text()
    return text.split('"VERSION" => "')[1].split('"')[0]


def test_nothing_staged(box: Box) -> None:
    res = _update(box)
    assert (res.exit_code, res.stdout.strip().splitlines()[-1]) == (0, "No updates found.")


def test_good(box: Box) -> None:
    box.stage("good")
    res = _update(box)
    assert res.exit_code == 0
    assert res.stdout.strip().endswith("Updates installed successfully.")
    page = _page(box)
    assert page.status_code == 200 and '<span id="sm-version">25.100.300</span>' in page.text
    assert "PORTAL_OK" in page.text
    assert (_version(box, "main"), _version(box, "crm"), _version(box, "tasks")) == ("25.100.300",) * 2 + (
        "25.100.200",
    )
    assert any(c.startswith("CURRENCY_ID") for c in _columns(box, "b_crm_deal"))
    assert "UPD_SUCCESS - Module main updated to version 25.100.300" in _log(box)
    assert "UPD_ERROR" not in _log(box)
    again = _update(box)
    assert (again.exit_code, again.stdout.strip().splitlines()[-1]) == (0, "No updates found.")


def test_broken_fatal(box: Box) -> None:
    box.stage("broken-fatal")
    res = _update(box)
    assert res.exit_code == 0 and "Updates installed successfully." in res.stdout
    assert _page(box).status_code == 500
    php_errors = Path(box.info.docroot).parents[2] / "var/log/php-errors.log"
    assert "PHP Fatal error" in php_errors.read_text()


def test_broken_migration(box: Box) -> None:
    box.stage("broken-migration")
    res = _update(box)
    assert res.exit_code == 1
    assert "Updates installed successfully." not in res.stdout
    assert "UPD_ERROR - [main]" in _log(box)
    # half-migrated: crm's migration and main's first statement applied, main's files not installed
    assert any(c.startswith("CURRENCY_ID") for c in _columns(box, "b_crm_deal"))
    assert any(c.startswith("TIME_ZONE") for c in _columns(box, "b_user"))
    assert (
        sql(Path(box.info.db.socket), "SELECT VALUE FROM b_option WHERE NAME='~db_version'", "portal").strip()
        == "25.100.200"
    )
    assert (_version(box, "crm"), _version(box, "main")) == ("25.100.300", "25.100.200")


def test_broken_silent(box: Box) -> None:
    box.stage("broken-silent")
    res = _update(box)
    assert res.exit_code == 0 and res.stdout.strip().endswith("Updates installed successfully.")
    assert "UPD_ERROR" not in _log(box)
    page = _page(box)
    assert page.status_code == 200
    assert "DB query error." in page.text and "PORTAL_OK" not in page.text


def test_hang(box: Box) -> None:
    box.stage("hang")
    client = connect(box.info)
    try:
        res = run_on(client, UPDATE.format(docroot=box.info.docroot), timeout=5)
    finally:
        client.close()
    assert res.exit_code is None
    assert res.stdout == ""  # like the real CLI, nothing but its documented last line, which never comes
    root = Path(box.info.docroot).parents[2]
    hung = [p for p in processes_of(root) if "update:modules" in " ".join(p.cmdline())]
    assert hung, "the updater should still be running after the client gave up"
    box.reset()  # a reused box must not keep it
    assert wait_until(
        lambda: not [p for p in processes_of(root) if "update:modules" in " ".join(p.cmdline())], 10
    )


def test_self_upgrade(box: Box) -> None:
    box.stage("self-upgrade")
    first = _update(box)
    assert first.exit_code == 0
    assert (
        first.stdout.strip().splitlines()[-1] == "Update System upgraded successfully. Restart the command."
    )
    assert "25.100.200" in _page(box).text
    second = _update(box)
    assert second.exit_code == 0 and second.stdout.strip().endswith("Updates installed successfully.")
    assert '<span id="sm-version">25.100.300</span>' in _page(box).text


def test_without_no_interaction_it_asks_and_a_closed_stdin_cancels(box: Box) -> None:
    box.stage("good")
    res = run(box.info, f"cd {box.info.docroot}/bitrix && php bitrix.php update:modules </dev/null")
    assert res.exit_code == 1 and "Updates installed" not in res.stdout
    assert "25.100.200" in _page(box).text


def test_output_is_only_the_documented_last_line(box: Box) -> None:
    box.stage("good")
    assert _update(box).stdout == "Updates installed successfully.\n"
    box.reset()
    box.stage("broken-migration")
    res = _update(box)
    assert (res.exit_code, res.stdout, res.stderr) == (1, "", "")  # the failure is in updater.log only


def test_crm_only(box: Box) -> None:
    box.stage("crm-only")
    assert _update(box).stdout.strip().endswith("Updates installed successfully.")
    assert (_version(box, "crm"), _version(box, "main")) == ("25.100.300", "25.100.200")
    assert '<span id="sm-version">25.100.200</span>' in _page(box).text


def test_crm_incomplete(box: Box) -> None:
    box.stage("crm-incomplete")
    assert _update(box).stdout.strip().endswith("Updates installed successfully.")
    assert (_version(box, "crm"), _version(box, "main")) == ("25.100.200", "25.100.300")
    assert any(c.startswith("CURRENCY_ID") for c in _columns(box, "b_crm_deal"))  # its migration ran


def test_restart_loop(box: Box) -> None:
    box.stage("restart-loop")
    lasts = [_update(box).stdout.strip().splitlines()[-1] for _ in range(5)]
    assert lasts == ["Update System upgraded successfully. Restart the command."] * 4 + [
        "Updates installed successfully."]


def test_broken_agents(box: Box) -> None:
    box.stage("broken-agents")
    assert _update(box).exit_code == 0
    sock = Path(box.info.db.socket)
    sql(sock, "UPDATE b_agent SET NEXT_EXEC = NOW() - INTERVAL 1 MINUTE WHERE ACTIVE='Y'", "portal")
    res = run(box.info, f"php -f {box.info.docroot}/bitrix/modules/main/tools/cron_events.php")
    assert (res.exit_code, res.stdout) == (0, "")
    ran = sql(sock, "SELECT COUNT(*) FROM b_agent WHERE ACTIVE='Y' AND NEXT_EXEC > NOW()", "portal")
    assert ran.strip() == "0"
    assert "PORTAL_OK" in _page(box).text


def test_reset_restores_files_and_database(box: Box) -> None:
    box.stage("broken-silent")
    assert _update(box).exit_code == 0
    lock = Path(box.info.db.socket).parent / "some-playbook.lock"
    lock.write_text("run 7\n")
    box.reset()
    assert not lock.exists()
    page = _page(box)
    assert page.status_code == 200 and '<span id="sm-version">25.100.200</span>' in page.text
    assert _update(box).stdout.strip().endswith("No updates found.")
