"""One HTTP/1.1 exchange on a connected socket, for the ``http`` check and the agent's push: request
out, response in.

Why not ``http.client``: it parses every response head with the ``email`` package (a ``Message``
object, its policy, header classes), which made up about half of the check's CPU: measured on the
benchmark VM with the caches cold (one run every 0.4 s; the agent runs it every 15 s), 1.02 ms per
run of the check with http.client against 0.54 ms with this module, of which 0.25 ms is the TCP
connect and close themselves; a push 0.54 against 0.32 ms. A check needs little of HTTP: the
status, ``Location``, the charset of ``Content-Type`` and the first ``max_body`` bytes of the
body; a push, the status and a short answer on a kept-alive connection.

What it does:

- the request: ``METHOD target HTTP/1.1`` with ``Host`` (as http.client writes it: no default
  port, IPv6 literals in brackets), ``Accept-Encoding: identity`` (no compressed body to
  decode), the caller's headers (a caller's ``Host`` replaces ours), a body with its
  ``Content-Length``, and ``Connection: close`` (the check: one exchange per connection) unless
  ``keep_alive`` (the push: :attr:`Response.reusable` says whether the connection may carry the
  next request);
- the response head, at most ``MAX_HEAD_BYTES``; interim ``1xx`` answers (``100 Continue``,
  ``103 Early Hints``) are skipped as http.client does; lines may end in CRLF or LF; folded header
  lines are joined to the line before; a header sent twice is joined with ``", "``;
- the body: none for ``HEAD``, 1xx, 204 and 304; ``Transfer-Encoding: chunked`` decoded (chunk
  extensions and trailers ignored); else ``Content-Length`` bytes; else up to the server's close.
  Reading stops after ``max_body`` bytes (``size`` counts what was read).

Errors: :class:`ConnectionClosed` (closed before any answer: a kept-alive connection the server
had closed), :class:`ProtocolError` (not HTTP, a head too long, a body cut short, a bad chunk or
length; numbers are ASCII digits only) with a message for the check's summary;
``OSError``/``TimeoutError`` from the socket as they are; nothing else, whatever the bytes
(tests/agent/test_httpwire_fuzz.py). The socket's timeout is set by the caller before every read
(``before_read``), so one deadline bounds the whole exchange.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Optional

MAX_HEAD_BYTES = 64 * 1024
_RECV = 64 * 1024
_NO_BODY = (204, 304)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEX = re.compile(rb"[0-9a-fA-F]+")


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is true for "²" and "５" too, and ``int("²")`` raises."""
    return text.isascii() and text.isdigit()


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as the check can read it (the message says how)."""


class ConnectionClosed(ProtocolError):
    """The server closed the connection before it sent anything: on a kept-alive connection, the
    server had closed it in the meantime (send once more on a new one)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes  # at most max_body bytes
    size: int  # body bytes read
    reusable: bool = False  # HTTP/1.1, not "Connection: close", body framed and read to its end

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def charset(self) -> Optional[str]:
        """The ``charset`` parameter of ``Content-Type``, lower case, or None."""
        match = _CHARSET.search(self.headers.get("content-type", ""))
        return match.group(1).lower() if match else None


def is_token(text: str) -> bool:
    """Whether ``text`` may be a method or a header name (an HTTP token)."""
    return _TOKEN.match(text) is not None


def is_one_line(value: str) -> bool:
    """Whether a header value has no line break or NUL (which would end the header early)."""
    return _BAD_VALUE.search(value) is None


class ProxyRefused(ProtocolError):
    """The proxy answered the ``CONNECT`` with something other than 2xx (``status``: 407 wants
    credentials, 403 the destination is not allowed, 502/503 it cannot reach it)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"proxy answered CONNECT with HTTP {status}{' ' + reason if reason else ''}")
        self.status = status


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy (agent/proxy.py chooses it): ``CONNECT`` tunnels for TLS."""

    host: str
    port: int
    authorization: Optional[str] = None  # the Proxy-Authorization value ("Basic …"); never logged

    @property
    def shown(self) -> str:
        """For log lines: without the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def tunnel(sock: socket.socket, host: str, port: int, proxy: Proxy, *, timeout: float) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``host:port`` (``CONNECT``); :class:`ProxyRefused`
    unless it answers 2xx. After it, ``sock`` carries the bytes to and from ``host:port``."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = _Reader(sock, lambda: sock.settimeout(timeout))
    status, _headers, _version = _head(reader)
    while 100 <= status < 200:
        status, _headers, _version = _head(reader)
    if not 200 <= status < 300:
        raise ProxyRefused(status, "")
    if reader.buf:  # nothing may come before the client speaks (TLS: the ClientHello)
        raise ProtocolError("proxy sent data after its answer to CONNECT")


def connect(
    host: str, port: int, *, timeout: float, context: Optional[ssl.SSLContext] = None,
    proxy: Optional[Proxy] = None,
) -> socket.socket:
    """A connected socket, TLS-wrapped (SNI and hostname check: ``host``) when ``context`` is given.
    With ``proxy``: to the proxy, and for TLS through a ``CONNECT`` tunnel to ``host:port`` (for
    plain HTTP the caller sends absolute-form requests to the proxy)."""
    if proxy is None:
        sock = socket.create_connection((host, port), timeout=timeout)
    else:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    if context is None:
        return sock
    try:
        if proxy is not None:
            tunnel(sock, host, port, proxy, timeout=timeout)
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def host_header(host: str, port: int, https: bool) -> str:
    """``Host`` as http.client writes it: the port only when it is not the scheme's default."""
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if https else 80) else f"{name}:{port}"


def build_request(method: str, target: str, host: str, headers: Mapping[str, str], *, body: bytes = b"",
                  keep_alive: bool = False) -> bytes:
    """The request (head, then ``body`` with its ``Content-Length``); ``keep_alive`` leaves out
    ``Connection: close``. ValueError for a method, target or header that would break it."""
    if not is_token(method):
        raise ValueError(f"method {method!r} is not an HTTP token")
    if _BAD_TARGET.search(target):
        raise ValueError(f"request target {target!r} has a space or control character")
    fields = {"host": ("Host", host), "accept-encoding": ("Accept-Encoding", "identity")}
    for name, value in headers.items():
        if not is_token(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if not is_one_line(value):
            raise ValueError(f"header {name} has a line break or NUL in its value")
        fields[name.lower()] = (name, value)
    if body or method in ("POST", "PUT", "PATCH"):
        fields["content-length"] = ("Content-Length", str(len(body)))
    if keep_alive:
        fields.pop("connection", None)
    else:
        fields["connection"] = ("Connection", "close")  # one exchange per connection
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.values())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + body


class _Reader:
    """Buffered reads from the socket, each after ``before_read()`` (which sets the timeout)."""

    def __init__(self, sock: socket.socket, before_read: Callable[[], None]) -> None:
        self._sock = sock
        self._before = before_read
        self.buf = b""
        self.eof = False

    def fill(self) -> bool:
        """Read once more; False at the server's close."""
        if self.eof:
            return False
        self._before()
        chunk = self._sock.recv(_RECV)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, limit: int = 4096) -> bytes:
        """One line without its end (for chunk sizes)."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 1:]
                return line.rstrip(b"\r")
            if len(self.buf) > limit:
                raise ProtocolError("chunk size line too long")
            if not self.fill():
                raise ProtocolError("connection closed in the middle of a chunked body")

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes (fewer only at the server's close)."""
        while len(self.buf) < n and self.fill():
            pass
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _head(reader: _Reader) -> tuple[int, dict[str, str], str]:
    while True:
        match = _HEAD_END.search(reader.buf)
        if match is not None:
            break
        if len(reader.buf) > MAX_HEAD_BYTES:
            raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES // 1024} KiB")
        if not reader.fill():
            if not reader.buf:
                raise ConnectionClosed("connection closed without a response")
            raise ProtocolError("connection closed in the middle of the response head")
    if match.start() > MAX_HEAD_BYTES:
        raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES // 1024} KiB")
    head = reader.buf[: match.start()].decode("latin-1")
    reader.buf = reader.buf[match.end():]
    lines = head.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _is_digits(parts[1]) or len(parts[1]) != 3:
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    last = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last:  # obsolete line folding: part of the header before
            headers[last] = f"{headers[last]} {line.strip()}".strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            continue  # not a header line: skipped, as http.client does
        last = name.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    return int(parts[1]), headers, parts[0]


def _chunked(reader: _Reader, max_body: int) -> tuple[bytes, bool]:
    """The body (at most ``max_body`` bytes) and whether it was read to its end, trailers too."""
    parts: list[bytes] = []
    size = 0
    while size < max_body:
        line = reader.line().split(b";", 1)[0].strip()
        if _HEX.fullmatch(line) is None:
            raise ProtocolError(f"bad chunk size {line[:20]!r}")
        length = int(line, 16)
        if length == 0:  # the last chunk; trailers up to the empty line are read and dropped
            try:
                while reader.line():
                    pass
            except ProtocolError:  # a server that closed without the final line end: body is whole
                return b"".join(parts), False
            return b"".join(parts), True
        want = min(length, max_body - size)
        data = reader.take(want)
        if len(data) < want:
            raise ProtocolError("connection closed in the middle of a chunk")
        parts.append(data)
        size += want
        if want < length:
            break  # max_body reached: the rest is not read (the connection is closed after)
        if reader.line():
            raise ProtocolError("chunk not followed by a line end")
    return b"".join(parts), False


def exchange(
    sock: socket.socket, request: bytes, *, head_only: bool, max_body: int, before_read: Callable[[], None],
) -> Response:
    """Send ``request`` (from :func:`build_request`) and read the response."""
    sock.sendall(request)
    reader = _Reader(sock, before_read)
    status, headers, version = _head(reader)
    while 100 <= status < 200 and status != 101:  # interim answers: the final one follows
        status, headers, version = _head(reader)
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if head_only or status < 200 or status in _NO_BODY:
        return Response(status, headers, b"", 0, keep and not reader.buf)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, complete = _chunked(reader, max_body)
        return Response(status, headers, body, len(body), keep and complete and not reader.buf)
    length_text = headers.get("content-length")
    if length_text is not None:
        values = {v.strip() for v in length_text.split(",")}  # the same length sent twice is fine
        if len(values) != 1 or not _is_digits(next(iter(values))):
            raise ProtocolError(f"bad Content-Length {length_text[:40]!r}")
        length = int(next(iter(values)))
        want = min(length, max_body)
        body = reader.take(want)
        if len(body) < want:
            raise ProtocolError(f"body cut short: {len(body)} of {length} bytes")
        return Response(status, headers, body, len(body), keep and want == length and not reader.buf)
    while len(reader.buf) < max_body and reader.fill():  # framed by the server's close
        pass
    body = reader.buf[:max_body]
    return Response(status, headers, body, len(body))
