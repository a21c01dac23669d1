"""The http check's HTTP/1.1 exchange against a scripted server on 127.0.1.12 that sends exactly
the bytes a test gives (framings and oddities real servers send), and records the request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from agent.httpwire import ProtocolError, build_request, exchange, host_header
from agent.report import Status
from tests.agent.builders import http_check

pytestmark = pytest.mark.integration

HOST = "127.0.1.12"


class Scripted:
    """Accepts one connection at a time, reads the request head, sends ``parts`` (with a short
    pause between them, so the client sees them in separate reads) and closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.parts: Sequence[bytes] = ()
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head)
                for part in self.parts:
                    conn.sendall(part)
                    time.sleep(0.01)

    def answer(self, *parts: bytes, method: str = "GET", max_body: int = 1 << 20,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes, int]:
        self.parts = parts
        sock = socket.create_connection((HOST, self.port), timeout=5)
        try:
            request = build_request(method, "/", host_header(HOST, self.port, False), headers or {})
            resp = exchange(sock, request, head_only=method == "HEAD", max_body=max_body,
                            before_read=lambda: sock.settimeout(5))
        finally:
            sock.close()
        return resp.status, dict(resp.headers), resp.body, resp.size

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()


def test_content_length_body_and_the_request_sent(server: Scripted) -> None:
    status, headers, body, size = server.answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: 5\r\n\r\n", b"Hello")
    assert (status, body, size) == (200, b"Hello", 5)
    assert headers["content-type"] == "text/html; charset=UTF-8"
    request = server.requests[-1].decode()
    assert request.startswith("GET / HTTP/1.1\r\n")
    assert f"Host: {HOST}:{server.port}\r\n" in request
    assert "Connection: close\r\n" in request and "Accept-Encoding: identity\r\n" in request


def test_chunked_body_in_pieces_with_extensions_and_trailers(server: Scripted) -> None:
    status, _, body, _ = server.answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6;ext=1\r\nBitri",
        b"x\r\n", b"3\r\n24 \r\n0\r\nX-Trailer: y\r\n\r\n",
    )
    assert (status, body) == (200, b"Bitrix24 ")


def test_body_framed_by_the_server_closing(server: Scripted) -> None:
    _, _, body, _ = server.answer(b"HTTP/1.0 200 OK\r\n\r\nfirst ", b"second")
    assert body == b"first second"


def test_interim_answers_are_skipped_and_lf_only_heads_are_read(server: Scripted) -> None:
    status, headers, body, _ = server.answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
        b"HTTP/1.1 302 Found\nLocation: /auth/\nContent-Length: 0\n\n",
    )
    assert (status, headers["location"], body) == (302, "/auth/", b"")


def test_repeated_and_folded_headers(server: Scripted) -> None:
    _, headers, _, _ = server.answer(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-A: 2\r\nX-Long: one\r\n  two\r\nContent-Length: 0\r\n\r\n")
    assert headers["x-a"] == "1, 2"
    assert headers["x-long"] == "one two"


def test_no_body_for_head_204_and_304(server: Scripted) -> None:
    assert server.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method="HEAD")[2] == b""
    assert server.answer(b"HTTP/1.1 204 No Content\r\n\r\n")[:3:2] == (204, b"")
    assert server.answer(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")[:3:2] == (304, b"")
    assert server.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


def test_reading_stops_at_max_body(server: Scripted) -> None:
    big = b"x" * 100_000
    assert server.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", big, max_body=1000)[3] == 1000
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n" + big + b"\r\n0\r\n\r\n"
    assert server.answer(chunked, max_body=1000)[2] == b"x" * 1000
    assert server.answer(b"HTTP/1.1 200 OK\r\n\r\n", big, max_body=1000)[3] == 1000


@pytest.mark.parametrize(("parts", "message"), [
    ((b"",), "connection closed without a response"),
    ((b"SSH-2.0-OpenSSH_9.2\r\n\r\n",), "not an HTTP/1.x status line"),
    ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",), "body cut short: 5 of 10 bytes"),
    ((b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",), "bad Content-Length"),
    ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), "bad chunk size"),
    ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",), "in the middle of a chunk"),
    ((b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",), "response head longer than 64 KiB"),
])
def test_answers_that_are_not_readable_http_say_why(
    server: Scripted, parts: tuple[bytes, ...], message: str,
) -> None:
    with pytest.raises(ProtocolError, match=message):
        server.answer(*parts)


def test_a_header_that_would_break_the_request_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        build_request("GET", "/", "portal", {"X-Evil": "a\r\nHost: other"})
    with pytest.raises(ValueError, match="not an HTTP token"):
        build_request("GET /x", "/", "portal", {})
    own_host = build_request("GET", "/", "x", {"host": "portal.example"}).lower()
    assert b"\r\nhost: portal.example\r\n" in own_host and b"host: x" not in own_host
    assert host_header("::1", 443, True) == "[::1]" and host_header("portal", 8443, True) == "portal:8443"


def test_the_check_reads_the_charset_and_reports_a_garbled_answer(server: Scripted) -> None:
    server.parts = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=windows-1251\r\n"
                    b"Content-Length: 9\r\n\r\n\xcf\xee\xf0\xf2\xe0\xeb Bx",)
    url = f"http://{HOST}:{server.port}/"
    ok = http_check("portal", url, body_regex="Портал Bx").run(5.0)
    assert ok.status is Status.OK, ok.summary
    server.parts = (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",)
    bad = http_check("portal", url).run(5.0)
    assert bad.status is Status.CRITICAL
    assert bad.summary == f"bad HTTP answer from {url}: body cut short: 5 of 10 bytes"


@pytest.mark.parametrize(("answer", "why"), [
    (b"HTTP/1.1 \xb200 OK\r\nContent-Length: 2\r\n\r\nok", "not an HTTP/1.x status line"),  # "²00"
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok", "bad Content-Length"),  # "²"
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\xb2\r\nok\r\n0\r\n\r\n", "bad chunk size"),
])
def test_digits_that_are_not_ascii_are_a_bad_answer_not_a_crash(
    server: Scripted, answer: bytes, why: str,
) -> None:
    """Regression: ``"²".isdigit()`` is true and ``int("²")`` raises ValueError, which made the check
    report "check crashed" instead of CRITICAL."""
    server.parts = (answer,)
    url = f"http://{HOST}:{server.port}/"
    result = http_check("portal", url).run(5.0)
    assert result.status is Status.CRITICAL
    assert result.summary.startswith(f"bad HTTP answer from {url}: {why}")


def test_a_charset_that_is_not_a_text_codec_falls_back_to_utf8(server: Scripted) -> None:
    """Regression: ``bytes.decode("idna", errors="replace")`` raises UnicodeError (not LookupError)."""
    server.parts = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=idna\r\n"
                    b"Content-Length: 7\r\n\r\nBitrix!",)
    result = http_check("portal", f"http://{HOST}:{server.port}/", body_regex="Bitrix").run(5.0)
    assert result.status is Status.OK, result.summary


def _reusable(server: Scripted, *parts: bytes) -> bool:
    server.parts = parts
    sock = socket.create_connection((HOST, server.port), timeout=5)
    try:
        request = build_request("POST", "/api/v1/reports", "c", {}, body=b"{}", keep_alive=True)
        answer = exchange(sock, request, head_only=False, max_body=64, before_read=lambda: sock.settimeout(5))
        return answer.reusable
    finally:
        sock.close()


def test_a_kept_alive_request_and_when_its_connection_may_carry_the_next(server: Scripted) -> None:
    assert _reusable(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    request = server.requests[-1]
    assert b"Connection" not in request and b"\r\nContent-Length: 2\r\n" in request
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nT: 1\r\n\r\n"
    assert _reusable(server, chunked)
    assert not _reusable(server, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert not _reusable(server, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert not _reusable(server, b"HTTP/1.1 200 OK\r\n\r\nok")  # framed by the close
    over_max_body = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    assert not _reusable(server, over_max_body)
    assert not _reusable(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")  # bytes after it
