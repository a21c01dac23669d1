"""Serving /metrics cheaply: the Prometheus text format and a small HTTP server for it.

The agent is scraped every 15-60 s by Prometheus and must cost less CPU per scrape than
node_exporter. prometheus-client's own path (``start_http_server``: a WSGI server through
wsgiref, a new thread per request, e-mail header parsing, and ``generate_latest`` validating
and escaping every name of every sample) cost about 2.7 ms of CPU per scrape of the agent's
~150 samples; this module does the same job for about a third of that.

:func:`render_text` writes the text exposition format 0.0.4 of a prometheus-client registry,
byte for byte what ``prometheus_client.generate_latest`` writes for metric and label names that
are valid classic Prometheus names (all of the agent's are); a registry with any other name is
handed to ``generate_latest`` unchanged.

:class:`MetricsServer` answers ``GET``/``HEAD`` on ``/metrics`` (and ``/``) with that text, 404
elsewhere, 405 for other methods; connections handled on a few reused threads (a slow client
holds up the next scrape by ``SPILL_SECONDS`` at most), ``Connection: close``, a request head of
at most 64 KiB read within ``CLIENT_TIMEOUT`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from agent.workers import WorkerPool

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLIENT_TIMEOUT = 10.0
#: Threads answering scrapes at most (a client slower than CLIENT_TIMEOUT is dropped).
HANDLER_THREADS = 4
#: How long a scrape waits behind a slow one before another thread takes it.
SPILL_SECONDS = 0.05
#: The accept loop's select timeout: shutdown() wakes it, so it need not poll (each wake-up of
#: an idle thread cost ~0.1 ms of CPU on the benchmark VM; socketserver's default polls twice a
#: second).
IDLE_POLL_SECONDS = 3600.0
MAX_HEAD_BYTES = 64 * 1024
_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram",
          "unknown": "untyped"}
_SUFFIX = {"counter": "_total", "info": "_info"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")


class _NotLegacy(Exception):
    """A name that needs prometheus-client's escaping: fall back to generate_latest."""


def _value(v: float) -> str:
    """A sample value as the text format writes it: what ``prometheus_client.utils.floatToGoString``
    returns (Go's formatting; not a public API, so not imported: a test holds the two together),
    without function calls for the common finite floats."""
    if type(v) is not float or not -1e300 < v < 1e300:
        v = float(v)
        if v != v:
            return "NaN"
        if v in (math.inf, -math.inf):
            return "+Inf" if v > 0 else "-Inf"
    s = repr(v)
    if v > 0:
        dot = s.find(".")
        if dot > 6:  # Go switches to exponents sooner than Python
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape_value(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


class SeriesFamily(Metric):
    """A gauge or counter family kept as (label values, value) pairs.

    For collectors that build the same families at every scrape: :class:`TextRenderer` writes the
    pairs straight out (no prometheus-client ``Sample`` and labels dict per series, about half the
    CPU of a ``GaugeMetricFamily``); anything else reading ``samples`` (``generate_latest``, tests)
    gets the usual ``Sample`` values. A counter's name may end in ``_total`` (stripped from the
    family name, as ``CounterMetricFamily`` does).
    """

    def __init__(self, name: str, documentation: str, typ: str, labels: Sequence[str] = ()) -> None:
        if typ not in ("gauge", "counter"):
            raise ValueError(f"SeriesFamily is for gauges and counters, not {typ!r}")
        if typ == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        super().__init__(name, documentation, typ)
        self.label_names = tuple(labels)
        self.sample_name = name + "_total" if typ == "counter" else name
        self.pairs: list[tuple[tuple[str, ...], float]] = []

    def add(self, values: tuple[str, ...], value: float) -> None:
        """One series: ``values`` in the order of the family's label names (as many as there are)."""
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {self.label_names}")
        self.pairs.append((values, value))

    @property
    def samples(self) -> list[Sample]:
        names, name = self.label_names, self.sample_name
        return [Sample(name, dict(zip(names, values)), value) for values, value in self.pairs]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:  # Metric.__init__ sets [] (the pairs are kept)
        pass


class TextRenderer:
    """Renders a registry; remembers the formatted ``name{labels}`` of the series and the HELP/TYPE
    lines of the families it has seen (at most ``max_series`` of each, then it starts over), since
    they stay the same between scrapes."""

    def __init__(self, registry: Collector, *, max_series: int = 20_000) -> None:
        self._registry = registry
        self._max = max_series
        self._valid: dict[str, bool] = {}
        self._series: dict[tuple[Any, ...], str] = {}  # (name, label items) or a SeriesFamily's key
        self._headers: dict[tuple[str, str, str], tuple[str, str]] = {}  # HELP/TYPE lines, doc

    def render(self) -> bytes:
        """The text exposition, as ``generate_latest(registry)`` would write it."""
        try:
            return self._render()
        except _NotLegacy:
            return bytes(generate_latest(self._registry))

    def _legacy(self, name: str) -> str:
        ok = self._valid.get(name)
        if ok is None:
            ok = self._valid[name] = _LEGACY_NAME.match(name) is not None
        if not ok:
            raise _NotLegacy(name)
        return name

    def _render(self) -> bytes:
        if len(self._series) > self._max or len(self._headers) > self._max:
            self._series.clear()
            self._headers.clear()
        series, legacy = self._series, self._legacy
        out: list[str] = []
        headers = self._headers
        for metric in self._registry.collect():
            family, mtype = metric.name, metric.type
            hkey = (family, mtype, metric.documentation)
            header = headers.get(hkey)
            if header is None:  # the same families come back every scrape: format each once
                mname = legacy(family + _SUFFIX.get(mtype, ""))
                doc = _help(metric.documentation)
                text = f"# HELP {mname} {doc}\n# TYPE {mname} {_TYPES.get(mtype, mtype)}\n"
                header = headers[hkey] = (text, doc)
            out.append(header[0])
            if type(metric) is SeriesFamily:
                name, names = metric.sample_name, metric.label_names
                for values, value in metric.pairs:
                    skey = (name, names, values)
                    prefix = series.get(skey)
                    if prefix is None:
                        labels = dict(zip(names, values))
                        prefix = series[skey] = _series_text(name, labels, legacy)
                    out.append(f"{prefix} {_value(value)}\n")
                continue
            doc = header[1]
            extra: dict[str, list[str]] = {}
            for sample in metric.samples:
                name, labels = sample.name, sample.labels
                key = (name, tuple(labels.items()))
                prefix = series.get(key)
                if prefix is None:
                    prefix = series[key] = _series_text(name, labels, legacy)
                line = f"{prefix} {_value(sample.value)}\n"
                if sample.timestamp is not None:
                    line = f"{line[:-1]} {int(float(sample.timestamp) * 1000):d}\n"
                if name.startswith(family) and name[len(family):] in _OM_SUFFIXES:
                    extra.setdefault(name[len(family):], []).append(line)  # OpenMetrics-only: last
                else:
                    out.append(line)
            for suffix, lines in sorted(extra.items()):
                name = legacy(family + suffix)
                out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
                out.extend(lines)
        return "".join(out).encode("utf-8")


def render_text(registry: Collector) -> bytes:
    """The text exposition of ``registry``, as ``generate_latest(registry)`` would write it."""
    return TextRenderer(registry).render()


def _series_text(name: str, labels: dict[str, str], legacy: Callable[[str], str]) -> str:
    legacy(name)
    if not labels:
        return name
    pairs = ",".join(f'{legacy(k)}="{_escape_value(labels[k])}"' for k in sorted(labels))
    return f"{name}{{{pairs}}}"


# -- the HTTP server -----------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    timeout = CLIENT_TIMEOUT
    server: MetricsServer

    def handle(self) -> None:
        try:
            request = self.rfile.readline(MAX_HEAD_BYTES + 1)
            size = len(request)
            while True:  # the headers: nothing in them changes the answer
                line = self.rfile.readline(MAX_HEAD_BYTES + 1)
                size += len(line)
                if line in (b"\r\n", b"\n", b"") or size > MAX_HEAD_BYTES:
                    break
        except OSError:  # timed out or reset: nothing to answer
            return
        parts = request.split()
        if len(parts) < 2 or size > MAX_HEAD_BYTES:
            self._answer(400, b"Bad Request", b"bad request\n")
            return
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            self._answer(405, b"Method Not Allowed", b"only GET and HEAD\n", b"Allow: GET, HEAD\r\n")
            return
        path = target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            self._answer(404, b"Not Found", b"not found: try /metrics\n")
            return
        try:
            body = self.server.render()
        except Exception:
            log.exception("rendering /metrics failed")
            self._answer(500, b"Internal Server Error", b"rendering the metrics failed\n")
            return
        self._answer(200, b"OK", body, content_type=CONTENT_TYPE.encode(), head=method == b"HEAD")

    def _answer(self, code: int, reason: bytes, body: bytes, extra: bytes = b"", *,
                content_type: bytes = b"text/plain; charset=utf-8", head: bool = False) -> None:
        header = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
                  % (code, reason, content_type, len(body), extra))
        with contextlib.suppress(OSError):  # the client went away
            self.wfile.write(header if head else header + body)


class MetricsServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serves a registry's text exposition; ``server_port`` is the bound port (0 picks one).

    Connections are handled on a :class:`~agent.workers.WorkerPool` of at most
    ``HANDLER_THREADS`` reused threads (a thread started per scrape cost more than the HTTP
    exchange); a connection waiting ``SPILL_SECONDS`` behind a slow client gets another thread.
    """

    allow_reuse_address = True

    def __init__(self, registry: Collector, host: str, port: int) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.address_family = family
        self._renderer = TextRenderer(registry)
        self._render_lock = threading.Lock()
        self._pool = WorkerPool(HANDLER_THREADS, name="metrics-handler", spill_after=SPILL_SECONDS)
        super().__init__((str(sockaddr[0]), port), _Handler)

    def serve_forever(self, poll_interval: float = IDLE_POLL_SECONDS) -> None:
        """Accept connections until :meth:`shutdown` (which wakes the loop: no polling meanwhile)."""
        super().serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it to return. The loop sleeps in ``select`` for
        up to ``IDLE_POLL_SECONDS``; a connection to our own port wakes it at once."""
        stopper = threading.Thread(target=super().shutdown, name="metrics-shutdown", daemon=True)
        stopper.start()  # sets the shutdown flag, then waits for the loop to end
        while stopper.is_alive():
            with contextlib.suppress(OSError):
                host = str(self.server_address[0])
                socket.create_connection((host, self.server_port), timeout=1).close()
            stopper.join(0.05)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(lambda: self.process_request_thread(request, client_address), "scrape")

    def server_close(self) -> None:
        super().server_close()
        self._pool.close()

    @property
    def server_port(self) -> int:
        return int(self.server_address[1])

    def render(self) -> bytes:
        with self._render_lock:  # concurrent scrapes: one collection at a time
            return self._renderer.render()
