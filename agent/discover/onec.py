"""A 1C:Enterprise server on the box: platform install dirs, systemd units, cluster registry,
ports, the rac the checks run, its PostgreSQL, its web publication, and (only when asked, with
``discover --rac``) its infobases.

Ports: ``--port``/``-port`` (ras, ragent), ``-regport`` (rmngr) and ``-range`` (worker processes)
in the unit files, the number in the registry directory's name (``reg_1541``: rmngr), else the
documented defaults 1540 (ragent), 1541 (rmngr), 1545 (ras), 1560:1591 (rphost).

Infobases: the only thing discover cannot read from files. ``find_onec`` takes an ``ask`` function
(``rac`` path on this machine → names, or None and why); :mod:`agent.discover.command` passes one
that runs ``rac cluster list`` and ``rac infobase summary list`` (read-only) when ``--rac`` is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from agent.checks.onec.publication import wsap_line
from agent.discover.boxroot import BoxRoot
from agent.discover.model import OneC, OneCPostgres, OneCPublication, Service
from agent.discover.services import UNIT_DIRS

PLATFORM_GLOBS = ("/opt/1cv8/x86_64/*", "/opt/1C/v8.3/x86_64")
UNIT_GLOBS = ("srv1cv8-*.service", "ras-*.service")
INIT_SCRIPT = "/etc/init.d/srv1cv83"
REGISTRY_PARENT = "/home/usr1cv8/.1cv8/1C/1cv8"
DEFAULT_PORTS = {"ragent": 1540, "rmngr": 1541, "ras": 1545}
DEFAULT_RANGE = "1560:1591"
PG_DATADIRS = ("/var/lib/pgpro/1c-*/data", "/var/lib/pgpro/*/data", "/var/lib/postgresql/*/main",
               "/var/lib/pgsql/*/data", "/var/lib/pgsql/data", "/var/lib/postgresql/data")
PG_BINDIRS = ("/opt/pgpro/1c-*/bin", "/opt/pgpro/*/bin", "/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
PG_CONFS = ("{datadir}/postgresql.conf", "/etc/postgresql/*/main/postgresql.conf")
APACHE_FILES = ("/etc/apache2/apache2.conf", "/etc/apache2/conf-enabled/*.conf",
                "/etc/apache2/sites-enabled/*", "/etc/httpd/conf/httpd.conf", "/etc/httpd/conf.d/*.conf")
_PORT = re.compile(r"(?:^|\s)--?port[= ](\d+)")
_REGPORT = re.compile(r"(?:^|\s)--?regport[= ](\d+)")
_RANGE = re.compile(r"(?:^|\s)--?range[= ](\d+:\d+)")
_PG_PORT = re.compile(r"^\s*port\s*=\s*(\d+)", re.MULTILINE)
_ALIAS = re.compile(r'^\s*Alias\s+"?(/[^"\s]*)"?\s', re.MULTILINE)
_VERSION = re.compile(r"/(\d+(?:\.\d+){3})/ragent$")

#: rac on this machine → (infobase names, how they were found) or (None, why not).
InfobaseAsker = Callable[[Path], tuple["Optional[tuple[str, ...]]", str]]


def _version_key(path: str) -> tuple[int, ...]:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return tuple(int(x) for x in name.split(".") if x.isdigit())


def _running(cmdlines: Sequence[tuple[str, ...]]) -> Optional[str]:
    for argv in cmdlines:
        if argv and (m := _VERSION.search(argv[0])):
            return m.group(1)
    return None


def find_postgres(root: BoxRoot) -> Optional[OneCPostgres]:
    datadir = next((d for pattern in PG_DATADIRS for d in root.glob(pattern) if root.is_dir(d)), None)
    if datadir is None:
        return None
    newest_first = [d for pattern in PG_BINDIRS
                    for d in sorted(root.glob(pattern), key=lambda p: [int(n) for n in re.findall(r"\d+", p)],
                                    reverse=True)]
    bindir = next((d for d in newest_first if root.is_file(f"{d}/psql") and root.is_file(f"{d}/pg_isready")),
                  None)
    for pattern in PG_CONFS:
        for conf in root.glob(pattern.format(datadir=datadir)):
            m = _PG_PORT.search(root.read_text(conf) or "")
            if m:
                return OneCPostgres(datadir, int(m.group(1)), conf, bindir)
    return OneCPostgres(datadir, 5432, "the default", bindir)


def find_publication(root: BoxRoot, apache_port: int) -> Optional[OneCPublication]:
    for pattern in APACHE_FILES:
        for conf in root.glob(pattern):
            text = root.read_text(conf) or ""
            module = wsap_line(text)
            if module is None:
                continue
            aliases = _ALIAS.findall(text)
            url = None
            if len(aliases) == 1:
                port = "" if apache_port == 80 else f":{apache_port}"
                url = f"http://127.0.0.1{port}{aliases[0].rstrip('/')}/"
            return OneCPublication(conf, module, url)
    return None


def find_onec(root: BoxRoot, processes: Sequence[Service], cmdlines: Sequence[tuple[str, ...]] = (),
              ask: Optional[InfobaseAsker] = None, apache_port: int = 80) -> Optional[OneC]:
    platforms = sorted((p for pattern in PLATFORM_GLOBS for p in root.glob(pattern) if root.is_dir(p)),
                       key=_version_key)
    units = [u for d in UNIT_DIRS for pattern in UNIT_GLOBS for u in root.glob(f"{d}/{pattern}")]
    if root.exists(INIT_SCRIPT):
        units.append(INIT_SCRIPT)
    registries = [p for p in root.glob(f"{REGISTRY_PARENT}/reg_*") if root.is_dir(p)]
    registry = f"{REGISTRY_PARENT}/reg_1541" if f"{REGISTRY_PARENT}/reg_1541" in registries else (
        registries[0] if registries else None)
    if not (platforms or units or registry or processes):
        return None
    ports: dict[str, int] = {}
    sources: list[str] = []
    worker_range = DEFAULT_RANGE
    for unit in units:
        text = " ".join(line.partition("=")[2] for line in (root.read_text(unit) or "").splitlines()
                        if line.strip().startswith("ExecStart"))
        role = "ras" if os.path.basename(unit).startswith("ras-") else "ragent"
        if (m := _PORT.search(text)) and role not in ports:
            ports[role] = int(m.group(1))
            sources.append(unit)
        if role == "ragent" and (m := _REGPORT.search(text)) and "rmngr" not in ports:
            ports["rmngr"] = int(m.group(1))
        if role == "ragent" and (m := _RANGE.search(text)):
            worker_range = m.group(1)
    if registry and "rmngr" not in ports and (m := re.search(r"reg_(\d+)$", registry)):
        ports["rmngr"] = int(m.group(1))
        sources.append(registry)
    source = ", ".join(dict.fromkeys(sources)) if sources else "the documented defaults"
    if sources and len(ports) < len(DEFAULT_PORTS):
        source += "; others: the documented defaults"
    ordered = tuple((role, ports.get(role, port)) for role, port in DEFAULT_PORTS.items())
    running = _running(cmdlines)
    with_rac = [p for p in platforms if root.is_file(f"{p}/rac")]
    newest = with_rac[-1] if with_rac else None
    rac_dir = next((p for p in with_rac if p.rsplit("/", 1)[-1] == running), newest)
    rac = f"{rac_dir}/rac" if rac_dir else None
    infobases: Optional[tuple[str, ...]] = None
    asked = "not asked (run discover with --rac to ask the cluster)"
    if rac is None:
        asked = "not asked: no rac in any platform directory"
    elif ask is not None:
        infobases, asked = ask(root.host(rac))
    return OneC(tuple(platforms), tuple(dict.fromkeys(units)), registry, ordered, source, tuple(processes),
                rac=rac, running=running, worker_range=worker_range, infobases=infobases,
                infobases_source=asked, postgres=find_postgres(root),
                publication=find_publication(root, apache_port))
