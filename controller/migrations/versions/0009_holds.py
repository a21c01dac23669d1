"""release holds, later rollbacks, window change audit

Revision ID: 0009_holds
Revises: 0008_ui_sessions
Create Date: 2026-12-03 16:00:00

Hand-written; runs on SQLite and PostgreSQL. Tables of controller/workflows/releases.py,
controller/workflows/later.py and controller/workflows/window_changes.py.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_holds"
down_revision: str | Sequence[str] | None = "0008_ui_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "release_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(length=200), nullable=False),
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=100), nullable=True),
        sa.Column("held_by", sa.String(length=100), nullable=False),
        sa.Column("held_at", sa.Float(), nullable=False),
        sa.Column("released_by", sa.String(length=100), nullable=True),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_holds")),
    )
    op.create_index(op.f("ix_release_holds_playbook"), "release_holds", ["playbook"])
    op.create_index(op.f("ix_release_holds_state"), "release_holds", ["state"])
    op.create_table(
        "workflow_later_rollbacks",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("of_run_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"],
                                name=op.f("fk_workflow_later_rollbacks_run_id_workflow_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_workflow_later_rollbacks")),
    )
    op.create_index(op.f("ix_workflow_later_rollbacks_of_run_id"), "workflow_later_rollbacks", ["of_run_id"])
    op.create_table(
        "workflow_window_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("window_name", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_window_changes")),
    )
    op.create_index(op.f("ix_workflow_window_changes_window_id"), "workflow_window_changes", ["window_id"])


def downgrade() -> None:
    op.drop_table("workflow_window_changes")
    op.drop_table("workflow_later_rollbacks")
    op.drop_table("release_holds")
