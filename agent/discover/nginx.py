"""nginx's configuration as discover needs it: server blocks (listen, server_name, root), error
logs and the pid file.

Read from ``/etc/nginx/nginx.conf`` and the files it includes (globs, relative to ``/etc/nginx``;
bitrix-env includes ``bx/site_enabled/*.conf``), never from every file under ``/etc/nginx`` (a
site in ``site_avaliable`` that is not enabled does not count). ``set $docroot "..."`` in a server
block is applied to its ``root`` directives, as bitrix-env writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from agent.discover.boxroot import BoxRoot, join

MAIN = "/etc/nginx/nginx.conf"
_MAX_DEPTH = 10
_VAR = re.compile(r"\$\{?(\w+)\}?")
#: listen addresses meaning "every address" (compared with, never bound to)
ANY_ADDRESS = frozenset({"*", "0.0.0.0", "::", ""})  # noqa: S104


@dataclass(frozen=True)
class Listen:
    host: Optional[str]                  # None: every address
    port: int
    ssl: bool = False
    default: bool = False


@dataclass(frozen=True)
class Server:
    listens: tuple[Listen, ...]
    names: tuple[str, ...]
    roots: tuple[str, ...]            # box paths, variables substituted
    file: str


@dataclass(frozen=True)
class NginxConfig:
    main: Optional[str]                  # None: no nginx.conf
    servers: tuple[Server, ...] = ()
    error_logs: tuple[str, ...] = ()
    pid_file: Optional[str] = None


@dataclass
class _Directive:
    name: str
    args: list[str]
    block: Optional[list[_Directive]]
    file: str


def _tokens(text: str) -> list[tuple[bool, str]]:
    """(is_word, value): words (quotes removed) and the punctuation ``{ } ;``."""
    out: list[tuple[bool, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "{};":
            out.append((False, c))
            i += 1
        elif c in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append((True, "".join(buf)))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            out.append((True, text[i:j]))
            i = j
    return out


def _parse(text: str, file: str) -> list[_Directive]:
    top: list[_Directive] = []
    stack = [top]
    words: list[str] = []
    for is_word, value in _tokens(text):
        if is_word:
            words.append(value)
        elif value == ";":
            if words:
                stack[-1].append(_Directive(words[0], words[1:], None, file))
            words = []
        elif value == "{":
            block: list[_Directive] = []
            stack[-1].append(_Directive(words[0] if words else "", words[1:], block, file))
            stack.append(block)
            words = []
        elif len(stack) > 1:  # "}"
            stack.pop()
            words = []
    return top


def _load(root: BoxRoot, path: str, depth: int, seen: set[str]) -> list[_Directive]:
    key = root.canonical(path)
    text = root.read_text(path)
    if text is None or depth > _MAX_DEPTH or key in seen:
        return []
    return _expand(root, _parse(text, path), depth, seen | {key})


def _expand(root: BoxRoot, items: list[_Directive], depth: int, seen: set[str]) -> list[_Directive]:
    out: list[_Directive] = []
    for item in items:
        if item.name == "include" and item.block is None and item.args:
            pattern = root.box_path(item.args[0])
            if not pattern.startswith("/"):
                pattern = join("/etc/nginx", pattern)
            for path in root.glob(pattern):
                out.extend(_load(root, path, depth + 1, seen))
        else:
            if item.block is not None:
                item.block = _expand(root, item.block, depth, seen)
            out.append(item)
    return out


def parse_listen(args: list[str]) -> Optional[Listen]:
    """``listen`` arguments → :class:`Listen` (a unix socket: None)."""
    if not args or args[0].startswith("unix:"):
        return None
    addr, flags = args[0], set(args[1:])
    host: Optional[str]
    if addr.isdigit():
        host, port = None, int(addr)
    elif addr.startswith("["):
        inner, _, rest = addr[1:].partition("]")
        host, port = inner, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 80
    elif ":" in addr:
        host, _, text = addr.rpartition(":")
        if not text.isdigit():
            return None
        port = int(text)
    else:
        host, port = addr, 80
    if host in ANY_ADDRESS:
        host = None
    return Listen(host, port, ssl="ssl" in flags, default=bool(flags & {"default_server", "default"}))


def _server(root: BoxRoot, block: list[_Directive], file: str) -> Server:
    variables: dict[str, str] = {}
    listens: list[Listen] = []
    names: list[str] = []
    roots: list[str] = []

    def walk(items: list[_Directive]) -> None:
        for d in items:
            if d.name == "set" and len(d.args) == 2 and d.args[0].startswith("$"):
                variables[d.args[0][1:]] = d.args[1]
            elif d.name == "listen" and d.block is None:
                listen = parse_listen(d.args)
                if listen is not None:
                    listens.append(listen)
            elif d.name == "server_name":
                names.extend(d.args)
            elif d.name == "root" and d.args:
                value = _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), d.args[0])
                if "$" not in value and value.startswith("/"):
                    roots.append(root.box_path(value))
            if d.block is not None:
                walk(d.block)

    walk(block)
    return Server(tuple(listens) or (Listen(None, 80),), tuple(names), tuple(roots), file)


def read_nginx(root: BoxRoot) -> NginxConfig:
    if not root.is_file(MAIN):
        return NginxConfig(None)
    items = _load(root, MAIN, 0, set())
    servers: list[Server] = []
    logs: list[str] = []
    pid: Optional[str] = None

    def walk(items: list[_Directive]) -> None:
        nonlocal pid
        for d in items:
            if d.name == "server" and d.block is not None:
                servers.append(_server(root, d.block, d.file))
            elif d.name == "error_log" and d.args and d.args[0].startswith("/"):
                logs.append(root.box_path(d.args[0]))
            elif d.name == "pid" and d.args and d.args[0].startswith("/"):
                pid = root.box_path(d.args[0])
            if d.block is not None:
                walk(d.block)

    walk(items)
    return NginxConfig(MAIN, tuple(servers), tuple(dict.fromkeys(logs)), pid)


def url_of(listen: Listen, ssl: Optional[bool] = None) -> str:
    """The URL that reaches a listening socket from this box."""
    secure = listen.ssl if ssl is None else ssl
    scheme = "https" if secure else "http"
    host = listen.host or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = "" if listen.port == (443 if secure else 80) else f":{listen.port}"
    return f"{scheme}://{host}{port}/"
