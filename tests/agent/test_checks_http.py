"""``http`` checks against real HTTP and HTTPS servers on 127.0.1.1."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.checks.http import HttpCheck, codes_text
from agent.checks.registry import build_check
from agent.report import Status
from tests.agent.builders import http_check
from tests.agent.conftest import (
    LOOPBACK,
    CertFiles,
    HttpServer,
    closed_port,
    respond,
    server_tls_context,
)

pytestmark = pytest.mark.integration

BITRIX_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    "<p>Bitrix Environment</p></body></html>"
)
PORTAL = "<html><head><title>Bitrix24</title></head><body>Bitrix24 portal</body></html>"

Server = Callable[..., HttpServer]


def test_portal_answers_with_expected_status_and_body(http_server: Server) -> None:
    srv = http_server({"/": respond(200, PORTAL)})
    result = http_check("portal", srv.url("/"), expect_status=(200, 302), body_regex="Bitrix").run(5)
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith(f"HTTP 200 from {srv.url('/')} in ")
    perf = {p.label: p for p in result.perfdata}
    assert perf["time"].unit == "s" and 0 <= perf["time"].value < 5
    assert perf["size"].value == len(PORTAL)
    assert "tls_cert_days" not in perf


def test_bitrixenv_502_page_is_critical(http_server: Server) -> None:
    srv = http_server({"/": respond(502, BITRIX_502)})
    result = http_check("portal", srv.url("/"), expect_status=(200, 302), body_regex="Bitrix").run(5)
    assert result.status is Status.CRITICAL
    assert "HTTP 502" in result.summary and "expected 200, 302" in result.summary


def test_body_not_regex_catches_an_error_page_served_with_200(http_server: Server) -> None:
    srv = http_server({"/": respond(200, BITRIX_502)})
    check = http_check("portal", srv.url("/"), body_regex="Bitrix", body_not_regex="502 Bad Gateway")
    result = check.run(5)
    assert result.status is Status.CRITICAL
    assert "body matches '502 Bad Gateway'" in result.summary


def test_body_regex_must_match(http_server: Server) -> None:
    srv = http_server({"/": respond(200, "<html>Welcome to nginx!</html>")})
    result = http_check("portal", srv.url("/"), body_regex="Bitrix").run(5)
    assert result.status is Status.CRITICAL
    assert "body does not match 'Bitrix'" in result.summary


def test_redirects_are_followed_by_default(http_server: Server) -> None:
    srv = http_server(
        {
            "/": respond(302, "", {"Location": "/auth/"}),
            "/auth/": respond(301, "", {"Location": "/auth/login.php?x=1"}),
            "/auth/login.php": respond(200, PORTAL),
        }
    )
    result = http_check("portal", srv.url("/"), expect_status=(200,), body_regex="Bitrix24 portal").run(5)
    assert result.status is Status.OK, result.summary
    assert srv.url("/auth/login.php?x=1") in result.summary
    assert srv.requests == ["/", "/auth/", "/auth/login.php?x=1"]


def test_redirect_not_followed_when_disabled(http_server: Server) -> None:
    srv = http_server({"/": respond(302, "", {"Location": "/elsewhere"})})
    ok = http_check("portal", srv.url("/"), expect_status=(200, 302), follow_redirects=False).run(5)
    assert ok.status is Status.OK and "HTTP 302" in ok.summary
    bad = http_check("portal", srv.url("/"), expect_status=(200,), follow_redirects=False).run(5)
    assert bad.status is Status.CRITICAL
    assert srv.requests == ["/", "/"]


def test_redirect_loop_is_critical(http_server: Server) -> None:
    srv = http_server({"/loop": respond(302, "", {"Location": "/loop"})})
    result = http_check("portal", srv.url("/loop")).run(5)
    assert result.status is Status.CRITICAL
    assert "more than 10 redirects" in result.summary


def test_connection_refused_is_critical() -> None:
    url = f"http://{LOOPBACK}:{closed_port()}/"
    result = http_check("portal", url).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary == f"cannot connect to {url}: Connection refused"


def test_a_server_that_does_not_answer_is_critical_after_the_timeout(http_server: Server) -> None:
    release = threading.Event()

    def hang(handler: BaseHTTPRequestHandler) -> None:
        release.wait(30)

    srv = http_server({"/slow": hang})
    try:
        result = http_check("portal", srv.url("/slow")).run(0.5)
    finally:
        release.set()
    assert result.status is Status.CRITICAL
    assert result.summary == f"no answer from {srv.url('/slow')}: timed out after 0.5s"


def test_https_reports_certificate_days_left(
    http_server: Server, make_cert: Callable[..., CertFiles]
) -> None:
    cert = make_cert(90)
    srv = http_server({"/": respond(200, PORTAL)}, ssl_context=server_tls_context(cert))
    result = http_check("portal", srv.url("/"), ca_file=str(cert.cert)).run(5)
    assert result.status is Status.OK, result.summary
    days = {p.label: p for p in result.perfdata}["tls_cert_days"]
    assert 89 < days.value <= 90
    assert (days.warn, days.crit) == (21.0, 7.0)
    assert "TLS certificate expires in 90.0 days" in result.summary


@pytest.mark.parametrize(
    ("days", "status", "text"),
    [
        (10, Status.WARNING, "under 21"),
        (3, Status.CRITICAL, "under 7"),
    ],
)
def test_certificate_close_to_expiry(
    http_server: Server,
    make_cert: Callable[..., CertFiles],
    days: int,
    status: Status,
    text: str,
) -> None:
    cert = make_cert(days)
    srv = http_server({"/": respond(200, PORTAL)}, ssl_context=server_tls_context(cert))
    result = http_check("portal", srv.url("/"), ca_file=str(cert.cert), body_regex="Bitrix").run(5)
    assert result.status is status, result.summary
    assert f"expires in {days - 1}." in result.summary or f"expires in {days}.0" in result.summary
    assert text in result.summary


def test_custom_warning_days(http_server: Server, make_cert: Callable[..., CertFiles]) -> None:
    cert = make_cert(10)
    srv = http_server({"/": respond(200, PORTAL)}, ssl_context=server_tls_context(cert))
    check = http_check("portal", srv.url("/"), ca_file=str(cert.cert), tls_warning_days=5,
                       tls_critical_days=2)
    assert check.run(5).status is Status.OK


def test_untrusted_certificate_is_critical_by_default(
    http_server: Server,
    make_cert: Callable[..., CertFiles],
) -> None:
    cert = make_cert(90)
    srv = http_server({"/": respond(200, PORTAL)}, ssl_context=server_tls_context(cert))
    result = http_check("portal", srv.url("/")).run(5)  # no ca_file: the system CAs do not know it
    assert result.status is Status.CRITICAL
    assert "TLS certificate" in result.summary and "not accepted" in result.summary


def test_verify_tls_off_still_reports_days_left(
    http_server: Server,
    make_cert: Callable[..., CertFiles],
) -> None:
    cert = make_cert(3)
    srv = http_server({"/": respond(200, PORTAL)}, ssl_context=server_tls_context(cert))
    result = http_check("portal", srv.url("/"), verify_tls=False).run(5)
    assert result.status is Status.CRITICAL
    assert "under 7" in result.summary


def test_from_config_uses_every_option() -> None:
    from agent.config import parse

    cfg = parse(
        {
            "checks": [
                {
                    "name": "p",
                    "type": "http",
                    "url": "https://x/",
                    "method": "head",
                    "expect_status": [200],
                    "body_regex": "a",
                    "body_not_regex": "b",
                    "follow_redirects": False,
                    "verify_tls": False,
                    "ca_file": "/ca.pem",
                    "headers": {"Host": "portal"},
                    "tls_warning_days": 30,
                    "tls_critical_days": 10,
                }
            ]
        }
    )
    check = build_check(cfg.checks[0])
    assert isinstance(check, HttpCheck)
    spec = check.spec
    assert (spec.method, spec.expect_status, spec.body_regex, spec.body_not_regex) == (
        "HEAD",
        (200,),
        "a",
        "b",
    )
    assert (spec.follow_redirects, spec.verify_tls, spec.ca_file) == (False, False, "/ca.pem")
    assert dict(spec.headers) == {"Host": "portal"}
    assert (spec.tls_warning_days, spec.tls_critical_days) == (30, 10)


def test_codes_text() -> None:
    assert codes_text(tuple(range(200, 400))) == "200-399"
    assert codes_text((302, 200, 201)) == "200-201, 302"


def test_http10_server_that_closes_the_connection_is_read_to_the_end(tmp_path: Path) -> None:
    """Regression: an HTTP/1.0 answer (the connection closes after it) once gave "Bad file descriptor"."""
    (tmp_path / "index.html").write_text("<title>Bitrix24</title>" + "x" * 200_000)
    server = ThreadingHTTPServer(("127.0.1.9", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    assert SimpleHTTPRequestHandler.protocol_version == "HTTP/1.0"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.1.9:{server.server_address[1]}/"
        result = http_check("portal", url, body_regex="Bitrix24").run(5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status is Status.OK, result.summary
