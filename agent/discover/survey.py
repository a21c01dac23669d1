"""``discover``: read a box through its root and say what is there (:class:`Discovery`).

Reads files only (and ``/proc`` when given): nothing is run, written, locked or connected to.
Each part is found by its own module; this one joins them and decides what the parts leave open
(which site is the portal, where PHP's errors go, which data the disks hold), recording as a
:class:`~agent.discover.model.Note` whatever it could not decide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from agent.discover import bitrix, php, system
from agent.discover.apache import ApacheConfig, read_apache
from agent.discover.bitrix import (
    bitrix_env,
    conventional_docroots,
    cron_lines,
    db_host,
    is_docroot,
    site_names,
)
from agent.discover.boxroot import BoxRoot
from agent.discover.model import (
    BackupState,
    Discovery,
    HttpEndpoint,
    Note,
    Portal,
    Section,
    ServiceState,
    Site,
)
from agent.discover.nginx import Listen, NginxConfig, Server, read_nginx, url_of
from agent.discover.onec import InfobaseAsker, find_onec
from agent.discover.services import ProcessSource, ServiceScan, find_services

ERROR_PAGE = "/var/www/bitrixenv_error/502.html"
BACKEND_DEFAULT = "http://127.0.0.1:8888/"
_NOT_A_NAME = ("", "_", "localhost", "*")


def _listen_text(listen: Listen, directive: str = "listen") -> str:
    host = f"[{listen.host}]" if listen.host and ":" in listen.host else listen.host
    return f"{directive} {host}:{listen.port}" if host else f"{directive} {listen.port}"


def _pick(listens: tuple[Listen, ...]) -> Listen:
    return next((x for x in listens if not x.ssl), listens[0])


def _endpoint(server: Server) -> HttpEndpoint:
    listen = _pick(server.listens)
    names = [n for n in server.names if n not in _NOT_A_NAME and not n.startswith(("~", "*", "."))
             and not n.replace(".", "").isdigit()]
    header = names[0] if names and not any(x.default for x in server.listens) else None
    return HttpEndpoint(url_of(listen), header, f"{_listen_text(listen)} in {server.file}")


def _front(root: BoxRoot, nginx: NginxConfig, apache: ApacheConfig, key: str) -> Optional[HttpEndpoint]:
    serving = [s for s in nginx.servers if any(root.canonical(r) == key for r in s.roots)]
    if serving:  # a plain-HTTP block first: bitrix-env has one for :80 and one for :443 per site
        return _endpoint(min(serving, key=lambda s: all(x.ssl for x in s.listens)))
    if nginx.main is None and apache.listens:
        for docroot, _ in apache.document_roots:
            if root.canonical(docroot) == key:
                listen = _pick(apache.listens)
                source = f"{_listen_text(listen, 'Listen')} in {apache.main}"
                return HttpEndpoint(url_of(listen), None, source)
    return None


def _sites(root: BoxRoot, nginx: NginxConfig, apache: ApacheConfig, notes: list[Note]) -> list[Site]:
    named: dict[str, tuple[str, list[str]]] = {}

    def add(docroot: str, file: Optional[str]) -> None:
        entry = named.setdefault(root.canonical(docroot), (docroot, []))
        if file and file not in entry[1]:
            entry[1].append(file)

    for docroot in conventional_docroots(root):
        add(docroot, None)
    for server in nginx.servers:
        for docroot in server.roots:
            add(docroot, server.file)
    for docroot, file in apache.document_roots:
        add(docroot, file)
    found = [(key, docroot, files) for key, (docroot, files) in named.items() if is_docroot(root, docroot)]
    names = site_names(docroot for _, docroot, _ in found)
    crons = cron_lines(root)
    sites = []
    for key, docroot, files in found:
        cron = tuple(c for c in crons if c.docroot and root.canonical(c.docroot) == key)
        host, source, why = db_host(root, docroot)
        if why and host is None:
            notes.append(Note(Section.MYSQL, f"{why}: the database address of {docroot} is not known"))
        sites.append(Site(names[docroot], docroot, tuple(files), cron, _front(root, nginx, apache, key),
                          host, source))
    return sites


def _default_front(nginx: NginxConfig, apache: ApacheConfig, has_sites: bool,
                   notes: list[Note]) -> Optional[HttpEndpoint]:
    if nginx.servers:
        server = next((s for s in nginx.servers if any(x.default for x in s.listens)), nginx.servers[0])
        if has_sites:
            notes.append(Note(Section.PORTAL, "no nginx server block names the docroot in a `root` "
                                              "directive: the portal URL is the default server's"))
        return _endpoint(server)
    if apache.listens:
        listen = _pick(apache.listens)
        return HttpEndpoint(url_of(listen), None, f"{_listen_text(listen, 'Listen')} in {apache.main}")
    if has_sites:
        notes.append(Note(Section.PORTAL, "no nginx or Apache config found: the portal is assumed at "
                                          "http://127.0.0.1/; correct the url"))
        return HttpEndpoint("http://127.0.0.1/", None, "the default")
    return None


def _portals(sites: list[Site], nginx: NginxConfig, apache: ApacheConfig, notes: list[Note]) -> list[Portal]:
    main = sites[0] if sites else None
    front = main.front if main and main.front else _default_front(nginx, apache, bool(sites), notes)
    portals = [Portal("portal", front, main.name if main else None)] if front else []
    for site in sites[1:]:
        if site.front:
            portals.append(Portal(f"portal-{site.name}", site.front, site.name))
        else:
            notes.append(Note(Section.PORTAL, f"no nginx server block or Apache DocumentRoot serves "
                                              f"{site.docroot}: add an http check of its URL"))
    return portals


def _backend(nginx: NginxConfig, apache: ApacheConfig, scan: ServiceScan,
             notes: list[Note]) -> Optional[HttpEndpoint]:
    httpd = next((s for s in scan.services if s.key == "httpd"), None)
    if nginx.main is None or httpd is None or httpd.state is ServiceState.NOT_RUNNING:
        return None
    if apache.listens:
        listen = _pick(apache.listens)
        return HttpEndpoint(url_of(listen), None, f"{_listen_text(listen, 'Listen')} in {apache.main}")
    notes.append(Note(Section.PORTAL, f"Apache's Listen was not found (no readable httpd.conf): the "
                                      f"backend is assumed at {BACKEND_DEFAULT}, as on bitrix-env"))
    return HttpEndpoint(BACKEND_DEFAULT, None, "the bitrix-env default")


def _php_error_log(
    root: BoxRoot, nginx: NginxConfig, apache: ApacheConfig, scan: ServiceScan
) -> Optional[str]:
    keys = {s.key for s in scan.services if s.state is not ServiceState.NOT_RUNNING}
    candidates: list[str] = []
    if "php-fpm" in keys:
        candidates += php.fpm_error_logs(root)
    candidates += php.ini_error_logs(root)
    if "httpd" in keys:
        candidates += [*apache.error_logs, "/var/log/httpd/error_log", "/var/log/apache2/error.log"]
    if "php-fpm" in keys:
        candidates += ["/var/log/php-fpm/www-error.log", "/var/log/php-fpm/error.log"]
    candidates += nginx.error_logs
    return next((root.canonical(c) for c in candidates if root.is_file(c)), None)


def discover(root_dir: Union[Path, str], source: ProcessSource, host: Optional[str] = None,
             ask_infobases: Optional[InfobaseAsker] = None) -> Discovery:
    """What is on the box under ``root_dir``; ``host``: the name to use (else ``/etc/hostname``);
    ``ask_infobases``: how to ask a 1C cluster for its infobases (None: it is not asked)."""
    root = BoxRoot(root_dir)
    notes: list[Note] = []
    env = bitrix_env(root)
    nginx, apache = read_nginx(root), read_apache(root)
    scan = find_services(root, source)
    sites = _sites(root, nginx, apache, notes)
    if env.present and not sites and root.is_dir(bitrix.DEFAULT_DOCROOT):
        notes.append(Note(Section.BITRIX, f"bitrix-env is here but {bitrix.DEFAULT_DOCROOT} holds no Bitrix "
                                          f"installation yet (no {bitrix.SETTINGS} or {bitrix.DBCONN}): run "
                                          "discover again after the install"))
    host_source = "--host" if host else None
    if host is None and (host := system.hostname(root)) is not None:
        host_source = "/etc/hostname"
    if host is None:
        notes.append(Note(Section.HOST, "no valid name in /etc/hostname under the root: set host, or the "
                                        "agent uses the name of the machine it runs on"))
    mysqld = next((s for s in scan.services if s.key == "mysqld"), None)
    main = sites[0] if sites else None
    main_db = (main.db_host, main.db_source) if main and main.db_host and main.db_source else None
    mysql = system.mysql_server(root, scan.processes.get("mysqld", ()), mysqld is not None, main_db)
    if sites and mysql is None:
        how = (f"the portal's database host in {main_db[1]} is {main_db[0]!r}, a unix socket" if main_db
               else "the portal's database host is not known")
        notes.append(Note(Section.MYSQL, f"no MySQL server found here and {how}: add a tcp check of the "
                                         "database's address"))
    backup = system.backup(root) if sites or env.present else None
    apache_port = next((x.port for x in apache.listens if not x.ssl), 80)
    ragents = tuple(p.cmdline for p in scan.processes.get("1c-ragent", ()))
    onec = find_onec(root, [s for s in scan.services if s.onec], ragents, ask_infobases, apache_port)
    data = [(site.docroot, "docroot") for site in sites]
    if mysql is not None and mysqld is not None:
        data.append((mysql.datadir, "MySQL data"))
    if backup is not None and backup.state is not BackupState.MISSING:
        data.append((backup.dir, "backups"))
    data += [(system.TMP, "temporary files"), ("/var/log", "logs")]
    if onec is not None and onec.registry:
        data.append((onec.registry, "1C cluster registry"))
    if onec is not None and onec.postgres is not None:
        data.append((onec.postgres.datadir, "PostgreSQL data (1C)"))
    disks = system.disks(root, source, data)
    if disks.source is None:
        notes.append(Note(Section.DISKS, "no mount table under the root (no /etc/fstab): only / is checked; "
                                         "add a disk check for each separate filesystem"))
    php_log = _php_error_log(root, nginx, apache, scan) if sites else None
    return Discovery(
        root=str(root.path),
        processes=source.describe(),
        host=host,
        host_source=host_source,
        bitrix_env=env,
        sites=tuple(sites),
        services=scan.services,
        portals=tuple(_portals(sites, nginx, apache, notes)),
        backend=_backend(nginx, apache, scan, notes),
        error_page=env.present or root.is_file(ERROR_PAGE),
        mysql=mysql,
        disks=disks,
        backup=backup,
        php_error_log=php_log,
        plugins=system.plugins(root),
        onec=onec,
        notes=tuple(notes),
    )
