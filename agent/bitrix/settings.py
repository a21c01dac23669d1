"""The portal's database connection, read from its docroot the way Bitrix reads it.

1. ``bitrix/.settings.php``: ``connections.value.default.{host, database, login, password}``
   (the D7 kernel's settings; ``className`` must be a MySQL connection — a portal on PostgreSQL
   is refused with that reason);
2. else ``bitrix/php_interface/dbconn.php``: ``$DBHost``, ``$DBLogin``, ``$DBPassword``,
   ``$DBName`` (the legacy kernel's).

``host`` is read as Bitrix's ``MysqliConnection`` does (split at the first ``:``, the rest is the
port) and then as PHP's mysqli uses it: ``localhost`` (with or without a port) means the unix
socket, at the first of :data:`SOCKETS` that exists (bitrix-env's first) or the ``socket`` the
caller gives; ``localhost:/path/to.sock`` names the socket (Bitrix itself would ignore that
path and use PHP's default socket; the agent honours it); any other host is TCP, port 3306 by
default.

The files are read with PHP's literal syntax (:mod:`agent.bitrix.phpconfig`), never run. They
are read again only when one of them changes (inode, size, mtime), so a changed password is used
at the next run. The password never leaves :class:`~agent.mysqlclient.DbSettings` (kept out of
its repr); errors name the file and the key, never a value.

Privileges: the agent's user must be able to read these files. On bitrix-env they belong to
``bitrix``; add the agent's user to the ``bitrix`` group (``usermod -aG bitrix boxkeeper``) and
make sure the files and their directories are group-readable.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from agent.bitrix.phpconfig import PhpArray, PhpSyntaxError, PhpValue, Unparsed, assignments, returned_value
from agent.mysqlclient import DbSettings

SETTINGS_FILE = "bitrix/.settings.php"
DBCONN_FILE = "bitrix/php_interface/dbconn.php"
#: Where the unix socket of a ``localhost`` connection is looked for, in this order: bitrix-env
#: (Percona, /etc/my.cnf), Debian/Ubuntu, MariaDB on RHEL, old defaults.
SOCKETS = (
    "/var/lib/mysqld/mysqld.sock",
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/var/lib/mysql/mysql.sock",
    "/tmp/mysql.sock",  # noqa: S108 - MySQL's compiled-in default, only read
)
_MYSQL_CLASSES = ("mysqliconnection", "mysqlconnection", "mysqlcommonconnection")
_MAX_FILE = 1024 * 1024


class SettingsError(Exception):
    """The connection settings cannot be read from the docroot. The message says which file and
    key, and what to do; it never quotes the file."""


def split_host(
    host: str, socket: Optional[str] = None, sockets: Sequence[str] = SOCKETS,
) -> tuple[str, int, Optional[str]]:
    """Bitrix's ``host`` value → (host, port, unix socket or None). See the module docstring."""
    name, _, rest = host.strip().partition(":")
    name = name.strip() or "localhost"
    rest = rest.strip()
    if rest.startswith("/"):
        return "localhost", 3306, rest
    digits = re.match(r"\d+", rest)
    port = int(digits.group()) if digits else 0  # PHP's intval(): the leading digits, else 0
    if name.lower() == "localhost":
        found = socket or next((s for s in sockets if os.path.exists(s)), sockets[0])
        return "localhost", port or 3306, found
    return name, port or 3306, None


def _read(path: Path) -> Optional[str]:
    """The file's text; None when it does not exist; SettingsError when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise SettingsError(
            f"cannot read {path}: permission denied (add the agent's user to the file's group, e.g. "
            f"'usermod -aG bitrix boxkeeper', and make the file group-readable)") from None
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE:
        raise SettingsError(f"{path} is larger than 1 MiB: not a Bitrix settings file")
    return data.decode("utf-8", "replace")


def _text(value: PhpValue, path: Path, key: str, *, required: bool = True) -> Optional[str]:
    if isinstance(value, Unparsed):
        raise SettingsError(
            f"{path}: {key} (line {value.line}) is an expression, not a literal the agent can read "
            f"without running PHP: give the check its connection settings (host, user, database, "
            f"password_file) instead")
    if value is None:
        if required:
            raise SettingsError(f"{path}: {key} is missing")
        return None
    if isinstance(value, (bool, PhpArray)):
        raise SettingsError(f"{path}: {key} is not a string")
    return str(value)


def _dig(value: PhpValue, *keys: str) -> PhpValue:
    for key in keys:
        if not isinstance(value, PhpArray):
            return None
        value = value.get(key)
    return value


def from_settings_php(path: Path, text: str) -> Optional[dict[str, Optional[str]]]:
    """``connections.value.default`` of ``.settings.php`` as strings; None when it has none."""
    try:
        data = returned_value(text)
    except PhpSyntaxError as exc:
        raise SettingsError(f"{path}: cannot read it as PHP literals ({exc})") from None
    default = _dig(data, "connections", "value", "default")
    if default is None:
        return None
    if not isinstance(default, PhpArray):
        raise SettingsError(f"{path}: connections.value.default is not an array")
    prefix = "connections.value.default."
    class_name = default.get("className")
    short = class_name.rsplit("\\", 1)[-1] if isinstance(class_name, str) else ""
    if short and short.lower() not in _MYSQL_CLASSES:
        raise SettingsError(f"{path}: the portal's database is not MySQL ({prefix}className is {short}): "
                            "the agent's Bitrix checks read MySQL only")
    return {
        "host": _text(default.get("host"), path, prefix + "host"),
        "database": _text(default.get("database"), path, prefix + "database"),
        "login": _text(default.get("login"), path, prefix + "login"),
        "password": _text(default.get("password"), path, prefix + "password", required=False) or "",
    }


def from_dbconn_php(path: Path, text: str) -> Optional[dict[str, Optional[str]]]:
    """``$DBHost``, ``$DBLogin``, ``$DBPassword``, ``$DBName`` of ``dbconn.php``; None when absent."""
    found = assignments(text, frozenset({"DBHost", "DBLogin", "DBPassword", "DBName"}))
    if "DBHost" not in found and "DBLogin" not in found:
        return None
    return {
        "host": _text(found.get("DBHost"), path, "$DBHost"),
        "database": _text(found.get("DBName"), path, "$DBName"),
        "login": _text(found.get("DBLogin"), path, "$DBLogin"),
        "password": _text(found.get("DBPassword"), path, "$DBPassword", required=False) or "",
    }


def read_db_settings(docroot: Union[str, Path], socket: Optional[str] = None,
                     sockets: Sequence[str] = SOCKETS) -> DbSettings:
    """The portal's connection settings (see the module docstring). Raises SettingsError."""
    root = Path(docroot)
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise SettingsError(f"docroot {root} is not a directory")
    except PermissionError:
        raise SettingsError(f"cannot reach docroot {root}: permission denied (add the agent's user to the "
                            f"owning group, e.g. 'usermod -aG bitrix boxkeeper')") from None
    except FileNotFoundError:
        raise SettingsError(f"docroot {root} does not exist") from None
    for name, reader in ((SETTINGS_FILE, from_settings_php), (DBCONN_FILE, from_dbconn_php)):
        path = root / name
        text = _read(path)
        if text is None:
            continue
        found = reader(path, text)
        if found is None:
            continue
        host, port, sock = split_host(found["host"] or "localhost", socket, sockets)
        return DbSettings(user=found["login"] or "", database=found["database"], host=host, port=port,
                          socket=sock, password=found["password"] or "", source=str(path))
    raise SettingsError(f"no database settings in {root / SETTINGS_FILE} (connections.value.default) "
                        f"nor in {root / DBCONN_FILE}: is {root} a Bitrix docroot?")


@dataclass
class _Stamp:
    key: tuple[Optional[tuple[int, int, int]], ...]
    settings: DbSettings


class PortalDbSettings:
    """:func:`read_db_settings` for one docroot, read again only when a file changed."""

    def __init__(self, docroot: Union[str, Path], socket: Optional[str] = None) -> None:
        self.docroot = Path(docroot)
        self.socket = socket
        self._lock = threading.Lock()
        self._cached: Optional[_Stamp] = None

    def _key(self) -> tuple[Optional[tuple[int, int, int]], ...]:
        key: list[Optional[tuple[int, int, int]]] = []
        for name in (SETTINGS_FILE, DBCONN_FILE):
            try:
                st = os.stat(self.docroot / name)
                key.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                key.append(None)
        return tuple(key)

    def get(self) -> DbSettings:
        key = self._key()
        with self._lock:
            if self._cached is not None and self._cached.key == key:
                return self._cached.settings
        settings = read_db_settings(self.docroot, self.socket)
        with self._lock:
            self._cached = _Stamp(key, settings)
        return settings
