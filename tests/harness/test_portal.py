"""The portal: pages read the database and show SM_VERSION; the Bitrix layout; cron agents."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.boxes import Box
from tests.boxes.mariadb import sql
from tests.boxes.procs import wait_until
from tests.boxes.remote import run

pytestmark = pytest.mark.integration


def test_pages_answer_with_version_and_db_content(box: Box) -> None:
    home = httpx.get(box.info.portal_url, timeout=10)
    admin = httpx.get(box.info.portal_url + "bitrix/admin/", timeout=10)
    assert home.status_code == 200
    assert '<span id="sm-version">25.100.200</span>' in home.text
    assert "PORTAL_OK" in home.text
    assert '<span id="deals">5</span>' in home.text  # counted in b_crm_deal
    assert admin.status_code == 200
    assert "25.100.200" in admin.text and "ADMIN_OK" in admin.text


def test_nginx_status_for_monitoring(box: Box) -> None:
    status = httpx.get(box.info.portal_url + "nginx_status", timeout=10)
    assert status.status_code == 200 and "Active connections:" in status.text


def test_secrets_and_modules_are_not_served(box: Box) -> None:
    for path in ("bitrix/.settings.php", "bitrix/modules/updater.log", "bitrix/php_interface/dbconn.php"):
        assert httpx.get(box.info.portal_url + path, timeout=10).status_code == 403


def test_bitrix_file_layout(box: Box) -> None:
    www = Path(box.info.docroot)
    settings = (www / "bitrix/.settings.php").read_text()
    assert f"'password' => '{box.info.db.password}'" in settings
    assert f"'host' => '{box.info.db.host}:{box.info.db.port}'" in settings
    for module in ("main", "crm", "tasks"):
        assert (
            '"VERSION" => "25.100.200"' in (www / f"bitrix/modules/{module}/install/version.php").read_text()
        )
    log_lines = (www / "bitrix/modules/updater.log").read_text().splitlines()
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - (UPD_SUCCESS|UPD_NOTE) - ", line) for line in log_lines
    )
    for sub in ("bitrix/cache", "bitrix/managed_cache", "bitrix/stack_cache", "upload", "bitrix/backup"):
        assert (www / sub).is_dir()
    assert not any((www / "bitrix/updates").iterdir())
    assert (www.parents[0] / "backup/archive").is_dir()
    assert www.stat().st_uid != 0  # owned by the bitrix user, as on a BitrixVM


def test_db_user_logs_in_over_tcp_and_anonymous_accounts_are_gone(box: Box) -> None:
    db = box.info.db
    res = run(
        box.info,
        f"mariadb --no-defaults -h {db.host} -P {db.port} -u {db.user} -p{db.password} -N "  # noqa: S608 (a shell command)
        f"-e \"SELECT VALUE FROM b_option WHERE MODULE_ID='main' AND NAME='~support_finish_date'\" "
        f"{db.name}",
    )
    assert res.exit_code == 0, res.stderr
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", res.stdout.strip())
    assert sql(Path(db.socket), "SELECT COUNT(*) FROM mysql.global_priv WHERE User=''").strip() == "0"


def test_cron_events_advances_agents_and_sends_mail(box: Box) -> None:
    sock = Path(box.info.db.socket)
    sql(
        sock,
        "UPDATE b_agent SET LAST_EXEC='2020-01-01 00:00:00', NEXT_EXEC='2020-01-01 00:01:00' "
        "WHERE ACTIVE='Y'",
        "portal",
    )
    queued = int(sql(sock, "SELECT COUNT(*) FROM b_event WHERE SUCCESS_EXEC='N'", "portal"))
    assert queued > 0
    res = run(box.info, f"php -f {box.info.docroot}/bitrix/modules/main/tools/cron_events.php")
    assert (res.exit_code, res.stdout, res.stderr) == (0, "", "")  # like the real one: silent
    newest = sql(
        sock, "SELECT MAX(LAST_EXEC) > NOW() - INTERVAL 1 MINUTE FROM b_agent WHERE ACTIVE='Y'", "portal"
    )
    assert newest.strip() == "1"
    assert sql(sock, "SELECT COUNT(*) FROM b_event WHERE SUCCESS_EXEC='N'", "portal").strip() == "0"


def test_box_cron_runs_the_site_cron_line(box: Box) -> None:
    """The box's crond runs the uncommented line of etc/cron.d/bx_portal (at start, then every minute)."""
    log = Path(box.info.docroot).parents[2] / "var/log/cron.log"
    assert wait_until(lambda: "cron_events.php -> 0" in log.read_text(), 30)


def test_closed_public_part_shows_the_closed_page_but_not_in_the_control_panel(box: Box) -> None:
    sock = Path(box.info.db.socket)
    sql(sock, "INSERT INTO b_option (MODULE_ID, NAME, VALUE) VALUES ('main', 'site_stopped', 'Y')", "portal")
    public = httpx.get(box.info.portal_url, timeout=10)
    admin = httpx.get(box.info.portal_url + "bitrix/admin/", timeout=10)
    assert public.status_code == 503 and 'id="site-closed"' in public.text and "PORTAL_OK" not in public.text
    assert admin.status_code == 200 and "ADMIN_OK" in admin.text
    sql(sock, "UPDATE b_option SET VALUE='N' WHERE MODULE_ID='main' AND NAME='site_stopped'", "portal")
    assert "PORTAL_OK" in httpx.get(box.info.portal_url, timeout=10).text
