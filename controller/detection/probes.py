"""The controller's own probes of a host: TCP connect to its SSH address, HTTP GET of its portal URL.

A probe answers "is the box reachable from here?", not "is the portal healthy?": any HTTP answer
(even a 502 from nginx) proves the box is up; only a failed connection or a timeout fails it.
Probes run in a bounded thread pool; a pass waits for them at most ``timeout`` (+ a little), and
results are cached for ``interval`` so a silent host is not hammered every two seconds.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ProbeTarget:
    kind: str  # "ssh" (TCP connect) or "portal" (HTTP GET)
    target: str  # "203.0.113.5:22" or "https://portal.acme.example/"


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    target: str
    ok: bool
    detail: str
    checked_at: float


TcpConnect = Callable[[str, int, float], None]
HttpGet = Callable[[str, float, bool], int]


def tcp_connect(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection (raises OSError on failure)."""
    with socket.create_connection((host, port), timeout=timeout):
        pass


def http_get(url: str, timeout: float, verify: bool) -> int:
    """GET the URL without following redirects; the HTTP status (raises httpx.HTTPError on failure)."""
    with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client:
        return client.get(url, headers={"User-Agent": "boxkeeper-probe"}).status_code


def _tls_answered(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def split_address(address: str, default_port: int = 22) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` → (host, port)."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


class Prober:
    """Runs probes in a bounded pool and caches their results per (host, target)."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        interval: float = 15.0,
        workers: int = 8,
        verify_tls: bool = True,
        clock: Callable[[], float] = time.time,
        tcp: TcpConnect = tcp_connect,
        http: HttpGet = http_get,
    ) -> None:
        self.timeout = timeout
        self.interval = interval
        self.verify_tls = verify_tls
        self._clock = clock
        self._tcp = tcp
        self._http = http
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="boxkeeper-probe")
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ProbeTarget], ProbeResult] = {}
        self._inflight: dict[tuple[str, ProbeTarget], Future[ProbeResult]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_one(self, target: ProbeTarget) -> ProbeResult:
        """One probe, synchronously; never raises."""
        try:
            if target.kind == "ssh":
                host, port = split_address(target.target)
                self._tcp(host, port, self.timeout)
                detail = f"TCP {target.target} open"
            else:
                status = self._http(target.target, self.timeout, self.verify_tls)
                detail = f"HTTP {status} from {target.target}"
            return ProbeResult(target.kind, target.target, True, detail, self._clock())
        except (OSError, httpx.HTTPError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            if _tls_answered(exc):  # a TLS handshake (even a failed one) means the box answered
                detail = f"TLS error from {target.target}: {reason}"
                return ProbeResult(target.kind, target.target, True, detail, self._clock())
            return ProbeResult(target.kind, target.target, False, f"{target.target}: {reason}", self._clock())

    def probe(
        self, wanted: dict[str, tuple[ProbeTarget, ...]], now: float
    ) -> dict[str, tuple[ProbeResult, ...] | None]:
        """Fresh results for every host in ``wanted``; None for a host whose probes are still running.

        Waits at most ``timeout`` + 1 s for probes started or running now; never longer.
        """
        pending: list[Future[ProbeResult]] = []
        with self._lock:
            for host, targets in wanted.items():
                for target in targets:
                    key = (host, target)
                    cached = self._cache.get(key)
                    if cached is not None and now - cached.checked_at < self.interval:
                        continue
                    future = self._inflight.get(key)
                    if future is None:
                        future = self._pool.submit(self.run_one, target)
                        self._inflight[key] = future
                    pending.append(future)
        if pending:
            wait(pending, timeout=self.timeout + 1.0)
        answers: dict[str, tuple[ProbeResult, ...] | None] = {}
        with self._lock:
            for key, future in list(self._inflight.items()):
                if future.done():
                    del self._inflight[key]
                    self._cache[key] = future.result()
            for host, targets in wanted.items():
                results = [self._cache.get((host, t)) for t in targets]
                # A result older than two intervals says nothing about now: wait for the new one.
                fresh = [r for r in results if r is not None and now - r.checked_at < 2 * self.interval]
                answers[host] = tuple(fresh) if len(fresh) == len(targets) else None
        return answers
