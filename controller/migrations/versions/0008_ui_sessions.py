"""ui_sessions: the operator web page's signed-in sessions

Revision ID: 0008_ui_sessions
Revises: 0007_worklog
Create Date: 2026-12-03 16:00:00

One row per signed-in browser (controller/ui/models.py): the SHA-256 of the cookie's random id,
the operator, the SHA-256 of the token signed in with, the CSRF token and the expiry.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_ui_sessions"
down_revision: str | Sequence[str] | None = "0007_worklog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_ui_sessions")),
    )
    op.create_index("ix_ui_sessions_operator", "ui_sessions", ["operator"])
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_ui_sessions_expires_at", table_name="ui_sessions")
    op.drop_index("ix_ui_sessions_operator", table_name="ui_sessions")
    op.drop_table("ui_sessions")
