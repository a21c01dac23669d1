"""agent/httpwire.py against whatever bytes a server may send, and against ``http.client``, the library
it stands in for.

Fuzz: random bytes, and well-formed responses cut and mutated (bytes flipped, dropped, doubled, odd
tokens inserted: "²" and fullwidth digits, NULs, line ends, framing headers), fed through
:func:`~agent.httpwire.exchange` on a socket pair, either give a :class:`Response` or raise
``ProtocolError`` (``ConnectionClosed`` is one) or ``OSError``: nothing else, so the http check
reports CRITICAL "bad HTTP answer" and never "check crashed".

Differential: well-formed responses (interim 100 answers, HTTP/1.0 and 1.1, repeated headers in
mixed case, folded header lines, bodies framed by Content-Length, chunked with extensions and
trailers, or by the server's close; HEAD, 204 and 304) read by both give the same status, header
values (folding whitespace aside: http.client keeps the line break) and body.
"""

from __future__ import annotations

import http.client
import io
import socket

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.httpwire import ProtocolError, Response, exchange

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
DIFF = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
MAX_BODY = 4096
REQUEST = b"GET / HTTP/1.1\r\nHost: portal\r\n\r\n"


def read(data: bytes, *, head_only: bool = False, max_body: int = MAX_BODY) -> Response:
    """``data`` as the server's whole answer (then its close), through ``exchange``."""
    client, server = socket.socketpair()
    try:
        server.sendall(data)
        server.shutdown(socket.SHUT_WR)
        return exchange(client, REQUEST, head_only=head_only, max_body=max_body,
                        before_read=lambda: client.settimeout(5))
    finally:
        client.close()
        server.close()


def read_or_refuse(data: bytes, head_only: bool) -> None:
    try:
        resp = read(data, head_only=head_only)
    except (ProtocolError, OSError):
        return
    assert isinstance(resp, Response)
    assert 0 <= resp.status <= 999
    assert resp.size == len(resp.body) <= MAX_BODY
    assert all(isinstance(k, str) and k == k.lower() and isinstance(v, str) for k, v in resp.headers.items())
    if head_only or resp.status in (204, 304):
        assert resp.body == b""


# -- well-formed responses ------------------------------------------------------------------------

NAMES = ["X-Dup", "x-dup", "X-DUP", "Server", "Content-Type", "Set-Cookie", "Location", "X-Other"]
VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, str, int, list[tuple[str, str]], bytes]:
    """(the bytes, the request method, the final status, the headers sent, the body as sent)."""
    method = draw(st.sampled_from(["GET", "HEAD"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 302, 304, 404, 500, 502, 503]))
    reason = draw(st.sampled_from(["OK", "Not Found", "Bad Gateway", "", "Some  Reason"]))
    headers: list[tuple[str, str]] = draw(st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8))
    body = draw(st.binary(max_size=600))
    no_body = method == "HEAD" or status in (204, 304)
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if (no_body and framing == "close") or status in (204, 304):
        framing = "length"  # (204 and 304 have no body; http.client fails on one said to be chunked)
    eol = draw(st.sampled_from(["\r\n", "\n"]))

    head = ""
    if draw(st.booleans()):
        head += f"HTTP/1.1 100 Continue{eol}{eol}"
    head += f"{version} {status} {reason}".rstrip() + eol
    lines = [f"{name}: {value}" for name, value in headers]
    if draw(st.booleans()):
        lines.append(f"X-Folded: first part{eol}\t second  part")
        headers.append(("X-Folded", "first part second part"))
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    head += eol.join(lines) + (eol if lines else "") + eol

    payload = b""
    if not no_body:
        if framing == "chunked":
            sizes = draw(st.lists(st.integers(1, 200), max_size=6))
            rest, chunks = body, []
            for size in sizes:
                if rest:
                    chunks.append(rest[:size])
                    rest = rest[size:]
            if rest:
                chunks.append(rest)
            for chunk in chunks:
                ext = draw(st.sampled_from(["", ";name=value", " ;x"]))
                size_text = draw(st.sampled_from([f"{len(chunk):x}", f"{len(chunk):X}", f"0{len(chunk):x}"]))
                payload += f"{size_text}{ext}\r\n".encode() + chunk + b"\r\n"
            payload += b"0\r\n"
            if draw(st.booleans()):
                payload += b"X-Trailer: yes\r\n"
            payload += b"\r\n"
        else:
            payload = body
    return head.encode("latin-1") + payload, method, status, headers, b"" if no_body else body


class _Wire:
    """What ``http.client.HTTPResponse`` reads from: a socket's ``makefile``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(self._data)


def _words(value: str | None) -> str | None:
    return None if value is None else " ".join(value.split())


@DIFF
@given(responses())
def test_well_formed_answers_read_as_http_client_reads_them(
    case: tuple[bytes, str, int, list[tuple[str, str]], bytes],
) -> None:
    data, method, status, headers, body = case
    ours = read(data, head_only=method == "HEAD", max_body=1 << 20)
    theirs = http.client.HTTPResponse(_Wire(data), method=method)  # type: ignore[arg-type]
    theirs.begin()
    their_body = theirs.read()
    assert ours.status == theirs.status == status
    for name in {n for n, _ in headers} | {"content-length", "transfer-encoding"}:
        assert _words(ours.header(name)) == _words(theirs.getheader(name)), name
    assert ours.body == their_body == body
    assert ours.size == len(body)


# -- fuzz -----------------------------------------------------------------------------------------

TOKENS = [
    b"HTTP/1.1 ", b"HTTP/1.0 ", b"200", b"100", b"204", b"304", b"\xb200", b"\xef\xbc\x92\x30\x30",
    b" OK", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b":", b" ", b"\t", b"\x00", b"Content-Length: ",
    b"Transfer-Encoding: chunked", b"Connection: close", b"5", b"\xb5", b"\xb2", b"\xb9", b"-1",
    b"10, 10", b"10, 11", b"ffffffffffffffffffff", b"0", b"a;b", b"\xff", b"x" * 50,
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(responses())[0])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "double", "cut"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "double":
            data[at:at] = data[at:at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=2048), st.booleans())
def test_random_bytes_give_a_response_or_a_protocol_error(data: bytes, head_only: bool) -> None:
    read_or_refuse(data, head_only)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(b"".join), st.booleans())
@example(b"HTTP/1.1 \xb200 OK\r\n\r\n", False)  # "²00": str.isdigit() but not int()
@example(b"HTTP/1.1 \xef\xbc\x92\x30\x30 OK\r\n\r\n", False)  # "２00" in UTF-8
@example(b"HTTP/1.1 200 OK\r\nContent-Length: \xb5\r\n\r\nhello", False)  # "µ"
@example(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhello", False)  # "²"
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\xb2\r\nab\r\n0\r\n\r\n", False)
def test_token_soup_gives_a_response_or_a_protocol_error(data: bytes, head_only: bool) -> None:
    read_or_refuse(data, head_only)


@FUZZ
@given(mutated(), st.booleans())
def test_mutated_answers_give_a_response_or_a_protocol_error(data: bytes, head_only: bool) -> None:
    read_or_refuse(data, head_only)
