"""The box's MariaDB: a pristine datadir template (made once, then copied), start, reset.

The template holds the portal database already loaded (portal.sql) with the anonymous accounts
dropped, so a box only copies ~20 MB and starts mariadbd. It is cached under /tmp keyed by the
MariaDB version and the hash of portal.sql, built under a file lock, swapped in atomically. The
seed's times are relative (``NOW() - INTERVAL 20 HOUR``): a new box reloads the seed (:func:`reset`)
so that they are relative to today, not to the day the template was built.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import procs
from .errors import BoxCommandError, BoxStartError
from .layout import DB_NAME, DB_USER, BoxLayout

SEED_SQL = Path(__file__).with_name("portal.sql")
CACHE_DIR = Path(os.environ.get("BOXKEEPER_BOX_CACHE", "/tmp/boxkeeper-box-cache"))
SERVER_OPTIONS = (
    "--no-defaults",
    "--user=root",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--max-connections=60",
    "--character-set-server=utf8mb4",
)


def _version() -> str:
    out = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[2] if len(out.split()) > 2 else out.strip()


def _bootstrap_sql() -> str:
    return f"""
DELETE FROM mysql.global_priv WHERE User='';
DROP DATABASE IF EXISTS test;
CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '{DB_USER}'@'%' IDENTIFIED BY 'template';
CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY 'template';
GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'%';
GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost';
FLUSH PRIVILEGES;
USE {DB_NAME};
{SEED_SQL.read_text()}
"""  # noqa: S608 (fixed names, no outside input)


def template() -> Path:
    """The pristine datadir (built on first use, then reused by every session)."""
    key = hashlib.sha256((_version() + SEED_SQL.read_text() + _bootstrap_sql()).encode()).hexdigest()[:12]
    final = CACHE_DIR / f"mariadb-{key}"
    if (final / "ready").exists():
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "mariadb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "ready").exists():
            return final
        work = Path(tempfile.mkdtemp(prefix="mariadb-build-", dir=CACHE_DIR))
        datadir = work / "data"
        res = procs.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            timeout=120,
        )
        if res.returncode != 0:
            raise BoxCommandError(["mariadb-install-db"], res.returncode, res.stdout + res.stderr)
        sock = work / "boot.sock"
        server = subprocess.Popen(
            [
                "mariadbd",
                *SERVER_OPTIONS,
                f"--datadir={datadir}",
                f"--socket={sock}",
                "--skip-networking",
                f"--pid-file={work / 'boot.pid'}",
                f"--log-error={work / 'boot.err'}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not procs.wait_until(lambda: _ping(sock), 60):
                raise BoxStartError("mariadbd (template)", procs.tail(work / "boot.err"))
            sql(sock, _bootstrap_sql())
            sql(sock, "SHUTDOWN")
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        (datadir / "boot.err").unlink(missing_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        datadir.rename(final)
        (final / "ready").write_text("ok\n")
        shutil.rmtree(work, ignore_errors=True)
    return final


def _ping(sock: Path) -> bool:
    res = procs.run(["mariadb-admin", "--no-defaults", f"--socket={sock}", "-uroot", "ping"], timeout=10)
    return res.returncode == 0


def sql(sock: Path, text: str, database: str | None = None) -> str:
    """Run SQL as root over the unix socket; return the tab-separated output."""
    argv = ["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "--batch", "--skip-column-names"]
    if database:
        argv.append(database)
    res = procs.run(argv, input_text=text, timeout=60)
    if res.returncode != 0:
        raise BoxCommandError(argv, res.returncode, res.stdout + res.stderr)
    return res.stdout


def install(layout: BoxLayout) -> None:
    """Copy the template into the box's datadir."""
    src = template()
    layout.mysql_datadir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, layout.mysql_datadir, ignore=shutil.ignore_patterns("ready"))


def start(layout: BoxLayout) -> None:
    procs.spawn(
        [
            "mariadbd",
            *SERVER_OPTIONS,
            f"--datadir={layout.mysql_datadir}",
            f"--socket={layout.mysql_socket}",
            f"--port={layout.db_port}",
            f"--bind-address={layout.address}",
            f"--pid-file={layout.run / 'mariadbd.pid'}",
            f"--log-error={layout.log_file('mariadb')}",
        ],
        log=layout.logs / "mariadb.out",
        pid_file=layout.pid_file("mariadb"),
    )


def wait_ready(layout: BoxLayout, timeout: float = 60) -> None:
    if not procs.wait_until(lambda: _ping(layout.mysql_socket), timeout, 0.1):
        raise BoxStartError("mariadb", procs.tail(layout.log_file("mariadb")), box=layout.name)


def set_password(layout: BoxLayout, password: str) -> None:
    sql(
        layout.mysql_socket,
        f"ALTER USER '{DB_USER}'@'%' IDENTIFIED BY '{password}';"
        f"ALTER USER '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';",
    )


def reset(layout: BoxLayout) -> None:
    """Put the portal database back to its pristine content; drop any other database a test made
    (MariaDB accounts are left as they are)."""
    system = ("mysql", "information_schema", "performance_schema", "sys")
    names = sql(layout.mysql_socket, "SELECT schema_name FROM information_schema.schemata").split()
    drops = "".join(f"DROP DATABASE `{n}`;" for n in names if n not in system)
    sql(
        layout.mysql_socket,
        f"{drops} CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
    )
    sql(layout.mysql_socket, SEED_SQL.read_text(), database=DB_NAME)
