"""Signed-in browser sessions: an operator token exchanged for a random session id.

The cookie (``bk_session``: HttpOnly, SameSite=Strict, Path=/ui, Secure when the page is served
over HTTPS) holds 256 random bits; the store keeps only their SHA-256 (:mod:`controller.ui.models`).
A session is valid while it has not expired (12 h after sign-in, or 2 h without a request) and its
operator is still in the operators file with the same token: removing an operator, or giving them
a new token, ends their sessions at the next request. Sign-out deletes the row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.orm import Session

from controller import operators, tokens
from controller.ui.models import UiSession

COOKIE = "bk_session"
LIFETIME_SECONDS = 12 * 3600
IDLE_SECONDS = 2 * 3600
#: last_seen_at is written at most this often (a page refreshing every 10 s does not write each time)
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SignedIn:
    operator: str
    csrf: str
    id_sha256: str


def operator_of_token(operators_file: Path, token: str) -> operators.Operator | None:
    """The operators file's entry for ``token`` (compared in constant time), or None."""
    token = token.strip()
    if not token or len(token) > 512:
        return None
    digest = tokens.hash_token(token)
    found = None
    for op in operators.read_file(operators_file):
        if tokens.same_hash(op.sha256, digest):
            found = op
    return found


def open_session(session: Session, op: operators.Operator, now: float) -> tuple[str, SignedIn]:
    """A new session for ``op``: (the cookie value, what the store keeps)."""
    raw = secrets.token_urlsafe(32)
    row = UiSession(id_sha256=tokens.hash_token(raw), operator=op.name, token_sha256=op.sha256,
                    csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                    expires_at=now + LIFETIME_SECONDS)
    session.add(row)
    session.execute(delete(UiSession).where(UiSession.expires_at <= now))  # old rows go on the way
    return raw, SignedIn(row.operator, row.csrf, row.id_sha256)


@dataclass(frozen=True)
class Verdict:
    """What the store says of a cookie: the session (None: not signed in), and whether its row must
    be deleted (expired, operator gone) or its last_seen_at moved on. Reading it takes no write
    lock, so a page refreshing every few seconds writes at most once a minute."""

    signed: SignedIn | None
    delete: bool = False
    touch: bool = False


def check(session: Session, operators_file: Path, cookie: str | None, now: float) -> Verdict:
    """Whether ``cookie`` is a valid session (read-only)."""
    if not cookie or len(cookie) > 200:
        return Verdict(None)
    row = session.get(UiSession, tokens.hash_token(cookie))
    if row is None:
        return Verdict(None)
    still_operator = any(op.name == row.operator and tokens.same_hash(op.sha256, row.token_sha256)
                         for op in operators.read_file(operators_file))
    signed = SignedIn(row.operator, row.csrf, row.id_sha256)
    if not still_operator or now >= row.expires_at or now - row.last_seen_at >= IDLE_SECONDS:
        return Verdict(None, delete=True)
    return Verdict(signed, touch=now - row.last_seen_at >= TOUCH_SECONDS)


def record(session: Session, cookie: str, verdict: Verdict, now: float) -> None:
    """Write what :func:`check` found: delete a dead session's row, or move last_seen_at on."""
    digest = tokens.hash_token(cookie)
    if verdict.delete:
        session.execute(delete(UiSession).where(UiSession.id_sha256 == digest))
    elif verdict.touch:
        row = session.get(UiSession, digest)
        if row is not None:
            row.last_seen_at = now


def close(session: Session, id_sha256: str) -> None:
    session.execute(delete(UiSession).where(UiSession.id_sha256 == id_sha256))


def same_csrf(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())
