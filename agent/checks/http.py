"""``http`` check: does the portal answer, with the expected status and body, in time?

Standard library only (``socket`` + ``ssl``; the HTTP/1.1 exchange in
:mod:`agent.httpwire`), one deadline for the whole exchange including redirects.
CRITICAL when: no connection, no answer within the timeout, an untrusted or expired
certificate (TLS is verified by default), a status outside ``expect_status``, a body that does not
match ``body_regex`` or does match ``body_not_regex`` (e.g. the BitrixEnv "502 Bad Gateway" page).
For https URLs the days left on the server certificate are reported (perfdata ``tls_cert_days``):
WARNING under ``tls_warning_days``, CRITICAL under ``tls_critical_days``.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Optional
from urllib.parse import urljoin, urlsplit

import msgspec

from agent import __version__
from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources, seconds_text
from agent.configtypes import Count, Headers, HttpMethod, HttpUrl, Regex, StatusCodes, Text
from agent.errors import SpecError
from agent.httpwire import ProtocolError, build_request, connect, exchange, host_header
from agent.report import PerfValue, Status

MAX_REDIRECTS = 10
MAX_BODY_BYTES = 1024 * 1024  # enough for a portal's front page; the rest is not read
_REDIRECTS = (301, 302, 303, 307, 308)


class _Failure(Exception):
    """Ends the exchange with a CRITICAL summary."""


@dataclass(frozen=True)
class _Answer:
    url: str
    status: int
    body: str
    size: int
    cert_days: Optional[float]


class HttpSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["http"] = "http"
    url: HttpUrl
    method: HttpMethod = HttpMethod("GET")
    expect_status: StatusCodes = StatusCodes(range(200, 400))
    body_regex: Optional[Regex] = None
    body_not_regex: Optional[Regex] = None
    follow_redirects: bool = True
    verify_tls: bool = True
    ca_file: Optional[Text] = None
    headers: Headers = msgspec.field(default_factory=Headers)
    tls_warning_days: Count = Count(21)
    tls_critical_days: Count = Count(7)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tls_critical_days > self.tls_warning_days:
            raise SpecError("tls_critical_days", "a number of days not above tls_warning_days")


@dataclass(frozen=True)
class HttpCheck(FromSpec):
    spec: HttpSpec
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def run(self, timeout: float) -> CheckResult:
        started = self.clock()
        try:
            answer = self._exchange(started + timeout, timeout)
        except _Failure as exc:
            return CheckResult(Status.CRITICAL, str(exc))
        elapsed = self.clock() - started
        return self._judge(answer, elapsed, timeout)

    # -- evaluation (pure) ---------------------------------------------------------------------

    def _judge(self, answer: _Answer, elapsed: float, timeout: float) -> CheckResult:
        perf = [
            PerfValue("time", round(elapsed, 6), "s", min=0.0, max=timeout),
            PerfValue("size", float(answer.size), "B", min=0.0),
        ]
        spec = self.spec
        where = answer.url if answer.url == spec.url else f"{answer.url} (from {spec.url})"
        status = Status.OK
        problems: list[str] = []
        if answer.status not in spec.expect_status:
            status = Status.CRITICAL
            problems.append(f"expected {codes_text(spec.expect_status)}")
        else:
            if spec.body_not_regex and re.search(spec.body_not_regex, answer.body):
                status = Status.CRITICAL
                problems.append(f"body matches {spec.body_not_regex!r}")
            if spec.body_regex and not re.search(spec.body_regex, answer.body):
                status = Status.CRITICAL
                problems.append(f"body does not match {spec.body_regex!r}")
        summary = f"HTTP {answer.status} from {where} in {elapsed:.3f}s"
        if problems:
            summary += ": " + "; ".join(problems)
        if answer.cert_days is not None:
            days = answer.cert_days
            perf.append(PerfValue("tls_cert_days", round(days, 2), "",
                                  warn=float(spec.tls_warning_days), crit=float(spec.tls_critical_days)))
            when = time.strftime("%Y-%m-%d", time.gmtime(self.wall() + days * 86400))
            cert_text = f"TLS certificate expires in {days:.1f} days ({when})"
            if days < spec.tls_critical_days:
                status = Status.CRITICAL
                cert_text += f", under {spec.tls_critical_days}"
            elif days < spec.tls_warning_days:
                status = max(status, Status.WARNING, key=lambda s: s.severity)
                cert_text += f", under {spec.tls_warning_days}"
            summary += "; " + cert_text
        return CheckResult(status, summary, tuple(perf))

    # -- I/O ------------------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        return tls_context(self.spec.ca_file, self.spec.verify_tls)

    def _exchange(self, deadline: float, timeout: float) -> _Answer:
        url: str = self.spec.url
        method: str = self.spec.method
        cert_days: Optional[float] = None
        for _hop in range(MAX_REDIRECTS + 1):
            status, location, body, size, days = self._request(url, method, deadline, timeout)
            if cert_days is None:
                cert_days = days
            if self.spec.follow_redirects and status in _REDIRECTS and location:
                url = urljoin(url, location)
                if status not in (307, 308):
                    method = "GET"
                continue
            return _Answer(url, status, body, size, cert_days)
        raise _Failure(f"more than {MAX_REDIRECTS} redirects from {self.spec.url} (last {url})")

    def _remaining(self, deadline: float, timeout: float, url: str) -> float:
        left = deadline - self.clock()
        if left <= 0:
            raise _Failure(f"no answer from {url}: timed out after {seconds_text(timeout)}")
        return left

    def _request(
        self, url: str, method: str, deadline: float, timeout: float,
    ) -> tuple[int, Optional[str], str, int, Optional[float]]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        try:
            port = parts.port or (443 if https else 80)
        except ValueError:
            raise _Failure(f"bad port in {url}") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": f"boxkeeper-agent/{__version__}", "Accept": "*/*", **self.spec.headers}
        try:
            request = build_request(method, target, host_header(host, port, https), headers)
        except ValueError as exc:
            raise _Failure(f"cannot send a request to {url}: {exc}") from None
        sock: Optional[socket.socket] = None
        try:
            sock = connect(host, port, timeout=self._remaining(deadline, timeout, url),
                           context=self._context() if https else None)
            days = _cert_days(sock, self.wall()) if isinstance(sock, ssl.SSLSocket) else None
            connected = sock

            def before_read() -> None:  # one deadline for the whole exchange
                connected.settimeout(self._remaining(deadline, timeout, url))

            resp = exchange(sock, request, head_only=method == "HEAD", max_body=MAX_BODY_BYTES,
                            before_read=before_read)
            charset = resp.charset() or "utf-8"
            try:
                body = resp.body.decode(charset, errors="replace")
            except (LookupError, UnicodeError):  # unknown, or not a text codec ("idna")
                body = resp.body.decode("utf-8", errors="replace")
            return resp.status, resp.header("Location"), body, resp.size, days
        except _Failure:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise _Failure(f"TLS certificate of {url} not accepted: {exc.verify_message}") from None
        except TimeoutError:
            raise _Failure(f"no answer from {url}: timed out after {seconds_text(timeout)}") from None
        except ssl.SSLError as exc:
            raise _Failure(f"TLS error with {url}: {exc.reason or exc}") from None
        except ProtocolError as exc:
            raise _Failure(f"bad HTTP answer from {url}: {exc}") from None
        except OSError as exc:
            raise _Failure(f"cannot connect to {url}: {exc.strerror or exc}") from None
        finally:
            if sock is not None:
                sock.close()


_CONTEXTS: dict[tuple[Optional[str], bool, tuple[Optional[float], ...]], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(ca_file: Optional[str], verify: bool) -> ssl.SSLContext:
    """A client context (verifying unless ``verify`` is False), shared by the runs of the checks.

    ``ssl.create_default_context`` loads the whole CA store (a few ms of CPU) and an SSLContext may
    be shared by threads, so it is built once per (CA file, verify) and built again only when the
    CA file, or the system store (its file and directory), changed on disk (mtime): a renewed CA
    is picked up without a restart, as before. Settings are the same as for a fresh context.
    """
    paths = ssl.get_default_verify_paths()
    key = (ca_file, verify, tuple(_mtime(p) for p in (ca_file, paths.cafile, paths.capath)))
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca_file)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if len(_CONTEXTS) >= 64:  # stale keys (CA files replaced) do not pile up
                _CONTEXTS.clear()
            _CONTEXTS[key] = ctx
        return ctx


def _mtime(path: Optional[str]) -> Optional[float]:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _cert_days(sock: ssl.SSLSocket, now: float) -> Optional[float]:
    """Days until the peer certificate's notAfter (verified or not)."""
    cert = sock.getpeercert()
    if cert and "notAfter" in cert:
        return (ssl.cert_time_to_seconds(str(cert["notAfter"])) - now) / 86400
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    try:  # not verified: the decoded form is empty; decode DER if cryptography is at hand
        from cryptography import x509
    except ImportError:
        return None
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    return (not_after - now) / 86400


def codes_text(codes: Sequence[int]) -> str:
    """``(200, 201, 202, 302)`` → ``"200-202, 302"``."""
    ordered = sorted(set(codes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def build(spec: HttpSpec, resources: Resources) -> HttpCheck:
    return HttpCheck(spec)
