"""history summaries (check_hours) and the index the pruning walks reports by

Revision ID: 0006_history
Revises: 0005_rollouts
Create Date: 2026-12-03 16:00:00

Raw reports are now kept for ``retention.raw_reports`` (default 7 days) and summarised per host,
check and hour into ``check_hours`` (kept ``retention.summaries``, default 400 days). The pruning
reads one host's oldest reports in time order: ``ix_reports_host_id_received_at``.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_history"
down_revision: str | Sequence[str] | None = "0005_rollouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "check_hours",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(length=200), nullable=False),
        sa.Column("ok_seconds", sa.Integer(), nullable=False),
        sa.Column("warning_seconds", sa.Integer(), nullable=False),
        sa.Column("critical_seconds", sa.Integer(), nullable=False),
        sa.Column("unknown_seconds", sa.Integer(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_check_hours_host_id_hosts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("host_id", "hour", "check_name", name=op.f("pk_check_hours")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_reports_host_id_received_at", "reports", ["host_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_reports_host_id_received_at", table_name="reports")
    op.drop_table("check_hours")
