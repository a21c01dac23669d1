"""The Bitrix side of a box: bitrix-env, the sites (docroots), their database host, their cron line.

- bitrix-env: ``BITRIX_VA_VER`` in ``/etc/sysconfig/httpd``, and ``/opt/webdir/bin/bx-sites``
  (recorded, never run);
- a docroot is a directory holding ``bitrix/.settings.php`` or ``bitrix/php_interface/dbconn.php``;
  candidates are ``/home/bitrix/www``, ``/home/bitrix/ext_www/*`` and the roots named by the web
  server configs (the caller passes those);
- the database host is read from ``.settings.php`` (``connections`` → ``default`` → ``host``) or
  ``dbconn.php`` (``$DBHost``) with a regular expression: PHP is never run, and nothing else of
  those files (the password) is kept;
- cron: every line naming ``cron_events.php`` in ``/etc/crontab``, ``/etc/cron.d/*`` and the user
  crontabs of ``/var/spool/cron``, commented out or not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Optional

from agent.configtypes import NAME_RE
from agent.discover.boxroot import BoxRoot, join
from agent.discover.model import BitrixEnv, CronLine

DEFAULT_DOCROOT = "/home/bitrix/www"
EXT_WWW = "/home/bitrix/ext_www"
SETTINGS = "bitrix/.settings.php"
DBCONN = "bitrix/php_interface/dbconn.php"
HTTPD_SYSCONFIG = "/etc/sysconfig/httpd"
BX_SITES = "/opt/webdir/bin/bx-sites"
CRON_FILES = ("/etc/crontab", "/etc/cron.d/*", "/var/spool/cron/*", "/var/spool/cron/crontabs/*")
_IGNORED_CRON = re.compile(r"^\.|~$|\.(rpmsave|rpmnew|rpmorig|dpkg-\w+|swp|bak)$")
_VA_VER = re.compile(r"""^\s*(?:export\s+)?BITRIX_VA_VER\s*=\s*["']?([^"'\s#]+)""", re.M)
_CRON_EVENTS = re.compile(r"(\S*?)/bitrix/modules/main/tools/cron_events\.php")
_SETTINGS_HOST = re.compile(
    r"""['"]default['"]\s*=>\s*(?:array\s*\(|\[)[^)\]]*?['"]host['"]\s*=>\s*(['"])(.*?)\1""", re.S
)
_DBCONN_HOST = re.compile(r"""\$DBHost\s*=\s*(['"])(.*?)\1""")


def bitrix_env(root: BoxRoot) -> BitrixEnv:
    m = _VA_VER.search(root.read_text(HTTPD_SYSCONFIG) or "")
    return BitrixEnv(
        version=m.group(1) if m else None,
        version_file=HTTPD_SYSCONFIG if m else None,
        bx_sites=BX_SITES if root.exists(BX_SITES) else None,
    )


def is_docroot(root: BoxRoot, path: str) -> bool:
    return root.exists(join(path, SETTINGS)) or root.exists(join(path, DBCONN))


def conventional_docroots(root: BoxRoot) -> list[str]:
    """``/home/bitrix/www`` and ``/home/bitrix/ext_www/*`` (whether or not they hold a site)."""
    return [DEFAULT_DOCROOT] + [join(EXT_WWW, name) for name in root.listdir(EXT_WWW)
                                if root.is_dir(join(EXT_WWW, name))]


def site_names(docroots: Iterable[str]) -> dict[str, str]:
    """docroot → site name: "default", the ext_www directory's name, or the last component; made
    valid as a check name and unique."""
    names: dict[str, str] = {}
    for docroot in docroots:
        base = "default" if docroot == DEFAULT_DOCROOT else os.path.basename(docroot.rstrip("/"))
        base = re.sub(r"[^A-Za-z0-9_.:-]", "-", base).lstrip("_.:-")[:60] or "site"
        name, n = base, 2
        while name in names.values() or not NAME_RE.fullmatch(f"portal-{name}"):
            name, n = f"{base}-{n}", n + 1
        names[docroot] = name
    return names


def db_host(root: BoxRoot, docroot: str) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(host as written, file it came from, why none was read)."""
    why: list[str] = []
    for rel, regex in ((SETTINGS, _SETTINGS_HOST), (DBCONN, _DBCONN_HOST)):
        path = join(docroot, rel)
        if not root.exists(path):
            continue
        text = root.read_text(path)
        if text is None:
            why.append(f"cannot read {path} ({root.unreadable(path)})")
            continue
        if rel == SETTINGS:
            start = text.find("connections")
            text = text[start:] if start >= 0 else ""
        m = regex.search(text)
        if m and m.group(2):
            return m.group(2), path, None
        why.append(f"no database host in {path}")
    return None, None, "; ".join(why) or None


def cron_lines(root: BoxRoot) -> list[CronLine]:
    lines: list[CronLine] = []
    for pattern in CRON_FILES:
        for path in root.glob(pattern):
            if _IGNORED_CRON.search(os.path.basename(path)) or not root.is_file(path):
                continue
            for number, line in enumerate((root.read_text(path) or "").splitlines(), 1):
                if "cron_events.php" not in line:
                    continue
                m = _CRON_EVENTS.search(line)
                docroot = root.box_path(m.group(1)) if m and m.group(1).startswith("/") else None
                lines.append(CronLine(path, number, line.lstrip().startswith("#"), docroot))
    return lines
