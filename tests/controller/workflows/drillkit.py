"""What the restore-drill tests and the bench need around a test box: a backup pair of the shape
bitrix-modules-update writes, the drill's variables for the box's layout, and what scratch copies
a drill left behind."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.boxes import mariadb, remote
from tests.boxes.box import Box
from tests.boxes.layout import DB_NAME

DRILL = Path(__file__).resolve().parents[3] / "playbooks" / "bitrix-backup-drill.yaml"
SCRATCH_PREFIX = "boxkeeper_drill_"


def make_pair(box: Box, run_id: int, directory: Path | None = None, *, extra_file_kib: int = 0,
              dump_options: str = "") -> Path:
    """``<dir>/boxkeeper-run-<id>/{db.sql.gz,files.tar.gz}`` made on the box over SSH with the
    commands of bitrix-modules-update's backup phase (mysqldump | gzip; tar of the docroot without
    caches). ``extra_file_kib``: the archive also holds a file of that size (random, so it does not
    compress) that the live docroot does not have any more; ``dump_options``: more mysqldump options
    (``--skip-extended-insert``: one INSERT line per row, as older dumps may have)."""
    pair = (directory or box.layout.backup_dir) / f"boxkeeper-run-{run_id}"
    docroot = shlex.quote(box.info.docroot)
    q = shlex.quote(str(pair))
    extra = ""
    if extra_file_kib:
        extra = (f"head -c {extra_file_kib * 1024} /dev/urandom > {docroot}/upload/removed-since.bin && ")
    script = (
        f"rm -rf {q} && mkdir -p -m 700 {q} && {extra}"
        f"mysqldump --single-transaction --routines --triggers --default-character-set=utf8mb4 "
        f"{dump_options} {DB_NAME}"
        f" | gzip > {q}/db.sql.gz && "
        f"tar -C {docroot} --exclude=./bitrix/cache --exclude=./bitrix/managed_cache "
        f"--exclude=./bitrix/stack_cache --exclude=./bitrix/backup -czf {q}/files.tar.gz . && "
        f"rm -f {docroot}/upload/removed-since.bin"
    )
    result = remote.run(box.info, script, timeout=120)
    assert result.exit_code == 0, result
    return pair


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to a share of its size, as an interrupted copy or a full disk leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def drill_vars(box: Box, **extra: str) -> dict[str, str]:
    layout = box.layout
    values = {
        "docroot": box.info.docroot,
        "backup_dir": str(layout.backup_dir),
        "scratch_root": str(layout.root / "home/bitrix/backup"),
        "lock_dir": str(layout.run),
    }
    values.update(extra)
    return values


def scratch_left(box: Box, scratch_root: Path) -> list[str]:
    """Scratch directories and scratch databases of any drill still on the box."""
    dirs = [p.name for p in scratch_root.glob("boxkeeper-drill-*")]
    dbs = [name for name in mariadb.sql(box.layout.mysql_socket, "SHOW DATABASES").split()
           if name.startswith(SCRATCH_PREFIX)]
    return sorted(dirs + dbs)
