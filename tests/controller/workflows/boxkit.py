"""What the workflow integration tests need around the test boxes (tests/boxes): an SSH executor with
the box's pinned key, the playbook variables that point at the box's layout, and DB/portal observations."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from controller.workflows.ssh import SSHExecutor, SSHOptions, SSHTarget
from tests.boxes import mariadb
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME

PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "bitrix-modules-update.yaml"
#: b_agent and b_event change whenever cron_events.php runs (the box's cron, and the playbook's
#: "cron agents run" check); their rows are compared without the run timestamps.
AGENT_TABLES = ("b_agent", "b_event")


def known_hosts_file(box: Box, directory: Path) -> Path:
    path = directory / f"known_hosts.{box.name}"
    path.write_text(box.info.known_hosts.strip() + "\n")
    return path


def executor(box: Box, known_hosts: Path, **options: float | bool) -> SSHExecutor:
    info = box.info
    target = SSHTarget(
        box.name, info.address, info.ssh_port, info.ssh_user, info.ssh_key, known_hosts=str(known_hosts)
    )
    return SSHExecutor(target, SSHOptions(**options))  # type: ignore[arg-type]


def bitrix_vars(box: Box, **extra: str) -> dict[str, str]:
    layout = box.layout
    values = {
        "docroot": box.info.docroot,
        "backup_dir": str(layout.backup_dir),
        "lock_dir": str(layout.run),
        "cron_file": str(layout.cron_file),
        "portal_url": box.info.portal_url,
        "php_error_log": str(layout.logs / "php-errors.log"),
        "update_timeout": "30",
    }
    values.update(extra)
    return values


def portal_version(box: Box) -> tuple[int, str]:
    """(HTTP status, SM_VERSION shown on the home page or the body's start)."""
    response = httpx.get(box.info.portal_url, timeout=10)
    m = re.search(r'id="sm-version">([^<]+)<', response.text)
    return response.status_code, m.group(1) if m and "PORTAL_OK" in response.text else response.text[:200]


def db_fingerprint(box: Box) -> dict[str, str]:
    """Every table of the portal DB: its definition and CHECKSUM TABLE (b_agent/b_event: rows
    without run timestamps)."""
    sock = box.layout.mysql_socket
    tables = mariadb.sql(sock, "SHOW TABLES", DB_NAME).split()
    result: dict[str, str] = {}
    for table in tables:
        create = mariadb.sql(sock, f"SHOW CREATE TABLE `{table}`", DB_NAME)
        create = re.sub(r" AUTO_INCREMENT=\d+", "", create)
        if table == "b_agent":
            data = mariadb.sql(
                sock, "SELECT ID, MODULE_ID, NAME, ACTIVE, AGENT_INTERVAL FROM b_agent ORDER BY ID", DB_NAME
            )
        elif table == "b_event":
            data = mariadb.sql(sock, "SELECT ID, EVENT_NAME, LID, C_FIELDS FROM b_event ORDER BY ID", DB_NAME)
        else:
            data = mariadb.sql(sock, f"CHECKSUM TABLE `{table}` EXTENDED", DB_NAME)
        result[table] = create + "\n" + data
    return result
