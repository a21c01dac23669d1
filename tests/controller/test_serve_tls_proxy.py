"""``serve`` over HTTPS (``tls:``), and the agent's push to it directly and through a real HTTP proxy.

The certificate is made by openssl (self-signed, for the controller's address); the agent pins it
with ``ca_file``. The proxy is tinyproxy (Debian's tinyproxy-bin) on 127.0.2.31, with basic auth.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from agent.proxy import choose
from agent.push import HttpTransport, Outcome, Pusher
from agent.spool import Spool
from controller import inventory
from controller.config import load
from controller.store.db import Database
from tests.agent.pushsink import PushSink
from tests.controller.proc import ControllerProcess
from tests.controller.reports import body, make_report
from tests.tlsfiles import self_signed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTROLLER = "127.0.2.2"
PROXY_HOST = "127.0.2.31"
PROXY_USER, PROXY_PASSWORD = "boxagent", "ProxyPw-3nq8"


@dataclass
class TlsController:
    url: str
    ca_file: Path
    token: str
    host: str


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsController]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(tmp / "controller.crt", tmp / "controller.key", cn=CONTROLLER, ip=CONTROLLER)
    config = tmp / "controller.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp / "state"),
                "clients": [{"name": "acme", "hosts": [{"name": "tls-box"}]}],
                "tls": {"certificate": str(cert), "key": str(key)},
            }
        )
    )
    cfg = load(config)
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    token = inventory.add_host(db, "tls-box", "acme", cfg=cfg)
    db.dispose()
    controller = ControllerProcess(config, tmp, listen=f"{CONTROLLER}:0", ca_file=cert)
    try:
        url = controller.start(timeout=120)
        yield TlsController(url, cert, token, "tls-box")
    finally:
        controller.stop()


@dataclass
class Tinyproxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{PROXY_USER}:{PROXY_PASSWORD}@{PROXY_HOST}:{self.port}"


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    binary = shutil.which("tinyproxy")
    assert binary, "tinyproxy is not installed (tests/run.sh installs tinyproxy-bin)"
    tmp = tmp_path_factory.mktemp("tinyproxy")
    tmp.chmod(0o777)  # tinyproxy drops to nobody for its log
    port = free_port(PROXY_HOST)
    log = tmp / "tinyproxy.log"
    conf = tmp / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen {PROXY_HOST}\nTimeout 30\nMaxClients 20\nLogLevel Connect\n"
        f'LogFile "{log}"\nAllow 127.0.0.0/8\nBasicAuth {PROXY_USER} {PROXY_PASSWORD}\n'
    )
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "tinyproxy exited: " + (log.read_text() if log.exists() else "")
            try:
                socket.create_connection((PROXY_HOST, port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not listen within 30 s"
                time.sleep(0.2)
        yield Tinyproxy(port, log)
    finally:
        proc.terminate()
        proc.wait(10)


def report(host: str, seq: int) -> bytes:
    return body(make_report(host, seq, checks=2))


def test_serve_speaks_https_and_the_agent_pushes_with_the_certificate_pinned(
    tls_controller: TlsController,
) -> None:
    assert tls_controller.url.startswith("https://")
    pinned = HttpTransport(tls_controller.url, tls_controller.token, ca_file=tls_controller.ca_file)
    try:
        result = pinned.send(report(tls_controller.host, 1))
    finally:
        pinned.close()
    assert (result.outcome, result.reason, result.status) == (Outcome.DELIVERED, "ok", 200)

    unpinned = HttpTransport(tls_controller.url, tls_controller.token)  # the system CAs do not know it
    try:
        refused = unpinned.send(report(tls_controller.host, 2))
    finally:
        unpinned.close()
    assert (refused.outcome, refused.reason) == (Outcome.RETRY, "tls")
    assert "CERTIFICATE_VERIFY_FAILED" in refused.message

    plain = "http://" + tls_controller.url.removeprefix("https://")
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no HTTP answer
        httpx.get(plain + "/healthz", timeout=10)
    context = ssl.create_default_context(cafile=str(tls_controller.ca_file))
    assert httpx.get(tls_controller.url + "/healthz", verify=context, timeout=10).status_code == 200


def test_the_agent_pushes_through_a_proxy_from_https_proxy(
    tls_controller: TlsController,
    tinyproxy: Tinyproxy,
) -> None:
    proxy = choose(
        tls_controller.url, None, {"HTTPS_PROXY": tinyproxy.url, "NO_PROXY": "localhost,.internal"}
    )
    assert proxy is not None and proxy.host == PROXY_HOST
    transport = HttpTransport(
        tls_controller.url, tls_controller.token, ca_file=tls_controller.ca_file, proxy=proxy
    )
    try:
        results = [transport.send(report(tls_controller.host, seq)) for seq in (10, 11)]
    finally:
        transport.close()
    assert [(r.outcome, r.reason) for r in results] == [(Outcome.DELIVERED, "ok")] * 2
    assert transport.connections == 1  # the tunnel is kept alive between pushes
    port = tls_controller.url.rsplit(":", 1)[1]
    assert f"CONNECT {CONTROLLER}:{port}" in tinyproxy_log(tinyproxy)  # it really went through the proxy
    assert PROXY_PASSWORD not in transport.url and transport.url.endswith(
        f"(via proxy http://{PROXY_HOST}:{tinyproxy.port})"
    )

    no_proxy = choose(tls_controller.url, None, {"https_proxy": tinyproxy.url, "no_proxy": CONTROLLER})
    assert no_proxy is None  # NO_PROXY names the controller: straight there


def tinyproxy_log(proxy: Tinyproxy) -> str:
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = proxy.log.read_text(errors="replace") if proxy.log.exists() else ""
        if "CONNECT" in text:
            break
        time.sleep(0.2)
    return text


def test_wrong_proxy_credentials_are_a_retry_named_proxy(
    tls_controller: TlsController, tinyproxy: Tinyproxy
) -> None:
    wrong = choose(tls_controller.url, f"http://{PROXY_USER}:wrong@{PROXY_HOST}:{tinyproxy.port}", {})
    transport = HttpTransport(
        tls_controller.url, tls_controller.token, ca_file=tls_controller.ca_file, proxy=wrong
    )
    result = transport.send(report(tls_controller.host, 20))
    transport.close()
    assert (result.outcome, result.reason) == (Outcome.RETRY, "proxy")
    assert result.message == "proxy answered CONNECT with HTTP 401"  # tinyproxy's refusal (RFC 9110: 407)


def test_a_refused_proxy_keeps_the_report_spooled_until_the_proxy_is_back(
    tls_controller: TlsController,
    tinyproxy: Tinyproxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = Spool(tmp_path / "spool", 1024 * 1024)
    spool.append(30, report(tls_controller.host, 30))
    closed = free_port(PROXY_HOST)  # nothing listens there: connection refused
    down = choose(tls_controller.url, f"http://{PROXY_USER}:{PROXY_PASSWORD}@{PROXY_HOST}:{closed}", {})
    assert down is not None
    refused = HttpTransport(
        tls_controller.url, tls_controller.token, ca_file=tls_controller.ca_file, proxy=down
    )
    with caplog.at_level(logging.WARNING, logger="agent.push"):
        assert Pusher(spool, refused, url=refused.url).drain() is False
    assert spool.seqs() == [30]  # kept, not lost
    assert (
        "ConnectionRefusedError" in caplog.text and f"via proxy http://{PROXY_HOST}:{closed}" in caplog.text
    )
    assert PROXY_PASSWORD not in caplog.text

    back = choose(tls_controller.url, tinyproxy.url, {})
    working = HttpTransport(
        tls_controller.url, tls_controller.token, ca_file=tls_controller.ca_file, proxy=back
    )
    pusher = Pusher(spool, working, url=working.url)
    try:
        assert pusher.drain() is True
    finally:
        working.close()
    assert spool.seqs() == [] and pusher.stats().delivered_total == 1


def test_a_plain_http_controller_is_reached_through_http_proxy(tinyproxy: Tinyproxy) -> None:
    sink = PushSink("127.0.2.32", token="sink-token").start()  # a controller stand-in, plain HTTP
    try:
        proxy = choose(sink.url, None, {"HTTP_PROXY": tinyproxy.url, "HTTPS_PROXY": "http://unused:1"})
        transport = HttpTransport(sink.url, "sink-token", proxy=proxy)
        result = transport.send(report("plain-box", 1))
        transport.close()
        assert (result.outcome, result.reason) == (Outcome.DELIVERED, "ok")
        assert sink.seqs() == [1]
        [(_status, headers, _body)] = sink.requests
        assert "tinyproxy" in headers.get("Via", "")  # it came through the proxy
        assert "Proxy-Authorization" not in headers  # the proxy took it; it does not pass it on
    finally:
        sink.stop()
