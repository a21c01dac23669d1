"""bitrix-backup-drill.yaml on real test boxes (sshd, PHP, MariaDB; the harness in tests/boxes).

What is asserted is what an admin relies on: a good pair passes with the counts it restored, a bad
one (truncated, not loadable here, no room to unpack) opens "backups of <host> cannot be restored",
the live site's database is the same afterwards, and no scratch database or directory is left in
any outcome.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary
from tests.boxes import mariadb
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME
from tests.controller.workflows.boxkit import db_fingerprint, executor, known_hosts_file
from tests.controller.workflows.drillkit import DRILL, drill_vars, make_pair, scratch_left, truncate

pytestmark = pytest.mark.integration

#: a value that a naive count of "(" or "),(" in the dump would miscount
TRICKY = "it\\'s a),(b (c) \\\\ ''d'' ;"


def run_drill(store: Database, box: Box, tmp_path: Path, **extra: str) -> RunSummary:
    ex = executor(box, known_hosts_file(box, tmp_path))
    try:
        return Engine(store.session, incidents=ServiceIncidents()).run(
            load_playbook(DRILL), box.name, ex, drill_vars(box, **extra))
    finally:
        ex.close()


def open_incidents(store: Database, host: str) -> list[Incident]:
    with store.session() as s:
        return list(s.scalars(select(Incident).where(Incident.host_name == host, Incident.status == "open")))


def live_rows(box: Box) -> int:
    sock = box.layout.mysql_socket
    tables = mariadb.sql(sock, "SHOW TABLES", DB_NAME).split()
    return sum(int(mariadb.sql(sock, f"SELECT COUNT(*) FROM `{t}`", DB_NAME))  # noqa: S608 (names SHOW TABLES gave)
               for t in tables)


def scratch_root(box: Box) -> Path:
    return box.layout.root / "home/bitrix/backup"


def assert_unrestorable(store: Database, box: Box, result: RunSummary, state: str, seen: str) -> None:
    assert result.state == state, result.error
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "backup_unrestorable" and incident.severity == "critical"
    assert incident.summary.startswith(f"backups of {box.name} cannot be restored: ")
    assert seen in incident.summary, incident.summary
    assert scratch_left(box, scratch_root(box)) == []


@pytest.mark.parametrize("dump_options", ["", "--skip-extended-insert"])
def test_good_pair_is_restored_counted_and_dropped(
    store: Database, box: Box, tmp_path: Path, dump_options: str
) -> None:
    sock = box.layout.mysql_socket
    mariadb.sql(sock, f"INSERT INTO b_option (MODULE_ID, NAME, VALUE) VALUES ('main', 'tricky', '{TRICKY}')",  # noqa: S608
                DB_NAME)  # (TRICKY is a constant, escaped for SQL on purpose)
    older = make_pair(box, 3)
    truncate(older / "db.sql.gz")  # an older, broken pair: the newest one is drilled
    os.utime(older / "db.sql.gz", (1_000_000_000, 1_000_000_000))
    rows_at_backup = live_rows(box)
    pair = make_pair(box, 5, dump_options=dump_options)
    mariadb.sql(sock, "INSERT INTO b_crm_deal (TITLE, OPPORTUNITY, STAGE_ID, ASSIGNED_BY_ID) "
                      "VALUES ('after the backup', 1, 'NEW', 1)", DB_NAME)  # the live site moved on
    before = db_fingerprint(box)

    result = run_drill(store, box, tmp_path)

    assert result.state == "SUCCEEDED", result.error
    assert result.captured["pair"] == str(pair)
    assert result.captured["restored"] == f"7 tables, {rows_at_backup} rows"
    assert result.captured["live"] == (f"7 tables, {rows_at_backup + 1} rows; "
                                       f"backup: 7 tables, {rows_at_backup} rows")
    assert result.captured["backup_sm_version"] == "25.100.200"
    assert open_incidents(store, box.name) == []
    assert scratch_left(box, scratch_root(box)) == []
    assert db_fingerprint(box) == before  # the live database was only read


def test_an_archive_under_other_names_is_drilled_when_named(
    store: Database, box: Box, tmp_path: Path
) -> None:
    """bitrix-env's own backups are a mysqldump and a tar of the docroot too (DOMAIN.md), under names
    of their own: ``db_dump`` + ``files_archive`` point the drill at them."""
    pair = make_pair(box, 8)
    db = box.layout.backup_dir / "portal_20261203.sql.gz"
    files = box.layout.backup_dir / "portal_20261203.tar.gz"
    (pair / "db.sql.gz").rename(db)
    (pair / "files.tar.gz").rename(files)
    pair.rmdir()  # no boxkeeper pair left: without the names, there is nothing to drill
    assert run_drill(store, box, tmp_path).state == "FAILED"

    result = run_drill(store, box, tmp_path, db_dump=str(db), files_archive=str(files))

    assert result.state == "SUCCEEDED", result.error
    assert (result.captured["db_dump"], result.captured["files_archive"]) == (str(db), str(files))
    assert result.captured["restored"].startswith("7 tables, ")
    assert scratch_left(box, scratch_root(box)) == []


@pytest.mark.parametrize("damaged", ["db.sql.gz", "files.tar.gz"])
def test_truncated_archive_is_an_incident_and_leaves_no_scratch(
    store: Database, box: Box, tmp_path: Path, damaged: str
) -> None:
    pair = make_pair(box, 4)
    truncate(pair / damaged)

    result = run_drill(store, box, tmp_path)

    assert_unrestorable(store, box, result, "FAILED", f"{damaged}: unexpected end of file")
    steps = {(e.phase, e.name): e.status for e in result.timeline}
    assert steps[("backup", "create the scratch directory and database")] == "ok"  # there was scratch
    assert steps[("finally", "drop the scratch database and directory")] == "ok"


def test_dump_this_server_cannot_load_is_rolled_back_out_of_scratch(
    store: Database, box: Box, tmp_path: Path
) -> None:
    """A dump of a MySQL 8 / Percona 8 server (utf8mb4_0900_ai_ci) loaded into MariaDB 10.11."""
    pair = make_pair(box, 6)
    with gzip.open(pair / "db.sql.gz", "rt") as f:
        text = f.read()
    with gzip.open(pair / "db.sql.gz", "wt") as f:
        f.write(text.replace("utf8mb4_general_ci", "utf8mb4_0900_ai_ci"))

    result = run_drill(store, box, tmp_path)

    assert_unrestorable(store, box, result, "ROLLED_BACK", "Unknown collation: 'utf8mb4_0900_ai_ci'")
    assert result.failed_step == "update/load the dump into the scratch database"


def test_full_disk_for_the_scratch_copy_is_refused_before_anything_is_made(
    store: Database, box: Box, tmp_path: Path
) -> None:
    pairs = box.layout.root / "home/bitrix/backup/pairs"
    make_pair(box, 8, pairs)
    box.fault("backup-full")  # the scratch root's file system: 100 % used

    result = run_drill(store, box, tmp_path, backup_dir=str(pairs), scratch_root=str(box.layout.backup_dir))

    assert_unrestorable(store, box, result, "FAILED", "available=0K")
    assert result.failed_step == "preflight/free space for the scratch copies"
    assert scratch_left(box, box.layout.backup_dir) == []


def test_disk_filling_while_unpacking_is_rolled_back_out_of_scratch(
    store: Database, box: Box, tmp_path: Path
) -> None:
    """The pair holds 1 MiB that the live docroot no longer has: the estimate from the live site
    passes, the unpacking runs out of space half-way."""
    pairs = box.layout.root / "home/bitrix/backup/pairs"
    make_pair(box, 9, pairs, extra_file_kib=1024)
    box.fault("backup-full")
    filler = box.layout.backup_dir / ".filler"
    filler.write_bytes(b"")  # the scratch file system now has its 512 KiB free
    (box.layout.backup_dir / "other-data").write_bytes(b"\0" * 160 * 1024)

    result = run_drill(store, box, tmp_path, backup_dir=str(pairs), scratch_root=str(box.layout.backup_dir))

    assert_unrestorable(store, box, result, "ROLLED_BACK", "No space left on device")
    assert result.failed_step == "update/unpack the files into the scratch directory"
    assert scratch_left(box, box.layout.backup_dir) == []


def test_backup_without_the_rows_of_the_live_site_fails_the_drill(
    store: Database, box: Box, tmp_path: Path
) -> None:
    """A structure-only dump restores cleanly (every table, the rows it has: none) but is not a
    backup of this portal: it holds less than min_live_share % of the live rows."""
    make_pair(box, 10, dump_options="--no-data")

    result = run_drill(store, box, tmp_path)

    assert_unrestorable(store, box, result, "ROLLED_BACK", "TOO_FEW_ROWS")
    assert result.failed_step == "verify/the backup against the live database"
    assert result.captured["restored"] == "7 tables, 0 rows"


def test_dump_that_selects_a_database_is_refused_before_it_could_write_to_it(
    store: Database, box: Box, tmp_path: Path
) -> None:
    """A dump made with --databases creates and selects `portal`: loaded into the scratch database
    it would write into the live one. The drill refuses it before loading anything."""
    make_pair(box, 11, dump_options="--databases")
    mariadb.sql(box.layout.mysql_socket, "INSERT INTO b_crm_deal (TITLE) VALUES ('after the backup')",
                DB_NAME)
    before = db_fingerprint(box)

    result = run_drill(store, box, tmp_path)

    assert_unrestorable(store, box, result, "FAILED",
                        "SELECTS_A_DATABASE: CREATE DATABASE /*!32312 IF NOT EXISTS*/ `portal`")
    assert result.failed_step == "backup_verify/the dump is complete and loads into the scratch database only"
    assert db_fingerprint(box) == before  # the deal written after the backup is still there
