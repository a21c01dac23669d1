"""Where everything of one box lives, and its address and ports (pure: no I/O).

A box with index N (11..99) listens on 127.0.0.N; its ports are derived from N as well, so two
boxes never collide even with a server elsewhere bound to a wildcard address.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FIRST_INDEX = 11
LAST_INDEX = 99
DB_NAME = "portal"
DB_USER = "bitrix"
PG_USER = "onec"
SSH_USER = "root"
SERVICES = ("mariadb", "php-fpm", "nginx", "sshd", "cron", "pg")


@dataclass(frozen=True)
class BoxLayout:
    state_dir: Path
    index: int

    @property
    def name(self) -> str:
        return f"box{self.index}"

    @property
    def address(self) -> str:
        return f"127.0.0.{self.index}"

    @property
    def ssh_port(self) -> int:
        return 22000 + self.index

    @property
    def http_port(self) -> int:
        return 18000 + self.index

    @property
    def ext_http_port(self) -> int:
        """nginx's second server: the link site ext_www/shop (there once a test adds it)."""
        return 19000 + self.index

    @property
    def db_port(self) -> int:
        return 33000 + self.index

    @property
    def pg_port(self) -> int:
        return 54000 + self.index

    @property
    def root(self) -> Path:
        return self.state_dir / self.name

    # -- the Bitrix side, as on a BitrixVM but under root/
    @property
    def docroot(self) -> Path:
        return self.root / "home/bitrix/www"

    @property
    def ext_site_docroot(self) -> Path:
        """A second site of the box, bitrix-env style (/home/bitrix/ext_www/<site>): see add_site."""
        return self.root / "home/bitrix/ext_www/shop"

    @property
    def backup_dir(self) -> Path:
        """bitrix-env's backup archive dir (/home/bitrix/backup/archive)."""
        return self.root / "home/bitrix/backup/archive"

    @property
    def cron_file(self) -> Path:
        """The site's cron line, like /etc/cron.d/bx_<db> on a BitrixVM."""
        return self.root / f"etc/cron.d/bx_{DB_NAME}"

    @property
    def update_server(self) -> Path:
        """The box's "update server": the release staged by a test for bitrix.php."""
        return self.root / "var/lib/update-server"

    # -- servers
    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "var/log"

    @property
    def bin(self) -> Path:
        """Prepended to PATH in SSH sessions: boxctl, systemctl, and the 1C doubles."""
        return self.root / "usr/local/bin"

    @property
    def client(self) -> Path:
        """Files for the controller side: the private key and a known_hosts file."""
        return self.root / "client"

    @property
    def mysql_datadir(self) -> Path:
        return self.root / "var/lib/mysql"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    @property
    def pg_datadir(self) -> Path:
        return self.root / "var/lib/postgresql/data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.run / "postgresql"

    @property
    def onec_state(self) -> Path:
        """State files of the 1C doubles (rac, 1cv8)."""
        return self.root / "var/lib/1c-double"

    @property
    def pristine(self) -> Path:
        """Snapshot taken right after `up`, which `reset` restores."""
        return self.root / "pristine"

    @property
    def state_file(self) -> Path:
        return self.root / "box.json"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"
