"""One box: create it (servers up, snapshot taken), control its services, reset it, take it down."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import mariadb, portal, postgres, procs, servers, slots
from .errors import BoxError, UnknownNameError
from .info import BoxInfo, DbInfo, PgInfo
from .layout import DB_NAME, DB_USER, PG_USER, SSH_USER, BoxLayout

STOP_SIGNALS = {"pg": signal.SIGINT}  # postgres: SIGTERM waits for clients, SIGINT is "fast"
STOP_ORDER = ("nginx", "php-fpm", "cron", "sshd", "pg", "mariadb")


def prepare() -> None:
    """Once per session, before boxes start in parallel: templates and the bitrix user."""
    servers.ensure_bitrix_user()
    mariadb.template()


@dataclass
class Box:
    layout: BoxLayout
    info: BoxInfo
    with_1c: bool = False
    cron_interval: float = 60.0

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def services(self) -> tuple[str, ...]:
        return ("mariadb", "php-fpm", "nginx", "sshd", "cron", *(("pg",) if self.with_1c else ()))

    # -- life cycle ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, state_dir: Path, *, with_1c: bool = False, cron_interval: float = 60.0) -> Box:
        layout = slots.claim(state_dir)
        try:
            return cls._build(layout, with_1c, cron_interval)
        except BaseException:
            box = cls(layout, _placeholder_info(layout), with_1c, cron_interval)
            box.down()
            raise

    @classmethod
    def _build(cls, layout: BoxLayout, with_1c: bool, cron_interval: float) -> Box:
        servers.ensure_bitrix_user()
        for path in (layout.run, layout.logs, layout.etc):
            path.mkdir(parents=True, exist_ok=True)
        mariadb.install(layout)
        mariadb.start(layout)
        if with_1c:
            postgres.install(layout)
            postgres.start(layout)
        db_password = secrets.token_hex(12)
        known_hosts, fingerprint = servers.make_keys(layout)
        servers.write_sshd_config(layout)
        servers.write_web_configs(layout)
        servers.write_service_scripts(layout)
        servers.write_cron(layout)
        portal.build(layout, db_password)
        pg_info = None
        if with_1c:
            from .doubles import install as install_1c_doubles

            pg_password = secrets.token_hex(12)
            postgres.wait_ready(layout)
            postgres.provision(layout, pg_password)
            pg_info = PgInfo(host=layout.address, port=layout.pg_port, user=PG_USER, password=pg_password)
            install_1c_doubles(layout, pg_info)
        servers.start_php_fpm(layout)
        servers.start_sshd(layout)
        mariadb.wait_ready(layout)
        mariadb.set_password(layout, db_password)
        # The cached template's rows were dated (NOW() - ...) when it was built, possibly days ago:
        # load the seed afresh so "last backup 20 h ago" and the agents' last runs are true today.
        mariadb.reset(layout)
        servers.start_nginx(layout)
        servers.start_cron(layout, cron_interval)
        info = BoxInfo(
            name=layout.name,
            address=layout.address,
            ssh_port=layout.ssh_port,
            ssh_user=SSH_USER,
            ssh_key=str(layout.client / "id_ed25519"),
            known_hosts=known_hosts,
            host_key_fingerprint=fingerprint,
            portal_url=f"http://{layout.address}:{layout.http_port}/",
            docroot=str(layout.docroot),
            db=DbInfo(
                host=layout.address,
                port=layout.db_port,
                socket=str(layout.mysql_socket),
                name=DB_NAME,
                user=DB_USER,
                password=db_password,
            ),
            pg=pg_info,
        )
        box = cls(layout, info, with_1c, cron_interval)
        box.wait_ready()
        portal.snapshot(layout)
        box.save()
        return box

    def save(self) -> None:
        self.layout.state_file.write_text(
            json.dumps(
                {
                    "index": self.layout.index,
                    "with_1c": self.with_1c,
                    "cron_interval": self.cron_interval,
                    "info": self.info.to_dict(),
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, state_dir: Path, name: str) -> Box:
        path = state_dir / name / "box.json"
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise UnknownNameError(f"no box {name!r} in {state_dir}") from exc
        return cls(
            BoxLayout(state_dir, data["index"]),
            BoxInfo.from_dict(data["info"]),
            data["with_1c"],
            data["cron_interval"],
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Every server answers, and the portal's home page renders (HTTP 200)."""
        for service in self.services:
            self._wait_service(service, timeout)
        if not procs.wait_until(lambda: _portal_status(self.info.portal_url) == 200, timeout, 0.1):
            raise BoxError(
                f"portal did not answer 200: {procs.tail(self.layout.logs / 'php-errors.log')}", box=self.name
            )

    def _wait_service(self, service: str, timeout: float = 60) -> None:
        layout = self.layout
        if service == "mariadb":
            mariadb.wait_ready(layout, timeout)
        elif service == "pg":
            postgres.wait_ready(layout, timeout)
        elif service == "sshd":
            servers.wait_port(layout, "sshd", layout.ssh_port, timeout)
        elif service == "nginx":
            servers.wait_port(layout, "nginx", layout.http_port, timeout)
        elif service == "php-fpm":
            if not procs.wait_until(lambda: servers.php_fpm_ready(layout), timeout):
                raise BoxError(
                    "php-fpm did not start: " + procs.tail(layout.logs / "php-fpm.log"), box=self.name
                )
        elif not procs.wait_until(lambda: self.is_running(service), timeout):
            raise BoxError(f"{service} did not start", box=self.name)

    # -- services ------------------------------------------------------------------------------------
    def _check_service(self, service: str) -> None:
        if service not in self.services:
            raise UnknownNameError(
                f"unknown service {service!r}; this box has {', '.join(self.services)}", box=self.name
            )

    def is_running(self, service: str) -> bool:
        self._check_service(service)
        return procs.is_running(procs.read_pid(self.layout.pid_file(service)))

    def start_service(self, service: str) -> None:
        self._check_service(service)
        if self.is_running(service):
            return
        layout = self.layout
        if service == "php-fpm":
            (layout.run / "php-fpm.sock").unlink(missing_ok=True)
        starters: dict[str, Callable[[BoxLayout], None]] = {
            "mariadb": mariadb.start,
            "pg": postgres.start,
            "sshd": servers.start_sshd,
            "nginx": servers.start_nginx,
            "php-fpm": servers.start_php_fpm,
            "cron": self._start_cron,
        }
        starters[service](layout)
        self._wait_service(service)

    def _start_cron(self, layout: BoxLayout) -> None:
        servers.start_cron(layout, self.cron_interval)

    def stop_service(self, service: str, *, sessions_too: bool = False) -> None:
        """Stop a service like `systemctl stop` would (sshd: the listener only, open sessions stay,
        unless `sessions_too`)."""
        self._check_service(service)
        pid_file = self.layout.pid_file(service)
        if service == "sshd" and not sessions_too:
            pid = procs.read_pid(pid_file)
            if pid is not None and procs.is_running(pid):
                import psutil

                procs.kill_processes([psutil.Process(pid)])
            pid_file.unlink(missing_ok=True)
        else:
            procs.stop(pid_file, STOP_SIGNALS.get(service, signal.SIGTERM))
        if service == "php-fpm":
            (self.layout.run / "php-fpm.sock").unlink(missing_ok=True)

    def kill_sshd(self) -> None:
        """sshd dies with every session it serves (SIGKILL): connections drop mid-command."""
        procs.stop(self.layout.pid_file("sshd"), signal.SIGKILL)

    # -- what tests do to a box --------------------------------------------------------------------
    def stage(self, release: str | None) -> None:
        """Publish a release on the box's update server (see tests/boxes/releases/)."""
        portal.stage(self.layout, release)

    def add_site(self) -> tuple[Path, str]:
        """Add the second site ext_www/shop (a link site sharing this kernel); (docroot, its URL).
        `reset` removes it (it lives under home/bitrix)."""
        portal.add_link_site(self.layout)
        return self.layout.ext_site_docroot, f"http://{self.layout.address}:{self.layout.ext_http_port}/"

    def fault(self, kind: str, *, undo: bool = False) -> None:
        """Inject a fault (or undo it); kinds in faults.py."""
        from . import faults

        faults.apply(self, kind, undo=undo)

    # -- reset and down ------------------------------------------------------------------------------
    def _server_pids(self) -> set[int]:
        import psutil

        pids: set[int] = set()
        for service in self.services:
            pid = procs.read_pid(self.layout.pid_file(service))
            if pid is not None and procs.is_running(pid):
                proc = psutil.Process(pid)
                pids.add(pid)
                if service != "sshd":
                    pids.update(p.pid for p in proc.children(recursive=True))
        return pids

    def kill_strays(self) -> None:
        """Kill what is not one of the box's servers: sessions' commands, a hung updater."""
        keep = self._server_pids()
        procs.kill_processes(
            [p for p in procs.processes_of(self.layout.root) if p.pid not in keep], signal.SIGKILL, 5
        )

    def reset(self) -> None:
        """Back to the state right after `up`: faults undone, servers running, stray processes
        killed, /home/bitrix and the databases pristine, nothing staged."""
        from . import faults

        faults.undo_all(self)
        for service in self.services:
            self.start_service(service)
        self.kill_strays()
        portal.stage(self.layout, None)
        self._clean_run_dir()
        portal.restore(self.layout)
        servers.write_cron(self.layout)
        mariadb.reset(self.layout)
        if self.with_1c and self.info.pg is not None:
            from .doubles import install as install_1c_doubles

            postgres.reset(self.layout)
            install_1c_doubles(self.layout, self.info.pg)

    def _clean_run_dir(self) -> None:
        """Remove what tests or playbooks left in run/ (lock files...): keep pid files and sockets."""
        (self.layout.run / "updater-hang.pid").unlink(missing_ok=True)
        for entry in self.layout.run.iterdir():
            if entry.is_dir() and entry.name in ("nginx", "postgresql"):
                continue
            if entry.suffix in (".pid", ".sock"):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def down(self) -> None:
        from . import faults

        faults.undo_mounts(self)
        for service in STOP_ORDER:
            procs.stop(self.layout.pid_file(service), STOP_SIGNALS.get(service, signal.SIGTERM))
        procs.kill_processes(procs.processes_of(self.layout.root), signal.SIGKILL, 5)
        from . import slow

        slow.disk_off(self)
        slots.release(self.layout)


def _portal_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http://127.0.0.x)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _placeholder_info(layout: BoxLayout) -> BoxInfo:
    return BoxInfo(
        layout.name,
        layout.address,
        layout.ssh_port,
        SSH_USER,
        "",
        "",
        "",
        "",
        str(layout.docroot),
        DbInfo(layout.address, layout.db_port, str(layout.mysql_socket), DB_NAME, DB_USER, ""),
    )


def remove_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)
