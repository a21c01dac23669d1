"""Which of a Bitrix box's services are there, and by which process name a check finds them.

One catalogue (:data:`KINDS`): each service's process names, pid file names, systemd units and
config files. Where the processes come from (:class:`ProcessSource`):

- the root is this machine's ``/``: every process in ``/proc`` (read with
  :class:`agent.proctable.ProcessTable`, so names are exactly what a ``process`` check compares);
- another root with ``--proc DIR`` (its processes run here: a chroot, a test box): only the
  processes named by the pid files under the root (``/run``, ``/var/run``); a pid file's name also
  tells the service when the process is an interpreter (``cron.pid`` → a python cron runner);
- another root without ``--proc`` (a copy, an image): none. Then a service counts as *installed*
  from its unit file, config or pid file, and its check uses the usual process name.

A process check for an interpreter (node, python, php ...) matches its command line instead
(``push-server``, or the script's name).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from agent.discover.boxroot import BoxRoot
from agent.discover.model import Service, ServiceState
from agent.discover.php import FPM_CONFIGS
from agent.proctable import ProcessTable

UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
PID_GLOBS = ("/run/*.pid", "/run/*/*.pid", "/var/run/*.pid", "/var/run/*/*.pid", "/var/lib/mysql/*.pid")
INTERPRETERS = re.compile(r"node(js)?|python[\d.]*|php[\d.]*|perl[\d.]*|ruby[\d.]*|java|sh|bash|dash")


@dataclass(frozen=True)
class ServiceKind:
    key: str                          # the check's name
    names: Optional[str]                 # process names (regex, whole name)
    cmdline: Optional[str]               # command line (regex) of an interpreter running it
    usual: Optional[str]                 # the process name when it is not seen running
    pid_stems: str                    # pid file names without ".pid" (regex)
    units: tuple[str, ...]            # systemd unit names (globs, without ".service")
    configs: tuple[str, ...]          # box-path globs: present = installed
    variants: tuple[tuple[str, str], ...] = ()   # (regex on the evidence, process name)
    onec: bool = False


KINDS: tuple[ServiceKind, ...] = (
    ServiceKind("nginx", "nginx", None, "nginx", "nginx", ("nginx",), ("/etc/nginx/nginx.conf",)),
    ServiceKind("httpd", "httpd|apache2", None, "httpd", "httpd|apache2", ("httpd", "apache2"),
                ("/etc/httpd/conf/httpd.conf", "/etc/apache2/apache2.conf"), (("apache2", "apache2"),)),
    ServiceKind("php-fpm", r"php-fpm[\d.]*", None, "php-fpm", r"php-fpm[\d.]*|php[\d.]+-fpm",
                ("php-fpm", "php*-fpm"), FPM_CONFIGS, ((r"php(\d+\.\d+)-fpm", r"php-fpm\1"),)),
    ServiceKind("mysqld", "mysqld|mariadbd", None, "mysqld", "mysqld?|mariadbd?",
                ("mysqld", "mysql", "mariadb"), ("/etc/my.cnf", "/etc/mysql/my.cnf"),
                (("mariadb", "mariadbd"),)),
    ServiceKind("push-server", None, "push-server", None, "push-server.*",
                ("push-server", "push-server-*"), ("/etc/sysconfig/push-server-multi", "/etc/push-server")),
    ServiceKind("redis", "redis-server", None, "redis-server", r"redis(-server)?(_\d+)?",
                ("redis", "redis-server"), ("/etc/redis.conf", "/etc/redis/redis.conf")),
    ServiceKind("memcached", "memcached", None, "memcached", "memcached", ("memcached",),
                ("/etc/sysconfig/memcached", "/etc/memcached.conf")),
    ServiceKind("crond", "crond?", None, "crond", "crond?", ("crond", "cron"),
                ("/etc/crontab", "/etc/cron.d"), ((r"(^|/)cron\.service$", "cron"),)),
    ServiceKind("1c-ragent", "ragent", None, "ragent", "ragent", ("srv1cv8-*",), (), onec=True),
    ServiceKind("1c-rmngr", "rmngr", None, "rmngr", "rmngr", (), (), onec=True),
    ServiceKind("1c-rphost", "rphost", None, "rphost", "rphost", (), (), onec=True),
    ServiceKind("1c-ras", "ras", None, "ras", "ras", ("ras-*",), (), onec=True),
)


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    pid_file: Optional[str] = None


@dataclass(frozen=True)
class ProcessSource:
    """Where the box's processes are visible (see the module docstring)."""

    proc: Optional[Path]
    whole_table: bool

    def describe(self) -> str:
        if self.proc is None:
            return "not looked at (another root without --proc: services judged by their files)"
        if self.whole_table:
            return "every running process (the root is this machine's /)"
        return f"the processes named by pid files under the root, looked up in {self.proc}"


@dataclass(frozen=True)
class ServiceScan:
    services: tuple[Service, ...]
    processes: dict[str, tuple[Proc, ...]]     # kind → its processes seen running


def _kind_of(proc: Proc) -> Optional[ServiceKind]:
    interpreter = INTERPRETERS.fullmatch(proc.name) is not None
    for kind in KINDS:
        if kind.names and re.fullmatch(kind.names, proc.name):
            return kind
        if kind.cmdline and interpreter and re.search(kind.cmdline, " ".join(proc.cmdline)):
            return kind
    if proc.pid_file:
        stem = os.path.basename(proc.pid_file).removesuffix(".pid")
        return next((k for k in KINDS if re.fullmatch(k.pid_stems, stem)), None)
    return None


def read_processes(root: BoxRoot, source: ProcessSource) -> list[Proc]:
    if source.proc is None:
        return []
    table = {
        int(p.info["pid"]): Proc(int(p.info["pid"]), str(p.info["name"]), tuple(p.info["cmdline"] or ()))
        for p in ProcessTable(source.proc, max_age=float("inf")).process_iter(["cmdline"])
    }
    if source.whole_table:
        return sorted(table.values(), key=lambda p: p.pid)
    named: dict[int, Proc] = {}
    for pattern in PID_GLOBS:
        for pid_file in root.glob(pattern):
            text = (root.read_text(pid_file) or "").split()
            pid = int(text[0]) if text and text[0].isdigit() else None
            if pid in table and pid not in named:
                found = table[pid]
                named[pid] = Proc(found.pid, found.name, found.cmdline, pid_file)
    return sorted(named.values(), key=lambda p: p.pid)


def _check_target(kind: ServiceKind, procs: list[Proc]) -> tuple[Optional[str], Optional[str]]:
    """(match, cmdline_regex) that finds these processes."""
    name = sorted(Counter(p.name for p in procs).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    if INTERPRETERS.fullmatch(name) is None:
        return name, None
    if kind.cmdline:
        return None, kind.cmdline
    args = [a for a in procs[0].cmdline[1:] if not a.startswith("-")]
    return None, re.escape(os.path.basename(args[0]) if args else kind.key)


def _installed(root: BoxRoot, kind: ServiceKind) -> Optional[str]:
    """What says the service is installed: a unit file, a config, a pid file (None: nothing)."""
    for unit_dir in UNIT_DIRS:
        for unit in kind.units:
            for pattern in (f"{unit_dir}/{unit}.service", f"{unit_dir}/{unit}@.service"):
                found = root.glob(pattern)
                if found:
                    return f"unit file {found[0]}"
    for pattern in kind.configs:
        found = root.glob(pattern)
        if found:
            return f"{found[0]}"
    for pattern in PID_GLOBS:
        for pid_file in root.glob(pattern):
            if re.fullmatch(kind.pid_stems, os.path.basename(pid_file).removesuffix(".pid")):
                return f"pid file {pid_file}"
    return None


def _usual_name(kind: ServiceKind, evidence: str) -> Optional[str]:
    for pattern, name in kind.variants:
        m = re.search(pattern, evidence)
        if m:
            return m.expand(name)
    return kind.usual


def find_services(root: BoxRoot, source: ProcessSource) -> ServiceScan:
    procs = read_processes(root, source)
    by_kind: dict[str, list[Proc]] = {}
    for proc in procs:
        kind = _kind_of(proc)
        if kind is not None:
            by_kind.setdefault(kind.key, []).append(proc)
    services: list[Service] = []
    for kind in KINDS:
        running = by_kind.get(kind.key)
        if running:
            match, regex = _check_target(kind, running)
            services.append(Service(kind.key, ServiceState.RUNNING, match, regex, "running", kind.onec))
            continue
        evidence = _installed(root, kind)
        if evidence is None:
            continue
        state = ServiceState.UNVERIFIED if source.proc is None else ServiceState.NOT_RUNNING
        usual = _usual_name(kind, evidence)
        services.append(Service(kind.key, state, usual, None if usual else kind.cmdline, evidence, kind.onec))
    return ServiceScan(tuple(services), {k: tuple(v) for k, v in by_kind.items()})
