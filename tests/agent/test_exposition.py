"""/metrics text and server: byte-for-byte what prometheus-client writes, answered over real HTTP."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from importlib.metadata import version

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agent.exposition import HANDLER_THREADS, MetricsServer, SeriesFamily, TextRenderer, _value, render_text
from agent.metrics import serve, shutdown
from tests.agent.conftest import voluntary_switches

HOST = "127.0.1.112"  # the agent tests' share of 127.0.1.0/24


def mixed_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("bk_requests", "Requests\nwith a \\ newline.", ["path"], registry=registry).labels(
        path='/a "quoted" \\ path\n'
    ).inc(3)
    gauge = Gauge("bk_sizes_bytes", "Sizes.", ["mountpoint", "fstype"], registry=registry)
    for i, value in enumerate((0.0, -1.5, 1e6, 123456789.0, 2.5e-9, float("inf"), float("nan"))):
        gauge.labels(mountpoint=f"/m{i}", fstype="ext4").set(value)
    Histogram("bk_latency_seconds", "Latency.", registry=registry).observe(0.3)
    Info("bk_build", "Build info.", registry=registry).info({"version": "1.0"})
    return registry


def test_text_is_byte_for_byte_what_prometheus_client_writes() -> None:
    registry = mixed_registry()
    renderer = TextRenderer(registry)
    assert renderer.render() == generate_latest(registry)
    assert renderer.render() == generate_latest(registry)  # again, from the remembered series
    assert render_text(registry) == generate_latest(registry)


@settings(max_examples=500, deadline=None, database=None)
@given(st.one_of(st.floats(), st.integers(-(10**20), 10**20)))
@example(1e300)
@example(123456789.0)
@example(1234567890123456.0)
@example(float("-inf"))
def test_sample_values_are_formatted_as_prometheus_client_formats_them(value: float) -> None:
    """agent/exposition.py formats values itself (prometheus_client.utils is not public API)."""
    assert _value(value) == floatToGoString(value)  # type: ignore[no-untyped-call]


def test_prometheus_client_is_still_a_0_x_release() -> None:
    """SeriesFamily subclasses prometheus-client's Metric and replaces its ``samples`` attribute (set
    by Metric.__init__); TextRenderer reads Metric's name, type, documentation and samples. Those are
    stable within 0.x: pyproject pins prometheus-client<1. On a new major, check SeriesFamily and
    the byte-for-byte tests above, then move the pin and this test."""
    installed = version("prometheus-client")
    assert int(installed.split(".")[0]) == 0, f"prometheus-client {installed}: see this test's docstring"


def test_series_families_render_as_prometheus_client_would_write_them() -> None:
    class Pairs(Collector):
        def collect(self) -> Iterator[SeriesFamily]:
            sizes = SeriesFamily("bk_fs_size_bytes", "Sizes\nper mount.", "gauge", ["mountpoint", "fstype"])
            sizes.add(("/", "ext4"), 1e12)
            sizes.add(('/mnt/a "b" \\ c\n', "nfs"), 2.5)
            reads = SeriesFamily("bk_reads_total", "Reads.", "counter", ["device"])
            reads.add(("vda",), 123456789.0)
            up = SeriesFamily("bk_up", "Up.", "gauge")
            up.add((), 1.0)
            yield from (sizes, reads, up)

    registry = CollectorRegistry()
    registry.register(Pairs())
    renderer = TextRenderer(registry)
    text = renderer.render()
    assert text == generate_latest(registry)  # generate_latest reads the usual Samples
    assert renderer.render() == text  # again, from the remembered series
    assert b'bk_fs_size_bytes{fstype="nfs",mountpoint="/mnt/a \\"b\\" \\\\ c\\n"} 2.5\n' in text
    assert b"# TYPE bk_reads_total counter\nbk_reads_total{device=\"vda\"} 1.23456789e+08\n" in text


def test_names_outside_the_classic_charset_fall_back_to_prometheus_client() -> None:
    class Odd(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            family = GaugeMetricFamily("bk.dotted", "A UTF-8 era name.", labels=["a"])
            family.add_metric(["x"], 1.0)
            yield family

    registry = CollectorRegistry()
    registry.register(Odd())
    assert render_text(registry) == generate_latest(registry)


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    srv, thread = serve(mixed_registry(), HOST, 0)
    yield srv
    shutdown(srv, thread)


def request(server: MetricsServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, server.server_port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_server_answers_get_and_head_on_metrics_only(server: MetricsServer) -> None:
    status, headers, body = request(server, "GET", "/metrics?x=1")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["content-length"]) == len(body) and b"bk_requests_total{" in body
    status, headers, body = request(server, "HEAD", "/metrics")
    assert (status, body) == (200, b"") and int(headers["content-length"]) > 0
    assert request(server, "GET", "/other")[0] == 404
    status, headers, _ = request(server, "POST", "/metrics")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_clients_that_send_nothing_do_not_hold_up_scrapes(server: MetricsServer) -> None:
    # silent clients hold a handler thread each until CLIENT_TIMEOUT (10 s); the scrapes get the last
    silent = [socket.create_connection((HOST, server.server_port)) for _ in range(HANDLER_THREADS - 1)]
    try:
        for _ in range(3):
            status, _, body = request(server, "GET", "/metrics")
            assert status == 200 and b"bk_requests_total{" in body
    finally:
        for sock in silent:
            sock.close()


def test_the_idle_accept_loop_does_not_poll_and_shutdown_still_stops_it() -> None:
    srv, thread = serve(mixed_registry(), HOST, 0)
    try:
        assert request(srv, "GET", "/metrics")[0] == 200
        time.sleep(0.3)  # the loop now sleeps in select() until a connection (or the stop) comes
        before = voluntary_switches(thread)
        time.sleep(1.2)  # socketserver's default would wake the loop twice in this time
        assert voluntary_switches(thread) == before, "the idle accept loop woke up"
    finally:
        shutdown(srv, thread)  # (without the wake-up it would sleep out the hour-long select)
    assert not thread.is_alive()
