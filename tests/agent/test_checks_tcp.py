"""``tcp`` checks against real listening and closed ports on 127.0.1.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from agent.checks.registry import build_check
from agent.checks.tcp import TcpCheck, TcpSpec
from agent.config import parse
from agent.configtypes import Address
from agent.report import Status
from tests.agent.conftest import LOOPBACK, closed_port

pytestmark = pytest.mark.integration


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen(16)
    yield sock
    sock.close()


def test_open_port_is_ok_with_connect_time(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = TcpCheck(TcpSpec(name="db", address=Address((LOOPBACK, port)))).run(5)
    assert result.status is Status.OK
    assert result.summary.startswith(f"connected to {LOOPBACK}:{port} in ")
    (time_perf,) = result.perfdata
    assert time_perf.label == "time" and time_perf.unit == "s" and time_perf.value >= 0


def test_closed_port_is_critical() -> None:
    port = closed_port()
    result = TcpCheck(TcpSpec(name="db", address=Address((LOOPBACK, port)))).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary == f"cannot connect to {LOOPBACK}:{port}: Connection refused"


def test_unresolvable_host_is_critical() -> None:
    result = TcpCheck(TcpSpec(name="db", address=Address(("no-such-host.invalid", 3306)))).run(5)
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("cannot connect to no-such-host.invalid:3306")


def test_from_config(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    cfg = parse({"checks": [{"name": "db", "type": "tcp", "address": f"{LOOPBACK}:{port}"}]}).checks[0]
    check = build_check(cfg)
    assert isinstance(check, TcpCheck)
    assert (check.spec.address.host, check.spec.address.port) == (LOOPBACK, port)
    assert check.run(5).status is Status.OK
