"""The box as a Linux server: its name, mounts worth a disk check, MySQL's address and data
directory, the backup directory, and the monitoring plugins for load and swap.

Mounts come from ``<proc>/self/mounts`` when processes are looked at (only the mount points under
the root count when the root is not the machine's own), else from the root's ``/etc/fstab``. A
mount is worth a disk check when it is ``/`` or holds the box's data: a docroot, MySQL's data,
the backups, ``/tmp``, ``/var/log``, the 1C cluster registry.

MySQL: the running server's options (``--port``, ``--bind-address``, ``--datadir``), then the
``[mysqld]``/``[server]``/``[mariadb]`` sections of my.cnf and its usual include directories, then
the portal's database host; port 3306 and ``/var/lib/mysql`` otherwise.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from agent.collectors.filesystems import DEFAULT_SKIP_FSTYPES
from agent.collectors.mounts import parse_mounts
from agent.configtypes import NAME_RE
from agent.discover.boxroot import BoxRoot
from agent.discover.model import Backup, BackupState, Disks, Mount, MysqlServer, Plugins
from agent.discover.nginx import ANY_ADDRESS
from agent.discover.services import Proc, ProcessSource

BACKUP_DIR = "/home/bitrix/backup/archive"
PLUGIN_DIRS = ("/usr/lib64/nagios/plugins", "/usr/lib/nagios/plugins")
MY_CNFS = (
    "/etc/my.cnf", "/etc/my.cnf.d/*.cnf", "/etc/percona-server.conf.d/*.cnf", "/etc/mysql/my.cnf",
    "/etc/mysql/conf.d/*.cnf", "/etc/mysql/mariadb.conf.d/*.cnf", "/etc/mysql/mysql.conf.d/*.cnf",
)
MYSQL_PORT = 3306
MYSQL_DATADIR = "/var/lib/mysql"
_SERVER_SECTION = re.compile(r"mysqld(-[\d.]+)?|server|mariadb(d)?(-[\d.]+)?")
_NO_DISK_CHECK = (DEFAULT_SKIP_FSTYPES - {"tmpfs"}) | {"swap"}
_BACKUP_EXTENSIONS = (".tar.gz", ".tgz", ".sql.gz", ".tar.zst", ".tar.xz", ".tar.bz2", ".tar", ".zip", ".gz")
TMP = "/tmp"  # noqa: S108 - the box's /tmp, a place its data lives (never written here)
_DISK_NAMES = {"/": "root", "/home": "home", TMP: "tmp", "/var": "var", "/var/log": "log"}


# -- host name -------------------------------------------------------------------------------------

def hostname(root: BoxRoot) -> Optional[str]:
    """The short name in ``/etc/hostname`` (None when missing or not a valid name)."""
    first = (root.read_text("/etc/hostname") or "").strip().split("\n")[0].strip()
    short = first.split(".")[0]
    return short if NAME_RE.fullmatch(short) else None


# -- MySQL -----------------------------------------------------------------------------------------

def mysql_options(root: BoxRoot) -> tuple[dict[str, str], Optional[str]]:
    """(server options of my.cnf: port, bind_address, datadir; the last file that set one)."""
    options: dict[str, str] = {}
    source: Optional[str] = None
    for pattern in MY_CNFS:
        for path in root.glob(pattern):
            in_server = False
            for raw in (root.read_text(path) or "").splitlines():
                line = raw.split("#")[0].strip()
                if line.startswith("["):
                    in_server = bool(_SERVER_SECTION.fullmatch(line.strip("[] ").lower()))
                elif in_server and "=" in line:
                    key, _, value = line.partition("=")
                    key = key.strip().lower().replace("-", "_")
                    if key in ("port", "bind_address", "datadir"):
                        options[key] = value.strip().strip("'\"")
                        source = path
    return options, source


def _cmdline_options(procs: Sequence[Proc]) -> dict[str, str]:
    options: dict[str, str] = {}
    for proc in procs:
        for arg in proc.cmdline:
            key, eq, value = arg.partition("=")
            key = key.lstrip("-").replace("-", "_")
            if eq and arg.startswith("--") and key in ("port", "bind_address", "datadir"):
                options.setdefault(key, value)
    return options


def _local(host: str) -> str:
    first = host.split(",")[0].strip()
    return "127.0.0.1" if first in ANY_ADDRESS or first == "localhost" else first


def _address(host: str, port: Union[str, int]) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_db_host(value: str) -> Optional[tuple[str, Optional[int]]]:
    """A Bitrix DB host (``localhost``, ``db:3307``, ``p:127.0.0.1``, ``localhost:/sock``) →
    (host, port) for TCP, or None for a socket."""
    value = value.removeprefix("p:")
    host, sep, rest = value.rpartition(":") if not value.startswith("[") else value.partition("]:")
    if not sep:
        return (value, None) if value and value != "localhost" else None
    if rest.isdigit():
        return host.strip("[]"), int(rest)
    return None  # a socket path


def mysql_server(
    root: BoxRoot, procs: Sequence[Proc], installed: bool, site_db: Optional[tuple[str, str]]
) -> Optional[MysqlServer]:
    """The MySQL address for a tcp check. ``procs``: the running server's processes; ``installed``:
    a server is installed here; ``site_db``: (host as written, file) of the main site's database."""
    running = _cmdline_options(procs)
    cnf, cnf_file = mysql_options(root)
    datadir = root.box_path(running.get("datadir") or cnf.get("datadir") or MYSQL_DATADIR)
    site_tcp = split_db_host(site_db[0]) if site_db else None
    site_source = f"the portal's database host in {site_db[1]}" if site_db else ""
    if not (procs or installed):
        if site_tcp is None:
            return None
        return MysqlServer(_address(_local(site_tcp[0]), site_tcp[1] or MYSQL_PORT),
                           f"{site_source} (no MySQL server found on this box)", datadir)
    port = running.get("port") or cnf.get("port")
    bind = running.get("bind_address") or cnf.get("bind_address")
    if port or bind:
        given = {"port", "bind_address"} & running.keys()
        source = "the running server's options" if given else str(cnf_file)
        return MysqlServer(_address(_local(bind or ""), port or MYSQL_PORT), source, datadir)
    if site_tcp and site_tcp[1] and _local(site_tcp[0]).startswith("127."):
        return MysqlServer(_address(_local(site_tcp[0]), site_tcp[1]), site_source, datadir)
    return MysqlServer(_address("127.0.0.1", MYSQL_PORT),
                       "the default port (none set in the server's options or my.cnf)", datadir)


# -- disks -----------------------------------------------------------------------------------------

def _read_mount_table(root: BoxRoot, source: ProcessSource) -> tuple[list[tuple[str, str]], Optional[str]]:
    if source.proc is not None:
        table = Path(source.proc, "self/mounts")
        try:
            text = table.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        if text is not None:
            found = []
            for part in parse_mounts(text):
                if source.whole_table:
                    found.append((part.mountpoint, part.fstype))
                elif root.under_root(part.mountpoint):
                    found.append((root.box_path(part.mountpoint), part.fstype))
            return found, str(table)
    text = root.read_text("/etc/fstab")
    if text is None:
        return [], None
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[1].startswith("/"):
            found.append((fields[1], fields[2]))
    return found, "/etc/fstab"


def _contains(mount: str, path: str) -> bool:
    return mount == "/" or path == mount or path.startswith(mount.rstrip("/") + "/")


def disks(root: BoxRoot, source: ProcessSource, data: Sequence[tuple[str, str]]) -> Disks:
    """``data``: (path, what it is) of the box's data. "/" always gets a check."""
    table, table_source = _read_mount_table(root, source)
    fstypes: dict[str, str] = {"/": "?"}
    for mountpoint, fstype in table:
        data_path = mountpoint == TMP or any(mountpoint == path for path, _ in data)
        if mountpoint == "/" or (fstype not in _NO_DISK_CHECK and (fstype != "tmpfs" or data_path)):
            fstypes[mountpoint] = fstype  # the last mount on a point is the one that counts
    worth = ["/", *sorted(m for m in fstypes if m != "/" and any(_contains(m, p) for p, _ in data))]
    holds: dict[str, list[str]] = {m: [] for m in worth}
    for path, what in data:
        deepest = max((m for m in worth if _contains(m, path)), key=len)
        holds[deepest].append(f"{what} {path}")
    mounts = tuple(Mount(m, fstypes[m], tuple(holds[m])) for m in worth)
    return Disks(mounts, table_source)


def disk_check_names(mounts: Sequence[Mount], datadir: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for mount in mounts:
        if mount.path in _DISK_NAMES:
            base = _DISK_NAMES[mount.path]
        elif mount.path == datadir or mount.path.rstrip("/").endswith("/mysql"):
            base = "mysql"
        elif BACKUP_DIR.startswith(mount.path) and mount.path.startswith("/home/bitrix/backup"):
            base = "backup"
        else:
            base = re.sub(r"[^A-Za-z0-9_.-]", "-", mount.path.rstrip("/").rsplit("/", 1)[-1]) or "disk"
        name, n = f"{base}-disk", 2
        while name in names.values():
            name, n = f"{base}-{n}-disk", n + 1
        names[mount.path] = name
    return names


# -- backups, plugins ------------------------------------------------------------------------------

def backup(root: BoxRoot) -> Backup:
    if not root.is_dir(BACKUP_DIR):
        return Backup(BACKUP_DIR, BackupState.MISSING)
    names = [p.rsplit("/", 1)[-1] for p in root.files(BACKUP_DIR)]
    if not names:
        return Backup(BACKUP_DIR, BackupState.EMPTY)
    counts = Counter(next((e for e in _BACKUP_EXTENSIONS if n.endswith(e)), "") for n in names)
    best = sorted(counts.items(), key=lambda kv: (-kv[1], _BACKUP_EXTENSIONS.index(kv[0]) if kv[0] else 99))
    return Backup(BACKUP_DIR, BackupState.FOUND, f"*{best[0][0]}")


def plugins(root: BoxRoot) -> Plugins:
    for plugin_dir in PLUGIN_DIRS:
        if root.is_file(f"{plugin_dir}/check_load") and root.is_file(f"{plugin_dir}/check_swap"):
            return Plugins(plugin_dir, PLUGIN_DIRS)
    return Plugins(None, PLUGIN_DIRS)
