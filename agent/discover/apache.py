"""Apache httpd's configuration as discover needs it: ``Listen``, ``DocumentRoot``, ``ErrorLog``.

Read from ``/etc/httpd/conf/httpd.conf`` (RHEL, bitrix-env) or ``/etc/apache2/apache2.conf``
(Debian) and the files they ``Include``/``IncludeOptional`` (globs, relative to ``ServerRoot``).
``${VAR}`` is replaced from ``Define`` lines and Debian's ``/etc/apache2/envvars``; a value that
keeps a variable, or a piped/syslog ``ErrorLog``, is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from agent.discover.boxroot import BoxRoot, join
from agent.discover.nginx import ANY_ADDRESS, Listen

MAINS = (("/etc/httpd/conf/httpd.conf", "/etc/httpd"), ("/etc/apache2/apache2.conf", "/etc/apache2"))
ENVVARS = "/etc/apache2/envvars"
_MAX_DEPTH = 10
_VAR = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class ApacheConfig:
    main: Optional[str]                         # None: no Apache config
    listens: tuple[Listen, ...] = ()
    document_roots: tuple[tuple[str, str], ...] = ()   # (box path, file naming it)
    error_logs: tuple[str, ...] = ()


def _lines(text: str) -> list[list[str]]:
    """Directive lines (continuations joined, comments dropped), each split into words."""
    out: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append([a or b for a, b in re.findall(r'"([^"]*)"|(\S+)', stripped)])
    return out


def _envvars(root: BoxRoot) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (root.read_text(ENVVARS) or "").splitlines():
        m = re.match(r"\s*export\s+(\w+)=(\S+)", line)
        if m:
            found[m.group(1)] = m.group(2).strip("'\"").replace("$SUFFIX", "")
    return found


def parse_listen(words: list[str]) -> Optional[Listen]:
    """``Listen [addr:]port [protocol]``."""
    if not words:
        return None
    addr = words[0]
    address, _, port = addr.rpartition(":")
    if not port.isdigit():
        return None
    host = address.strip("[]")
    return Listen(None if host in ANY_ADDRESS else host, int(port),
                  ssl=len(words) > 1 and words[1].lower() == "https")


def read_apache(root: BoxRoot) -> ApacheConfig:
    main = next(((m, sr) for m, sr in MAINS if root.is_file(m)), None)
    if main is None:
        return ApacheConfig(None)
    path, server_root = main
    variables = _envvars(root)
    listens: list[Listen] = []
    docroots: list[tuple[str, str]] = []
    logs: list[str] = []
    seen: set[str] = set()

    def value(word: str) -> Optional[str]:
        text = _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), word)
        return None if "${" in text else text

    def absolute(word: str) -> Optional[str]:
        text = value(word)
        if text is None or text.startswith(("|", "syslog")):
            return None
        return root.box_path(text) if text.startswith("/") else join(server_root, text)

    def read(file: str, depth: int) -> None:
        nonlocal server_root
        key = root.canonical(file)
        text = root.read_text(file)
        if text is None or depth > _MAX_DEPTH or key in seen:
            return
        seen.add(key)
        for words in _lines(text):
            name, args = words[0].lower(), words[1:]
            if not args:
                continue
            if name == "serverroot" and (sr := value(args[0])):
                server_root = root.box_path(sr)
            elif name == "define" and len(args) > 1:
                variables[args[0]] = args[1]
            elif name in ("include", "includeoptional"):
                pattern = absolute(args[0])
                for included in root.glob(pattern) if pattern else []:
                    if root.is_file(included):
                        read(included, depth + 1)
                    else:
                        for inner in root.files(included):
                            read(inner, depth + 1)
            elif name == "listen" and (listen := parse_listen([value(a) or "" for a in args])):
                listens.append(listen)
            elif name == "documentroot" and (docroot := absolute(args[0])):
                docroots.append((docroot, file))
            elif name == "errorlog" and (log := absolute(args[0])):
                logs.append(log)

    read(path, 0)
    return ApacheConfig(path, tuple(listens), tuple(docroots), tuple(dict.fromkeys(logs)))
