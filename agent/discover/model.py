"""What ``discover`` found on a box, and what it could not decide: frozen values, no I/O.

Every path here is a *box path* (as on the box: ``/home/bitrix/www``), whatever root the box was
read from; the renderer decides how paths are written (:mod:`agent.discover.render`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional


class Section(Enum):
    """Where in the config a note is written."""

    HOST = "host"
    BITRIX = "bitrix"
    PORTAL = "portal"
    SERVICES = "services"
    MYSQL = "mysql"
    DISKS = "disks"
    BACKUP = "backup"
    PLUGINS = "plugins"
    ONEC = "1c"


@dataclass(frozen=True)
class Note:
    """Something discover could not decide: why, and what to do (written as a ``# TODO:`` line)."""

    section: Section
    text: str


@dataclass(frozen=True)
class BitrixEnv:
    version: Optional[str] = None        # BITRIX_VA_VER
    version_file: Optional[str] = None   # where it was read (/etc/sysconfig/httpd)
    bx_sites: Optional[str] = None       # /opt/webdir/bin/bx-sites when it is there

    @property
    def present(self) -> bool:
        return self.version is not None or self.bx_sites is not None


@dataclass(frozen=True)
class CronLine:
    """A line of a cron file that runs a site's ``cron_events.php``."""

    file: str
    line: int                         # 1-based
    commented: bool
    docroot: Optional[str]               # the docroot it runs cron_events.php of


@dataclass(frozen=True)
class HttpEndpoint:
    url: str
    host_header: Optional[str]           # sent as Host: when the server block answers to a name only
    source: str                       # "listen 80 in /etc/nginx/bx/site_enabled/s1.conf"


@dataclass(frozen=True)
class Site:
    """One Bitrix installation (a docroot holding ``bitrix/.settings.php`` or ``dbconn.php``)."""

    name: str                         # "default" for /home/bitrix/www, else the directory's name
    docroot: str
    named_in: tuple[str, ...]         # the layout convention and/or the web server files naming it
    cron: tuple[CronLine, ...]
    front: Optional[HttpEndpoint]        # the web server block serving it
    db_host: Optional[str] = None        # connections.default.host (never the password)
    db_source: Optional[str] = None


class ServiceState(Enum):
    RUNNING = "running"
    NOT_RUNNING = "installed, not seen running"    # processes were looked at
    UNVERIFIED = "installed"                       # processes were not looked at


@dataclass(frozen=True)
class Service:
    key: str                          # also the check's name: nginx, httpd, mysqld, push-server ...
    state: ServiceState
    match: Optional[str]                 # process name for `match:`
    cmdline_regex: Optional[str]         # for `cmdline_regex:` (interpreters: node, python)
    evidence: str                     # what says it is there
    onec: bool = False                # a 1C:Enterprise server process


@dataclass(frozen=True)
class MysqlServer:
    address: str                      # host:port for a tcp check
    source: str                       # where the address came from
    datadir: str


@dataclass(frozen=True)
class Mount:
    path: str
    fstype: str
    holds: tuple[str, ...]            # the box's data on it ("MySQL data /var/lib/mysql")


@dataclass(frozen=True)
class Disks:
    mounts: tuple[Mount, ...]         # worth a disk check; "/" first
    source: Optional[str]                # the mount table read (None: none could be read)


class BackupState(Enum):
    FOUND = "found"
    EMPTY = "empty"
    MISSING = "missing"


@dataclass(frozen=True)
class Backup:
    dir: str
    state: BackupState
    pattern: str = "*.tar.gz"         # the glob (within dir) that matches its archives


@dataclass(frozen=True)
class Plugins:
    dir: Optional[str]                   # where check_load and check_swap are
    searched: tuple[str, ...]


@dataclass(frozen=True)
class OneCPostgres:
    """The PostgreSQL (Postgres Pro for 1C) on a 1C server: its data dir and port."""

    datadir: str
    port: int
    port_source: str                  # postgresql.conf, or "the default"
    bindir: Optional[str] = None         # where psql and pg_isready are (not Debian's perl wrappers)


@dataclass(frozen=True)
class OneCPublication:
    """A 1C web publication: the Apache file whose ``LoadModule _1cws_module`` line loads it."""

    conf: str
    module: str                       # the wsap24.so path
    url: Optional[str]                   # from the one Alias in that file (None: not decided)


@dataclass(frozen=True)
class OneC:
    """A 1C:Enterprise server on the box."""

    platforms: tuple[str, ...]        # install dirs /opt/1cv8/x86_64/<version>
    units: tuple[str, ...]            # unit files srv1cv8-*, ras-* (and the old init script)
    registry: Optional[str]              # the cluster registry dir reg_1541
    ports: tuple[tuple[str, int], ...]  # (ragent|rmngr|ras, port)
    ports_source: str
    processes: tuple[Service, ...]
    rac: Optional[str] = None            # the rac the checks run (the running platform's, else the newest)
    running: Optional[str] = None        # the platform version of the running ragent
    worker_range: str = "1560:1591"   # rphost ports (-range in the unit)
    infobases: Optional[tuple[str, ...]] = None  # None: rac was not asked (or did not answer)
    infobases_source: str = ""        # how they were found, or why not
    postgres: Optional[OneCPostgres] = None
    publication: Optional[OneCPublication] = None


@dataclass(frozen=True)
class Portal:
    """An http check of the front: ``portal`` for the main site, ``portal-<site>`` for the others."""

    name: str
    endpoint: HttpEndpoint
    site: Optional[str]


@dataclass(frozen=True)
class Discovery:
    root: str                         # what was read (a path here)
    processes: str                    # how processes were looked at, for the header
    host: Optional[str]
    host_source: Optional[str]
    bitrix_env: BitrixEnv
    sites: tuple[Site, ...]
    services: tuple[Service, ...]
    portals: tuple[Portal, ...]
    backend: Optional[HttpEndpoint]      # Apache behind nginx
    error_page: bool                  # the BitrixEnv 502 page is installed
    mysql: Optional[MysqlServer]
    disks: Disks
    backup: Optional[Backup]             # None: no Bitrix here, nothing to say
    php_error_log: Optional[str]
    plugins: Plugins
    onec: Optional[OneC]
    notes: tuple[Note, ...]

    def service(self, key: str) -> Optional[Service]:
        return next((s for s in self.services if s.key == key), None)

    def notes_for(self, section: Section) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.section is section)
