"""Bearer tokens: generated once, shown once, kept only as SHA-256 hashes.

Tokens are 256-bit random (``secrets.token_urlsafe(32)``), so a plain SHA-256 (no salt, no
stretching) is the right hash: nobody can brute-force 2^256, and a fixed hash lets the
controller find a token's row with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: Agent tokens start with ``bka_``, operator tokens with ``bko_`` (so a leaked token says what it is).
AGENT_PREFIX = "bka_"
OPERATOR_PREFIX = "bko_"


def generate(prefix: str) -> str:
    """A new random token (shown to the operator once, never stored in clear)."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token: what the controller stores and compares."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 512:
        return None
    return value
