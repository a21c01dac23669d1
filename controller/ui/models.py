"""The web page's one table (migration ``0008_ui_sessions``): signed-in browser sessions.

::

    ui_sessions     one row per signed-in browser; the cookie holds a random id, the row its SHA-256

A row names the operator and the SHA-256 of the operator token it was opened with, so removing the
operator from the operators file (or giving them a new token) ends their sessions at the next
request. Times are unix seconds (float), controller clock.
"""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base


class UiSession(Base):
    __tablename__ = "ui_sessions"

    #: SHA-256 (hex) of the cookie's random id: the table alone cannot be used to sign in
    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(100), index=True)
    #: the operator token's SHA-256 as the operators file had it at sign-in
    token_sha256: Mapped[str] = mapped_column(String(64))
    #: the session's CSRF token (every form carries it; a POST without it is refused)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
