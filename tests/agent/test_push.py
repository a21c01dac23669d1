"""Push: oldest first, delivered reports leave the spool, failures keep them, 4xx does not loop."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.push import Backoff, HttpTransport, Outcome, Pusher, PushResult, classify, parse_retry_after
from agent.spool import Spool
from tests.agent.pushsink import PushSink

HOST = "127.0.1.101"
TOKEN = "s3cret-token"


def report(seq: int) -> bytes:
    return f'{{"seq":{seq},"host":"portal-01"}}'.encode()


class ScriptedTransport:
    """Answers from a script, one result per send; records what it was sent."""

    def __init__(self, *answers: PushResult) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def send(self, body: bytes) -> PushResult:
        self.sent.append(body)
        return self.answers.pop(0) if self.answers else classify(200)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "spool", max_bytes=10**6)
    for seq in (1, 2, 3):
        s.append(seq, report(seq))
    return s


def test_classification_of_answers() -> None:
    assert classify(200).outcome is Outcome.DELIVERED
    assert classify(202).outcome is Outcome.DELIVERED
    assert (classify(409).outcome, classify(409).reason) == (Outcome.DELIVERED, "duplicate")
    assert (classify(401).outcome, classify(401).reason) == (Outcome.RETRY, "auth")
    assert (classify(429).outcome, classify(429).reason) == (Outcome.RETRY, "throttled")
    assert (classify(503).outcome, classify(503).reason) == (Outcome.RETRY, "http_5xx")
    assert (classify(400).outcome, classify(422).outcome, classify(413).outcome) == (Outcome.REJECTED,) * 3


def test_drain_sends_oldest_first_and_empties_the_spool(spool: Spool) -> None:
    transport = ScriptedTransport()
    pusher = Pusher(spool, transport)
    assert pusher.drain() is True
    assert transport.sent == [report(1), report(2), report(3)]
    assert spool.seqs() == []
    stats = pusher.stats()
    assert (stats.pushes_total, stats.delivered_total, stats.errors_total) == (3, 3, {})
    assert stats.last_success is not None


def test_failure_keeps_the_report_and_backs_off(spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    transport = ScriptedTransport(PushResult(Outcome.RETRY, "connection", None, "refused"))
    pusher = Pusher(spool, transport, clock=clock, rng=lambda: 1.0, backoff=Backoff(base=1.0, cap=8.0))
    with caplog.at_level(logging.WARNING):
        assert pusher.drain() is False
    assert spool.seqs() == [1, 2, 3]
    assert "3 report(s) kept in the spool" in caplog.text
    assert pusher.retry_in() == 1.0
    assert pusher.drain() is False and len(transport.sent) == 1  # still backing off: nothing sent
    clock.now = 1.0
    assert pusher.drain() is True
    assert transport.sent == [report(1), report(1), report(2), report(3)]
    assert pusher.stats().errors_total == {"connection": 1}


def test_backoff_doubles_is_capped_and_jittered() -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    assert [backoff.delay(n, lambda: 1.0) for n in (1, 2, 3, 7, 20)] == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert backoff.delay(3, lambda: 0.0) == 2.0  # jitter takes at most half off


def test_retry_after_is_read_as_seconds_or_a_date_and_capped() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=lambda: 1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412500.0) == 0.0  # past
    assert parse_retry_after("86400") == 600.0  # a day asked: the agent comes back after 10 min
    assert parse_retry_after("soon") is None and parse_retry_after("-5") is None
    assert classify(429, "", 120.0).retry_after == 120.0
    assert classify(503, "", 30.0).retry_after == 30.0
    assert classify(500, "", 30.0).retry_after is None  # only 429 and 503 carry it


def test_a_longer_retry_after_replaces_the_backoff_a_shorter_one_does_not(spool: Spool) -> None:
    clock = Clock()
    throttled = PushResult(Outcome.RETRY, "throttled", 429, "slow down", retry_after=45.0)
    pusher = Pusher(spool, ScriptedTransport(throttled), backoff=Backoff(base=1.0), clock=clock,
                    rng=lambda: 1.0)
    assert pusher.drain() is False and pusher.retry_in() == 45.0
    soon = PushResult(Outcome.RETRY, "http_5xx", 503, "restarting", retry_after=0.5)
    clock.now = 100.0
    pusher = Pusher(spool, ScriptedTransport(soon), backoff=Backoff(base=1.0), clock=clock, rng=lambda: 1.0)
    assert pusher.drain() is False and pusher.retry_in() == 1.0  # the backoff's own 1 s
    kept = spool.oldest()
    assert kept is not None and kept[0] == 1


def test_a_4xx_is_logged_loudly_moved_aside_and_the_next_report_goes(
    spool: Spool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = ScriptedTransport(classify(422, "checks[0].status: value is not a valid enumeration member"))
    pusher = Pusher(spool, transport)
    with caplog.at_level(logging.ERROR):
        assert pusher.drain() is True
    assert transport.sent == [report(1), report(2), report(3)]  # seq 1 sent once, not retried
    assert (spool.dir / "rejected" / "00000000000000000001.json").read_bytes() == report(1)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "HTTP 422" in errors[0] and "not a valid enumeration" in errors[0]
    assert pusher.stats().rejected_total == 1
    assert pusher.stats().errors_total == {"http_4xx": 1}


def test_409_duplicate_counts_as_delivered(spool: Spool) -> None:
    pusher = Pusher(spool, ScriptedTransport(classify(409, "already stored")))
    assert pusher.drain() is True
    assert spool.seqs() == []
    assert pusher.stats().delivered_total == 3


def test_auth_failure_keeps_reports_and_waits_long(spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    pusher = Pusher(spool, ScriptedTransport(classify(401, "bad token")), clock=clock, rng=lambda: 1.0)
    with caplog.at_level(logging.ERROR):
        assert pusher.drain() is False
    assert spool.seqs() == [1, 2, 3]
    assert pusher.retry_in() == 60.0
    assert "check the token file" in caplog.text


def test_stop_request_interrupts_a_long_drain(spool: Spool) -> None:
    transport = ScriptedTransport()
    assert Pusher(spool, transport).drain(should_stop=lambda: len(transport.sent) >= 2) is False
    assert spool.seqs() == [3]


# -- the real HTTP transport against real servers ----------------------------------------------


@pytest.fixture
def sink() -> Iterator[PushSink]:
    s = PushSink(HOST, token=TOKEN).start()
    yield s
    s.stop()


@pytest.mark.integration
def test_http_post_with_bearer_token_and_json(sink: PushSink) -> None:
    transport = HttpTransport(sink.url + "/", TOKEN, timeout=5)
    assert transport.send(report(7)).outcome is Outcome.DELIVERED
    status, headers, body = sink.requests[0]
    assert status == 200 and body == report(7)
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("boxkeeper-agent/")
    assert transport.send(report(7)).reason == "duplicate"


@pytest.mark.integration
def test_http_answers_are_classified(sink: PushSink) -> None:
    sink.status = 503
    transport = HttpTransport(sink.url, TOKEN, timeout=5)
    assert transport.send(report(1)).reason == "http_5xx"
    sink.status = 400
    result = transport.send(report(1))
    assert (result.outcome, result.status, result.message) == (Outcome.REJECTED, 400, "forced answer 400")
    assert HttpTransport(sink.url, "wrong", timeout=5).send(report(1)).reason == "auth"


@pytest.mark.integration
def test_connection_refused_and_timeout_are_retried() -> None:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    refused = HttpTransport(f"http://{HOST}:{port}", TOKEN, timeout=2).send(report(1))
    assert (refused.outcome, refused.reason) == (Outcome.RETRY, "connection")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind((HOST, 0))
        silent.listen(5)
        result = HttpTransport(f"http://{HOST}:{silent.getsockname()[1]}", TOKEN, timeout=0.5).send(report(1))
    assert (result.outcome, result.reason) == (Outcome.RETRY, "timeout")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "boxkeeper-test-controller")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.integration
def test_tls_is_verified_by_default_and_a_custom_ca_can_be_given(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://{HOST}:{server.server_address[1]}"
        untrusted = HttpTransport(url, TOKEN, timeout=5).send(report(1))
        assert (untrusted.outcome, untrusted.reason) == (Outcome.RETRY, "tls")
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message
        assert HttpTransport(url, TOKEN, timeout=5, ca_file=cert).send(report(1)).outcome is Outcome.DELIVERED
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.integration
def test_pusher_against_a_sink_that_goes_down_and_comes_back(tmp_path: Path, sink: PushSink) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    clock = Clock()
    pusher = Pusher(spool, HttpTransport(sink.url, TOKEN, timeout=2), clock=clock)
    spool.append(1, report(1))
    assert pusher.drain() is True
    sink.stop()
    for seq in (2, 3, 4):
        spool.append(seq, report(seq))
        clock.now += 100
        assert pusher.drain() is False
    sink.start()
    clock.now += 100
    assert pusher.drain() is True
    assert sink.seqs() == [1, 2, 3, 4]
    assert pusher.stats().errors_total == {"connection": 3}


def test_credentials_in_the_controller_url_never_reach_a_log_line() -> None:
    from agent.push import public_url

    assert public_url("https://agent:hunter2@boxkeeper.example.org:8443/x") == "https://boxkeeper.example.org:8443/x"
    assert public_url("https://boxkeeper.example.org") == "https://boxkeeper.example.org"


class _KeepAliveServer:
    """HTTP/1.1 on 127.0.1.x that answers 200 and keeps the connection open, unless told to close
    it right after the next answer (as a controller's idle timeout or restart does)."""

    def __init__(self) -> None:
        outer = self
        self.connections: set[tuple[str, int]] = set()
        self.bodies: list[bytes] = []
        self.close_after_answer = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                outer.connections.add(self.client_address)
                outer.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                data = b'{"status": "stored"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if outer.close_after_answer:
                    self.close_connection = True  # closed after the answer, without saying so

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.integration
def test_pushes_share_one_kept_alive_connection_and_survive_its_closing() -> None:
    server = _KeepAliveServer()
    try:
        transport = HttpTransport(server.url, TOKEN, timeout=5)
        for seq in (1, 2, 3):
            assert transport.send(report(seq)).outcome is Outcome.DELIVERED
        assert len(server.connections) == 1 and transport.connections == 1  # one TCP connection
        server.close_after_answer = True
        assert transport.send(report(4)).outcome is Outcome.DELIVERED
        server.close_after_answer = False
        # The kept connection is gone now: the push goes out once more on a new connection.
        assert transport.send(report(5)).outcome is Outcome.DELIVERED
        assert transport.send(report(6)).outcome is Outcome.DELIVERED
        assert transport.connections == 2 and len(server.connections) == 2
        assert server.bodies == [report(seq) for seq in (1, 2, 3, 4, 5, 6)]  # each exactly once here
        transport.close()
    finally:
        server.stop()
