"""A :class:`~agent.discover.model.Discovery` as an agent config: YAML text with comments, in the
shape of ``config/agent.example.yaml``.

The text is written line by line (PyYAML cannot emit comments); every value goes through
``yaml.safe_dump`` (a scalar, or a whole flow mapping such as ``{name: nginx, type: process}``),
so quoting is PyYAML's. Three kinds of comment lines:

- ``# ...``: what was found and where (informational);
- ``# TODO: ...``: what discover could not decide, why, and what to do;
- ``#- ...`` (and ``#controller:``): a check or section ready to be uncommented (a service that is
  installed but was not running, the 1C server, an empty backup directory).

Paths are the box's own (``/home/bitrix/www``); with ``paths_under_root`` the values (not the
comments) are written under the root the box was read from, for an agent that runs on this
machine against a copy of a box (a test box).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import yaml

from agent.checks.bitrix.profile import SIGNALS
from agent.configtypes import NAME_RE
from agent.discover.bitrix import DEFAULT_DOCROOT, EXT_WWW
from agent.discover.model import BackupState, Discovery, HttpEndpoint, Note, Section, Service, ServiceState
from agent.discover.system import BACKUP_DIR, disk_check_names

COMMENT_COLUMN = 33
RULE_WIDTH = 100
STATE_DIR = "/var/lib/boxkeeper/state"
SPOOL_DIR = "/var/lib/boxkeeper/spool"
BITRIXENV_502 = "502 Bad Gateway|Bitrix Environment"
SERVICE_NOTES = {
    "nginx": "the front (80/443)",
    "httpd": "Apache + mod_php behind nginx",
    "php-fpm": "PHP FastCGI",
    "mysqld": "MySQL / MariaDB server",
    "push-server": "Bitrix push & pull (NodeJS)",
    "crond": "runs cron_events.php: Bitrix agents and mail",
}

HEADER_INTRO = """\
# boxkeeper agent config, written by `boxkeeper-agent discover` from what it found on the box
# (it only reads the box; docs/agent.md, "discover"). Comments say what was found and where;
# "# TODO:" lines are what it could not decide, and why; "#-" lines are checks ready to uncomment."""

HEADER_USAGE = """\
# Install as /etc/boxkeeper/agent.yaml (owner root, group boxkeeper, mode 0640), then:
#   boxkeeper-agent validate --config /etc/boxkeeper/agent.yaml
#   boxkeeper-agent check --config /etc/boxkeeper/agent.yaml     # every check once, as a table
# Durations: 500ms, 15s, 5m, 26h, 1d. Sizes: 512KiB, 64MiB, 1GB. Percentages: 85%.
# Every check takes: name, type, interval (default: the top-level interval), timeout (10s),
# retries (1 = the first failure is hard), retry_interval (5s). Status 0 OK, 1 WARNING, 2 CRITICAL,
# 3 UNKNOWN. None of these checks needs root: the agent runs as the unprivileged user boxkeeper."""

CONTROLLER = """\
# Push to the controller. Uncomment once the controller has issued this host's token and it is in
# token_file (one line, owner boxkeeper, `chmod 600`): the agent refuses to start with a readable
# or missing token file. Without this section the agent runs its checks and serves /metrics only.
#controller:
#  url: https://boxkeeper.example.org
#  token_file: /etc/boxkeeper/agent.token
#  push_interval: 15s            # a report every 15 s, and at once when a check changes hard state
#  ca_file: null                 # TLS is verified by default; a custom CA may be given
#  timeout: 10s
#  proxy: http://proxy.lan:3128  # an HTTP proxy (CONNECT); default: HTTPS_PROXY / NO_PROXY; none: no proxy"""

PUSH = """\
# Push to the controller. token_file holds this host's token (one line, owner boxkeeper, mode 0600):
# the agent refuses to start with a readable or missing token file."""


def scalar(value: object) -> str:
    """One YAML scalar, quoted by PyYAML when it needs to be."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True)
    return text.removesuffix("\n...\n").rstrip("\n")


def flow(mapping: Mapping[str, Any]) -> str:
    """A one-line flow mapping, keys in the order given."""
    return yaml.safe_dump(dict(mapping), default_flow_style=True, sort_keys=False, width=1 << 20,
                          allow_unicode=True).rstrip("\n")


def line(text: str, comment: Optional[str] = None) -> str:
    if not comment:
        return text
    if len(text) >= COMMENT_COLUMN - 1:
        return f"{text}   # {comment}"
    return f"{text.ljust(COMMENT_COLUMN)}# {comment}"


def rule(title: str, indent: str = "  ") -> str:
    head = f"{indent}# --- {title} "
    return head + "-" * max(3, RULE_WIDTH - len(head))


@dataclass(frozen=True)
class Push:
    """Where the agent pushes (``discover --controller-url``; ``boxkeeper hosts enroll`` passes it)."""

    url: str
    token_file: str = "/etc/boxkeeper/agent.token"  # noqa: S105 (a path, not a secret)


class _Writer:
    def __init__(self, d: Discovery, paths_under_root: bool, push: Optional[Push] = None,
                 listen: Optional[str] = None) -> None:
        self.d = d
        self.push = push
        self.listen = listen
        prefix = d.root.rstrip("/") if paths_under_root else ""
        self.path: Callable[[str], str] = (lambda p: prefix + p if p != "/" else prefix or "/")
        self.out: list[str] = []

    def add(self, text: str = "", comment: Optional[str] = None) -> None:
        """A line, with its comment beside it, or above it when both do not fit in RULE_WIDTH."""
        if comment and len(line(text, comment)) > RULE_WIDTH:
            indent = text[: len(text) - len(text.lstrip(" "))]
            self.comment(comment, indent)
            comment = None
        self.out.append(line(text, comment))

    def comment(self, text: str, indent: str = "  ", first: str = "# ", rest: str = "#   ") -> None:
        """A comment, wrapped at RULE_WIDTH columns."""
        for i, piece in enumerate(textwrap.wrap(text, RULE_WIDTH - len(indent) - len(first),
                                                break_long_words=False, break_on_hyphens=False)):
            self.add(f"{indent}{first if i == 0 else rest}{piece}")

    def todo(self, notes: Iterable[Union[Note, str]], indent: str = "  ") -> None:
        for note in notes:
            self.comment(f"TODO: {note.text if isinstance(note, Note) else note}", indent, rest="#       ")

    def check(self, fields: Mapping[str, Any], comment: Optional[str] = None, *, block: bool = False,
              comments: Optional[Mapping[str, str]] = None, off: bool = False) -> None:
        """One item of ``checks:`` (``off``: commented out, ready to uncomment)."""
        mark = "#" if off else ""
        if not block:
            self.add(f"  {mark}- {flow(fields)}", comment)
            return
        for i, (key, value) in enumerate(fields.items()):
            text = flow(value) if isinstance(value, Mapping) else scalar(value)
            lead = f"  {mark}- " if i == 0 else f"  {mark}  "
            self.add(f"{lead}{key}: {text}", (comments or {}).get(key) or (comment if i == 0 else None))


def _header(w: _Writer) -> None:
    d = w.d
    w.add(HEADER_INTRO)
    w.add("#")
    env = d.bitrix_env
    if env.present:
        parts = [f"BITRIX_VA_VER in {env.version_file}" if env.version else "no BITRIX_VA_VER",
                 f"site inventory {env.bx_sites}" if env.bx_sites else "no bx-sites"]
        found = f"bitrix-env {env.version or '(version unknown)'} ({'; '.join(parts)})"
    else:
        found = "no bitrix-env (no BITRIX_VA_VER in /etc/sysconfig/httpd, no /opt/webdir/bin/bx-sites)"
    w.comment(f"Found: {found}", "", rest="#     ")
    sites = ", ".join(f"{s.docroot} ({s.name})" for s in d.sites) or "none"
    w.comment(f"Bitrix sites: {sites}", "", first="#   ", rest="#     ")
    w.comment(f"processes: {d.processes}", "", first="#   ", rest="#     ")
    if d.onec is not None:
        w.add("#   a 1C:Enterprise server (its checks are at the end of checks)")
    if w.path("/") != "/":
        w.comment(f"read from the root {d.root}: the paths of the values are written under it "
                  "(--paths-under-root); comments name them as on the box", "", first="#   ", rest="#     ")
    w.add("#")
    w.add(HEADER_USAGE)
    w.add()


def _top(w: _Writer) -> None:
    d = w.d
    w.todo(d.notes_for(Section.HOST), indent="")
    if d.host:
        w.add(f"host: {scalar(d.host)}", "the name the controller knows this box by")
    else:
        w.add("#host: NAME", "the name the controller knows this box by")
    w.add("interval: 15s", "default check interval")
    w.add(f"listen: {scalar(w.listen or '127.0.0.1:9847')}",
          "local /metrics (Prometheus text format); keep it on loopback")
    w.add()
    if w.push is None:
        w.add(CONTROLLER)
    else:
        w.add(PUSH)
        w.add("controller:")
        w.add(f"  url: {scalar(w.push.url)}")
        w.add(f"  token_file: {scalar(w.path(w.push.token_file))}")
        w.add("  push_interval: 15s", "a report every 15 s, and at once when a check changes hard state")
    w.add()
    w.add("spool:", "reports wait here (fsync'd, replayed in order) while the controller is away")
    w.add(f"  dir: {scalar(w.path(SPOOL_DIR))}")
    w.add("  max_bytes: 64MiB", "oldest reports are dropped first beyond this (logged and counted)")
    w.add()


def _bitrix(w: _Writer) -> None:
    d = w.d
    if not d.sites:
        w.todo(d.notes_for(Section.BITRIX), indent="")
        return
    w.add(rule("Bitrix: one item per site; each signal is a check (docs/agent-checks.md)", indent=""))
    w.todo(d.notes_for(Section.BITRIX), indent="")
    w.add(f"state_dir: {scalar(w.path(STATE_DIR))}",
          "the agent's own state (log offsets), kept across restarts")
    w.add("bitrix:")
    push = d.service("push-server")
    conventional = {DEFAULT_DOCROOT} | {s.docroot for s in d.sites if s.docroot.startswith(EXT_WWW + "/")}
    if d.php_error_log is None:
        w.todo(["no PHP or web server error log found (PHP-FPM pools, php.ini, Apache's ErrorLog, nginx's "
                "error_log): php_fatals is off; set it to {log: FILE} where PHP writes its errors"])
    for site in d.sites:
        w.add(f"  - docroot: {scalar(w.path(site.docroot))}")
        w.add(f"    site: {scalar(site.name)}")
        if site.named_in and site.docroot not in conventional:  # found through the web server only
            w.comment(f"named in {', '.join(site.named_in)}", "    ")
        for c in site.cron:
            state = "is COMMENTED OUT: agents and mail do not run from cron now" if c.commented else (
                "runs cron_events.php (agents and mail)")
            w.comment(f"cron: {c.file}, line {c.line}, {state}", "    ")
        if not site.cron:
            w.comment(f"cron: no line runs {site.docroot}/bitrix/modules/main/tools/cron_events.php (/etc/"
                      "crontab, /etc/cron.d/*, /var/spool/cron/*): agents run on page hits only", "    ")
        signals: dict[str, tuple[object, Optional[str]]] = {}
        if d.backup is not None and w.path(d.backup.dir) != BACKUP_DIR:
            signals["backup"] = ({"archive_dir": w.path(d.backup.dir)}, None)
        if d.php_error_log is None:
            signals["php_fatals"] = (False, "no error log found (TODO above)")
        else:
            signals["php_fatals"] = ({"log": w.path(d.php_error_log)}, None)
        if push is None or push.state is ServiceState.NOT_RUNNING:
            why = "no push-server found" if push is None else f"push-server is not running ({push.evidence})"
            signals["push_server"] = (False, why)
        defaults = ", ".join(name for name in SIGNALS if name not in signals)
        w.add("    signals:", f"{defaults}: on, with their defaults")
        for name, (value, note) in signals.items():
            w.add(f"      {name}: {flow(value) if isinstance(value, Mapping) else scalar(value)}", note)
    w.add()


def _http(w: _Writer, name: str, endpoint: HttpEndpoint, what: str) -> None:
    fields: dict[str, Any] = {"name": name, "type": "http", "url": endpoint.url}
    if endpoint.host_header:
        fields["headers"] = {"Host": endpoint.host_header}
    if w.d.error_page:
        fields["body_not_regex"] = BITRIXENV_502
    fields.update(timeout="10s", retries=3, retry_interval="5s")
    w.check(fields, block=True, comments={
        "url": f"{what}{endpoint.source}",
        "body_not_regex": "the BitrixEnv error page (/var/www/bitrixenv_error/502.html)",
    })


def _portal(w: _Writer) -> None:
    d = w.d
    if not d.portals and not d.notes_for(Section.PORTAL):
        return
    title = "the portal, from the front" + (" and behind it (Apache httpd)" if d.backend else "")
    w.add(rule(title))
    w.add("  # Three failures 5 s apart before the state is hard: an outage is reported within about 30 s.")
    w.todo(d.notes_for(Section.PORTAL))
    for portal in d.portals:
        _http(w, portal.name, portal.endpoint, "")
    if d.backend is not None:
        _http(w, "portal-backend", d.backend, "Apache, bypassing nginx: ")
    w.add()


def _process_fields(s: Service) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": s.key, "type": "process"}
    if s.match:
        fields["match"] = s.match
    if s.cmdline_regex:
        fields["cmdline_regex"] = s.cmdline_regex
    fields["min_count"] = 1
    return fields


def _services(w: _Writer) -> None:
    d = w.d
    services = [s for s in d.services if not s.onec]
    if not services and not d.sites:
        return
    w.add(rule("services (process name as in /proc/PID/comm, or a command-line regex)"))
    for s in services:
        note = SERVICE_NOTES.get(s.key)
        if s.state is ServiceState.NOT_RUNNING:
            w.todo([f"{s.key} is installed ({s.evidence}) but was not running: uncomment if it should run"])
            w.check(_process_fields(s), note, off=True)
        elif s.state is ServiceState.UNVERIFIED:
            w.check(_process_fields(s),
                    f"installed ({s.evidence}); not seen running (processes not looked at)")
        else:
            w.check(_process_fields(s), note)
    keys = {s.key for s in services}
    if d.sites and "crond" not in keys:
        w.todo(["no cron daemon found (process, unit or /etc/crontab): Bitrix agents and mail need "
                "cron_events.php run every minute"])
    if d.sites and "push-server" not in keys:
        w.add("  # push-server: not found (its bitrix signal is off)")
    w.todo(d.notes_for(Section.SERVICES))
    w.add()


def _mysql(w: _Writer) -> None:
    d = w.d
    if d.mysql is None and not d.notes_for(Section.MYSQL):
        return
    w.add(rule("MySQL answers on its port"))
    w.todo(d.notes_for(Section.MYSQL))
    if d.mysql is not None:
        w.check({"name": "mysql-port", "type": "tcp", "address": d.mysql.address, "timeout": "5s",
                 "retries": 2}, d.mysql.source)
    w.add()


def _disks(w: _Writer) -> None:
    d = w.d
    w.add(rule("disks: space and inodes of / and of each filesystem holding the box's data"))
    w.todo(d.notes_for(Section.DISKS))
    datadir = d.mysql.datadir if d.mysql else "/var/lib/mysql"
    names = disk_check_names(d.disks.mounts, datadir)
    for mount in d.disks.mounts:
        holds = ", ".join(mount.holds) or "nothing of the box's data"
        fstype = f" ({mount.fstype})" if mount.fstype != "?" else ""
        w.comment(f"{mount.path}{fstype}: {holds}")
        mysql = mount.path == datadir
        w.check({"name": names[mount.path], "type": "disk", "path": w.path(mount.path),
                 "warning": "80%" if mysql else "85%", "critical": "90%" if mysql else "95%"},
                "InnoDB needs room to grow" if mysql else None)
    w.add()


def _backup(w: _Writer) -> None:
    d = w.d
    b = d.backup
    if b is None:
        return
    w.add(rule("bitrix-env backups (mysqldump + tar of the docroot), at least daily"))
    w.todo(d.notes_for(Section.BACKUP))
    fields = {"name": "backup-fresh", "type": "file_age", "glob": w.path(f"{b.dir}/{b.pattern}"),
              "max_age": "26h", "min_size": "1MiB", "interval": "5m"}
    if b.state is BackupState.MISSING:
        w.todo([f"no backup directory found at {b.dir}: add a file_age check when backups are configured "
                "(Bitrix's own backups go to <docroot>/bitrix/backup)"])
    elif b.state is BackupState.EMPTY:
        w.todo([f"the backup directory {b.dir} is empty (no backup made yet): uncomment once backups run"])
    w.check(fields, block=True, off=b.state is not BackupState.FOUND)
    w.add()


def _plugins(w: _Writer) -> None:
    d = w.d
    w.add(rule("monitoring-plugins: load per CPU and free swap"))
    plugin_dir = d.plugins.dir
    if plugin_dir is None:
        w.todo([f"no check_load and check_swap in {' or '.join(d.plugins.searched)}: install them "
                "(RHEL 9: `dnf install nagios-plugins-load nagios-plugins-swap` from EPEL; Debian/Ubuntu: "
                "monitoring-plugins-basic), then uncomment"])
        plugin_dir = d.plugins.searched[0]
    off = d.plugins.dir is None
    for name, args in (("load", ["check_load", "-r", "-w", "4,3,2", "-c", "8,6,4"]),
                       ("swap", ["check_swap", "-w", "50%", "-c", "20%"])):
        command = [w.path(f"{plugin_dir}/{args[0]}"), *args[1:]]
        w.check({"name": name, "type": "command", "command": command, "timeout": "10s", "retries": 2},
                block=True, off=off)


def _onec(w: _Writer) -> None:
    c = w.d.onec
    if c is None:
        return
    w.add()
    w.add(rule("1C:Enterprise server (docs/agent-checks.md, \"1C:Enterprise checks\")"))
    for platform in c.platforms:
        version = platform.rsplit("/", 1)[-1]
        w.add(f"  # platform {version} in {platform}{' (running)' if version == c.running else ''}")
    if c.units:
        w.comment(f"units: {', '.join(c.units)}")
    w.comment(f"cluster registry: {c.registry or 'not found under /home/usr1cv8/.1cv8/1C/1cv8'}")
    w.comment(f"ports: {', '.join(f'{role} {port}' for role, port in c.ports)} (from {c.ports_source}); "
              f"worker processes {c.worker_range}")
    running = {s.key: s for s in c.processes if s.state is ServiceState.RUNNING}
    for key in ("1c-ragent", "1c-rmngr", "1c-rphost", "1c-ras"):
        fields = {"name": key, "type": "process", "match": key.removeprefix("1c-"), "min_count": 1}
        w.check(fields, "running" if key in running else "not seen running", off=key not in running)
    for role, port in c.ports:
        if role != "rmngr":
            off = f"1c-{role}" not in running
            w.check({"name": f"1c-{role}-port", "type": "tcp", "address": f"127.0.0.1:{port}"},
                    f"{role} not seen running" if off else None, off=off)
    if c.rac is None:
        w.todo(["no rac in any platform directory: the onec_* checks need the platform's rac (rac is part of "
                "the server install)"])
    else:
        rac = w.path(c.rac)
        w.check({"name": "1c-cluster", "type": "onec_cluster", "rac": rac},
                "answers rac cluster list in 10 s")
        w.check({"name": "1c-workers", "type": "onec_workers", "rac": rac, "interval": "1m"},
                "rphost memory, memory-excess-time")
        _infobases(w, rac)
    _dbms(w)
    _publication(w)
    w.todo(w.d.notes_for(Section.ONEC))


def _infobases(w: _Writer, rac: str) -> None:
    c = w.d.onec
    assert c is not None
    if c.infobases is None:
        w.todo([f"infobases: {c.infobases_source}; add one onec_infobase check per infobase"])
        w.check({"name": "1c-infobase-NAME", "type": "onec_infobase", "rac": rac, "infobase": "NAME"},
                off=True)
        return
    w.comment(f"infobases: {', '.join(c.infobases) or 'none'} (from {c.infobases_source})")
    if not c.infobases:
        return
    w.todo(["sessions-deny and scheduled-jobs-deny are read with `rac infobase info`, which needs the "
            "infobase's user when it has users, and rac takes the password only in its command line: until "
            "infobase_user, infobase_password_file (chmod 600) and password_in_argv: true are given, the "
            "locks read UNKNOWN (sessions are still watched)"])
    for i, infobase in enumerate(c.infobases, 1):
        safe = NAME_RE.fullmatch(f"1c-infobase-{infobase}") is not None
        w.check({"name": f"1c-infobase-{infobase if safe else i}", "type": "onec_infobase", "rac": rac,
                 "infobase": infobase, "interval": "1m"}, block=True)
        w.add("  #  infobase_user: USER")
        w.add(f"  #  infobase_password_file: /etc/boxkeeper/1c-{infobase if safe else i}.pwd",
              "one line, owner boxkeeper, chmod 600")
        w.add("  #  password_in_argv: true", "rac gets the password in its argv (docs)")


def _dbms(w: _Writer) -> None:
    c = w.d.onec
    assert c is not None
    pg = c.postgres
    if pg is not None:
        w.comment(f"PostgreSQL data {pg.datadir}, port {pg.port} (from {pg.port_source})")
    else:
        w.comment("PostgreSQL: no data directory found (/var/lib/pgpro/1c-*/data, "
                  "/var/lib/postgresql/*/main, …)")
    databases = c.infobases or ("NAME",)
    w.todo(["onec_dbms logs in as its own role: `CREATE ROLE boxkeeper LOGIN PASSWORD '…'; GRANT pg_monitor "
            "TO boxkeeper;`, then /etc/boxkeeper/onec.pgpass (host:port:database:user:password, owner "
            "boxkeeper, chmod 600) and uncomment; the database is the infobase's db-name (`rac infobase "
            "info`), assumed to be the infobase's name here"])
    for i, database in enumerate(databases, 1):
        name = "1c-dbms" if i == 1 else f"1c-dbms-{i}"
        fields = {"name": name, "type": "onec_dbms", "host": "127.0.0.1", "port": pg.port if pg else 5432,
                  "database": database, "user": "boxkeeper", "passfile": "/etc/boxkeeper/onec.pgpass",
                  "interval": "1m"}
        if pg is not None and pg.bindir:
            fields["bindir"] = w.path(pg.bindir)
        w.check(fields, block=True, off=True)


def _publication(w: _Writer) -> None:
    c = w.d.onec
    assert c is not None
    p = c.publication
    if p is None:
        w.add("  # web publication: no LoadModule _1cws_module line in Apache's config (none published)")
        return
    w.comment(f"web publication: {p.conf} loads {p.module}")
    fields = {"name": "1c-publication", "type": "onec_publication", "url": p.url or "http://127.0.0.1/NAME/",
              "apache_conf": w.path(p.conf)}
    if p.url is None:
        w.todo([f"no single Alias in {p.conf}: set the publication's URL and uncomment"])
    w.check(fields, off=p.url is None)


def render(d: Discovery, *, paths_under_root: bool = False, push: Optional[Push] = None,
           listen: Optional[str] = None) -> str:
    """The agent config for ``d``, as YAML text with comments; with ``push``, a live ``controller:``
    section (else a commented-out one); ``listen``: the /metrics address (default 127.0.0.1:9847)."""
    w = _Writer(d, paths_under_root, push, listen)
    _header(w)
    _top(w)
    _bitrix(w)
    w.add("checks:")
    _portal(w)
    _services(w)
    _mysql(w)
    _disks(w)
    _backup(w)
    _plugins(w)
    _onec(w)
    while w.out and not w.out[-1]:
        w.out.pop()
    return "\n".join(w.out) + "\n"
