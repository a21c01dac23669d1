"""Delivery of spooled reports to the controller: ``POST {url}/api/v1/reports``.

Every report is in the spool (fsync'd) before it is sent, and leaves it only when the controller
took it. :class:`Pusher` always sends the *oldest* spooled report first, so the controller sees
seqs in order, also after an outage or an agent restart.

What an answer means (:func:`classify`):

=========================================  =========  ======================================
answer                                     outcome    what happens
=========================================  =========  ======================================
2xx                                        delivered  removed from the spool
409 Conflict                               delivered  the controller already has this (host,
                                                      seq): it is idempotent, so a report sent
                                                      twice (crash after send, before remove)
                                                      counts as delivered
401, 403                                   retry      token wrong or revoked: logged as ERROR
                                                      on every attempt, reports stay spooled
                                                      (bounded by max_bytes) so that fixing the
                                                      token delivers the backlog
408, 429, 5xx, other codes, connection     retry      kept; next attempt after an exponential
refused, timeout, TLS failure, a proxy                backoff (1 s doubling, capped at 60 s,
that is down or refuses the CONNECT                   jittered to 50-100 %), or after the
                                                      answer's ``Retry-After`` when that is
                                                      longer (429 and 503; seconds or an HTTP
                                                      date, at most 600 s)
any other 4xx (400, 413, 422, ...)         rejected   logged as ERROR with the status and the
                                                      controller's message, moved to
                                                      ``spool.dir/rejected/`` (newest 20 kept),
                                                      the next report is sent at once
=========================================  =========  ======================================

Only the standard library is used (socket + ssl, the HTTP/1.1 exchange of agent/httpwire.py); TLS
is verified against the system CAs, or against ``controller.ca_file`` when one is configured. The
token is sent, never logged. Through an HTTP proxy (agent/proxy.py) TLS goes in a ``CONNECT``
tunnel, still verified end to end; the proxy's credentials are never logged either.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional, Protocol
from urllib.parse import urlsplit

from agent import __version__
from agent.httpwire import (
    ConnectionClosed,
    ProtocolError,
    Proxy,
    ProxyRefused,
    build_request,
    connect,
    exchange,
    host_header,
)
from agent.spool import Spool

log = logging.getLogger(__name__)

REPORTS_PATH = "/api/v1/reports"
MESSAGE_LIMIT = 300


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    reason: str  # ok, duplicate, auth, throttled, http_5xx, http_4xx, http_other, timeout, tls, connection,
    # proxy
    status: Optional[int] = None
    message: str = ""
    retry_after: Optional[float] = None  # seconds the controller asked to wait (429/503 Retry-After)


#: The longest ``Retry-After`` honoured: a proxy or controller asking for more (or a clock skewed HTTP
#: date) does not silence the agent for longer; the spool keeps the reports meanwhile.
RETRY_AFTER_CAP = 600.0


def parse_retry_after(value: Optional[str], now: Callable[[], float] = time.time) -> Optional[float]:
    """A ``Retry-After`` header's seconds (delta-seconds or an HTTP date, RFC 9110 10.2.3), capped at
    :data:`RETRY_AFTER_CAP`; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now()
    return min(RETRY_AFTER_CAP, max(0.0, seconds))


def classify(status: int, message: str = "", retry_after: Optional[float] = None) -> PushResult:
    """The outcome of an HTTP answer (see the module docstring's table); ``retry_after`` is kept for a
    429 or 503 only."""
    if status in (429, 503):
        reason = "throttled" if status == 429 else "http_5xx"
        return PushResult(Outcome.RETRY, reason, status, message, retry_after)
    if 200 <= status < 300:
        return PushResult(Outcome.DELIVERED, "ok", status, message)
    if status == 409:
        return PushResult(Outcome.DELIVERED, "duplicate", status, message)
    if status in (401, 403):
        return PushResult(Outcome.RETRY, "auth", status, message)
    if status == 408:
        return PushResult(Outcome.RETRY, "throttled", status, message)
    if 400 <= status < 500:
        return PushResult(Outcome.REJECTED, "http_4xx", status, message)
    if 500 <= status < 600:
        return PushResult(Outcome.RETRY, "http_5xx", status, message)
    return PushResult(Outcome.RETRY, "http_other", status, message)


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for log lines."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _message(raw: bytes) -> str:
    text = raw[:4096].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "detail" in data:
            text = data["detail"] if isinstance(data["detail"], str) else json.dumps(data["detail"])
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:MESSAGE_LIMIT] + ("…" if len(text) > MESSAGE_LIMIT else "")


class Transport(Protocol):
    def send(self, body: bytes) -> PushResult: ...


class HttpTransport:
    """One POST per report (:mod:`agent.httpwire`), on a kept-alive connection.

    The connection stays open between pushes when the controller allows it (``serve`` keeps idle
    connections for 75 s, longer than the usual push interval), which saves the controller a TCP
    (and TLS) handshake per report: measured, a new connection per push cost it ~0.5 ms of CPU more
    per report and a third of its ingest rate (docs/benchmarks.md). A kept connection the
    controller has closed in the meantime (restart, idle timeout) is noticed on the next push, which
    is then sent once more on a new connection; a report sent twice is harmless (the controller
    answers "duplicate"). Anything else closes the connection; the next push opens a new one.
    The exchange is agent/httpwire.py's (http.client parsed each answer's head with the ``email``
    package: 0.54 against 0.32 ms of the agent's CPU per push, measured).
    """

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 10.0, ca_file: Optional[Path] = None,
        proxy: Optional[Proxy] = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"controller URL must be http(s)://host[:port][/path], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + REPORTS_PATH
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": f"boxkeeper-agent/{__version__}",
        }
        self._host_header = host_header(self._host, self._port, self._https)
        self._proxy = proxy
        self._target = self._path
        if proxy is not None and not self._https:  # plain HTTP through a proxy: absolute-form requests
            self._target = f"http://{self._host_header}{self._path}"
            if proxy.authorization:
                self._headers["Proxy-Authorization"] = proxy.authorization
        self._timeout = timeout
        self._context: Optional[ssl.SSLContext] = None
        self._kept: Optional[socket.socket] = None
        self.connections = 0  # TCP connections opened (for /metrics and tests)
        if self._https:
            self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.url = public_url(f"{parts.scheme}://{parts.netloc}{self._path}")
        if proxy is not None:
            self.url += f" (via proxy {proxy.shown})"

    def send(self, body: bytes) -> PushResult:
        sock, reused = self._kept, self._kept is not None
        self._kept = None
        keep = False
        try:
            if sock is None:
                self.connections += 1
                sock = connect(self._host, self._port, timeout=self._timeout, context=self._context,
                               proxy=self._proxy)
            request = build_request("POST", self._target, self._host_header, self._headers, body=body,
                                    keep_alive=True)
            connected = sock
            answer = exchange(sock, request, head_only=False, max_body=64 * 1024,
                              before_read=lambda: connected.settimeout(self._timeout))
            keep = answer.reusable  # all read, and the server keeps it
            wait = parse_retry_after(answer.header("Retry-After"))
            return classify(answer.status, _message(answer.body), wait)
        except _STALE as exc:
            if reused:  # the kept connection was closed by the controller: once more, on a new one
                return self.send(body)
            return PushResult(Outcome.RETRY, "connection", None, f"{type(exc).__name__}: {exc}")
        except TimeoutError:
            return PushResult(Outcome.RETRY, "timeout", None, f"no answer within {self._timeout:g}s")
        except ssl.SSLError as exc:
            return PushResult(Outcome.RETRY, "tls", None, str(exc))
        except ProxyRefused as exc:
            return PushResult(Outcome.RETRY, "proxy", None, str(exc))
        except ProtocolError as exc:
            return PushResult(Outcome.RETRY, "connection", None, f"bad HTTP answer: {exc}")
        except OSError as exc:
            return PushResult(Outcome.RETRY, "connection", None, f"{type(exc).__name__}: {exc}")
        finally:
            if sock is not None:
                if keep:
                    self._kept = sock
                else:
                    sock.close()

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None


#: What sending on a kept-alive connection that the other side has closed raises.
_STALE = (ConnectionClosed, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` failures in a row: doubling, capped, 50-100 % jitter."""
        raw = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return float(raw * (0.5 + 0.5 * rng()))


@dataclass(frozen=True)
class PushStats:
    pushes_total: int
    delivered_total: int
    rejected_total: int
    errors_total: dict[str, int] = field(default_factory=dict)
    last_success: Optional[float] = None  # unix seconds


class Pusher:
    """Sends the spool oldest-first until it is empty or the controller is unavailable."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        url: str = "",
    ) -> None:
        self._spool = spool
        self._transport = transport
        self._backoff = backoff
        self._clock = clock
        self._wall = wall
        self._rng = rng
        self._url = public_url(url)
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = float("-inf")
        self._pushes = 0
        self._delivered = 0
        self._rejected = 0
        self._errors: dict[str, int] = {}
        self._last_success: Optional[float] = None

    def retry_in(self) -> float:
        """Seconds until the next attempt is allowed (0 when it may go now)."""
        return max(0.0, self._retry_at - self._clock())

    def drain(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Deliver what the spool holds, oldest first. True when the spool ended up empty."""
        while not should_stop():
            if self.retry_in() > 0:
                return False
            item = self._spool.oldest()
            if item is None:
                return True
            seq, body = item
            result = self._transport.send(body)
            self._record(seq, result)
            if result.outcome is Outcome.RETRY:
                return False
        return False

    def _record(self, seq: int, result: PushResult) -> None:
        with self._lock:
            self._pushes += 1
            if result.outcome is not Outcome.DELIVERED or result.reason != "ok":
                self._errors[result.reason] = self._errors.get(result.reason, 0) + 1
        if result.outcome is Outcome.DELIVERED:
            self._spool.remove(seq)
            with self._lock:
                self._delivered += 1
                self._last_success = self._wall()
            if self._failures:
                log.info("controller %s takes reports again (after %d failed attempt(s))", self._url,
                         self._failures)
            if result.reason == "duplicate":
                log.info("report %d: controller already had it (409); counted as delivered", seq)
            self._failures = 0
            self._retry_at = float("-inf")
        elif result.outcome is Outcome.REJECTED:
            self._spool.reject(seq)
            with self._lock:
                self._rejected += 1
            log.error(
                "controller REJECTED report %d: HTTP %s: %s; moved to %s/rejected/ and going on "
                "with the next one (fix the cause: agent version, config, size)",
                seq, result.status, result.message or "(no message)", self._spool.dir,
            )
        else:
            self._failures += 1
            failures = max(self._failures, 7) if result.reason == "auth" else self._failures
            delay = self._backoff.delay(failures, self._rng)
            if result.retry_after is not None:  # the controller (or a proxy) said how long
                delay = max(delay, result.retry_after)
            self._retry_at = self._clock() + delay
            waiting = self._spool.stats().reports
            what = f"HTTP {result.status}: {result.message}" if result.status else result.message
            level = logging.ERROR if result.reason == "auth" else logging.WARNING
            hint = ""
            if result.reason == "auth":
                hint = "; check the token file and the host's token on the controller"
            log.log(level, "push to %s failed (%s, %s)%s; %d report(s) kept in the spool, next try in %.1fs",
                    self._url, result.reason, what, hint, waiting, delay)

    def close(self) -> None:
        """Close the transport's kept-alive connection, if it keeps one."""
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()

    def stats(self) -> PushStats:
        with self._lock:
            return PushStats(
                self._pushes, self._delivered, self._rejected, dict(self._errors), self._last_success,
            )
