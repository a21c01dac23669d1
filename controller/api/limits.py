"""Per-token rate limits (429 + ``Retry-After``) and body limits (413).

A token bucket per token (keyed by the token's SHA-256, never the token), in memory, per process
(each ``serve --workers N`` process and each controller keeps its own: the limits are per process).
The buckets are ``token_bucket``'s (falconry); only tokens that authenticated get one, so their
number is bounded by the hosts and operators there are.

The defaults (``limits:`` in the controller config) and why they never bite a normal client:

========================  ==========  =====  ============================================================
who                       per second  burst  a normal client
========================  ==========  =====  ============================================================
an agent (ingest)         2           10000  pushes once per 15 s (0.07/s); after an outage it replays
                                             its spool back to back: 24 h of 15 s reports is 5,760,
                                             within the burst; a longer backlog goes on at 2/s
                                             (7,200 an hour) — the agent backs off on 429 and keeps
                                             the reports spooled, nothing is lost
an operator (API)         10          300    the CLI-like scripts and a browser page refresh a few
                                             calls every few seconds
========================  ==========  =====  ============================================================

Body limits: ``ingest.max_report_bytes`` (default 1 MiB) on ``POST /api/v1/reports``, and
``limits.max_body_bytes`` (default 1 MiB) on every other endpoint: a ``Content-Length`` over it
is refused before anything is read, a chunked body as soon as it gets there.
"""

from __future__ import annotations

import math

import token_bucket

from controller.config import RateLimit


class Buckets:
    """``take(key)`` → None when the request may go, else the seconds to wait (``Retry-After``)."""

    def __init__(self, limit: RateLimit) -> None:
        self.per_second = limit.per_second
        self.burst = limit.burst
        self._storage = token_bucket.MemoryStorage()
        self._limiter = token_bucket.Limiter(limit.per_second, limit.burst, self._storage)

    def take(self, key: str) -> int | None:
        if self._limiter.consume(key):
            return None
        missing = 1.0 - self._storage.get_token_count(key)
        return max(1, math.ceil(missing / self.per_second))


def declared_too_large(content_length: str | None, limit: int) -> bool:
    """True when a ``Content-Length`` header says more than ``limit`` bytes."""
    if content_length is None:
        return False
    try:
        return int(content_length) > limit
    except ValueError:
        return False
