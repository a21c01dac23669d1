"""worklog: minutes of work per client (incident notes with --minutes, worklog add)

Revision ID: 0007_worklog
Revises: 0006_history
Create Date: 2026-12-03 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_worklog"
down_revision: str | Sequence[str] | None = "0006_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worklog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("client_name", sa.String(length=100), nullable=False),
        sa.Column("host_name", sa.String(length=100), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_worklog_client_id_clients"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worklog")),
    )
    op.create_index("ix_worklog_client_id_at", "worklog", ["client_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_worklog_client_id_at", table_name="worklog")
    op.drop_table("worklog")
