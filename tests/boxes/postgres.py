"""The PostgreSQL of a box started with --with-1c (the 1C infobase's DBMS).

initdb and postgres refuse to run as root: both run as the `postgres` user, which owns the data
dir and the socket dir. The initdb result is cached like the MariaDB template and copied.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path

from . import procs
from .errors import BoxCommandError, BoxStartError
from .layout import PG_USER, BoxLayout
from .mariadb import CACHE_DIR

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INFOBASE_DB = "buh"


def template() -> Path:
    final = CACHE_DIR / "pg15-template"
    if (final / "PG_VERSION").exists():
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    CACHE_DIR.chmod(0o755)
    with open(CACHE_DIR / "pg.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "PG_VERSION").exists():
            return final
        work = Path(tempfile.mkdtemp(prefix="pg-build-", dir=CACHE_DIR))
        work.chmod(0o755)
        shutil.chown(work, "postgres", "postgres")
        res = procs.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "initdb"),
                "-D",
                str(work / "data"),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            timeout=120,
        )
        if res.returncode != 0:
            raise BoxCommandError(["initdb"], res.returncode, res.stdout + res.stderr)
        shutil.rmtree(final, ignore_errors=True)
        (work / "data").rename(final)
        shutil.rmtree(work, ignore_errors=True)
    return final


def install(layout: BoxLayout) -> None:
    layout.pg_datadir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template(), layout.pg_datadir, symlinks=True)
    for path in [layout.pg_datadir, *layout.pg_datadir.rglob("*")]:
        shutil.chown(path, "postgres", "postgres")
    layout.pg_datadir.chmod(0o700)
    layout.pg_socket_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(layout.pg_socket_dir, "postgres", "postgres")
    log = layout.log_file("pg")
    log.touch()
    shutil.chown(log, "postgres", "postgres")


def start(layout: BoxLayout) -> None:
    procs.spawn(
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(layout.pg_datadir),
            "-c",
            f"listen_addresses={layout.address}",
            "-c",
            f"port={layout.pg_port}",
            "-c",
            f"unix_socket_directories={layout.pg_socket_dir}",
            "-c",
            "shared_buffers=16MB",
            "-c",
            "max_connections=30",
            "-c",
            "fsync=off",
        ],
        log=layout.log_file("pg"),
        pid_file=layout.pid_file("pg"),
        user="postgres",
    )


def psql(layout: BoxLayout, sql: str, database: str = "postgres") -> str:
    argv = [
        str(PG_BIN / "psql"),
        "-h",
        str(layout.pg_socket_dir),
        "-p",
        str(layout.pg_port),
        "-U",
        "postgres",
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-qAt",
    ]
    res = procs.run(argv, input_text=sql, timeout=60)
    if res.returncode != 0:
        raise BoxCommandError(argv, res.returncode, res.stdout + res.stderr, box=layout.name)
    return res.stdout


def wait_ready(layout: BoxLayout, timeout: float = 60) -> None:
    def ready() -> bool:
        res = procs.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", str(layout.pg_socket_dir), "-p", str(layout.pg_port)]
        )
        return res.returncode == 0

    if not procs.wait_until(ready, timeout, 0.1):
        raise BoxStartError("pg", procs.tail(layout.log_file("pg")), box=layout.name)


def provision(layout: BoxLayout, password: str) -> None:
    """The 1C role and the infobase's database with its configuration table."""
    psql(
        layout,
        f"CREATE ROLE {PG_USER} LOGIN SUPERUSER PASSWORD '{password}';"
        f"CREATE DATABASE {INFOBASE_DB} OWNER {PG_USER};",
    )
    reset(layout)


def reset(layout: BoxLayout) -> None:
    psql(
        layout,
        "DROP TABLE IF EXISTS config, documents;"
        "CREATE TABLE config (key text PRIMARY KEY, value text NOT NULL);"
        "INSERT INTO config VALUES ('config_version', '3.1.9.200'), ('db_config_version', '3.1.9.200'),"
        " ('data_version', '3.1.9.200');"
        "CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, amount numeric(18,2));"
        "INSERT INTO documents (title, amount) VALUES ('Реализация 0001', 150000), "
        "('Поступление 0002', 82000.50), ('Платёжное поручение 0003', 12000);",
        database=INFOBASE_DB,
    )
    shutil.chown(layout.pg_socket_dir, "postgres", "postgres")
