"""The controller's own probes against real sockets on 127.0.3.x."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from controller.detection.probes import Prober, ProbeTarget, split_address
from tests.controller.alerting.support import FakeClock, free_port, recorder, self_signed, tcp_listener

pytestmark = pytest.mark.integration


def test_tcp_probe_sees_a_listener_and_a_closed_port() -> None:
    prober = Prober(timeout=2.0, clock=FakeClock())
    try:
        with tcp_listener("127.0.3.2") as address:
            assert prober.run_one(ProbeTarget("ssh", address)).ok
        closed = f"127.0.3.2:{free_port('127.0.3.2')}"
        result = prober.run_one(ProbeTarget("ssh", closed))
        assert not result.ok and closed in result.detail
    finally:
        prober.close()


def test_http_probe_counts_any_answer_as_reachable() -> None:
    prober = Prober(timeout=2.0, clock=FakeClock())
    try:
        with recorder("127.0.3.3", status=502) as portal:
            result = prober.run_one(ProbeTarget("portal", portal.url + "/"))
            assert result.ok and result.detail.startswith("HTTP 502")
        result = prober.run_one(ProbeTarget("portal", f"http://127.0.3.3:{free_port('127.0.3.3')}/"))
        assert not result.ok
    finally:
        prober.close()


def test_results_are_cached_for_the_probe_interval() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def tcp(host: str, port: int, timeout: float) -> None:
        calls.append(f"{host}:{port}")

    prober = Prober(timeout=1.0, interval=15.0, clock=clock, tcp=tcp)
    try:
        wanted = {"portal-01": (ProbeTarget("ssh", "127.0.3.4:22"),)}
        first = prober.probe(wanted, clock())["portal-01"]
        assert first is not None and first[0].ok
        clock.advance(10)
        prober.probe(wanted, clock())
        assert calls == ["127.0.3.4:22"]
        clock.advance(10)
        prober.probe(wanted, clock())
        assert calls == ["127.0.3.4:22", "127.0.3.4:22"]
    finally:
        prober.close()


def test_split_address() -> None:
    assert split_address("203.0.113.5:2222") == ("203.0.113.5", 2222)
    assert split_address("[2001:db8::1]:22") == ("2001:db8::1", 22)
    assert split_address("box.example") == ("box.example", 22)


def test_https_portal_with_an_untrusted_certificate_is_still_reachable(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "127.0.3.5")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    prober = Prober(timeout=2.0, clock=FakeClock())
    with recorder("127.0.3.5") as portal:
        portal.socket = context.wrap_socket(portal.socket, server_side=True)
        try:
            result = prober.run_one(ProbeTarget("portal", portal.url.replace("http:", "https:") + "/"))
        finally:
            prober.close()
    assert result.ok and "CERTIFICATE_VERIFY_FAILED" in result.detail
