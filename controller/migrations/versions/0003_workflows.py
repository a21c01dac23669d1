"""update workflows: runs, run timeline, host leases, host quarantine

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:55:00

Hand-written; runs on SQLite and PostgreSQL. Tables of controller/workflows/models.py.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("playbook", sa.String(length=200), nullable=False),
        sa.Column("playbook_path", sa.String(length=1000), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("lock_token", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("phase_status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("backup_started", sa.Boolean(), nullable=False),
        sa.Column("captured", sa.JSON(), nullable=False),
        sa.Column("failed_step", sa.String(length=300), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
    )
    op.create_index(op.f("ix_workflow_runs_host"), "workflow_runs", ["host"])
    op.create_index(op.f("ix_workflow_runs_state"), "workflow_runs", ["state"])
    op.create_table(
        "workflow_run_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("stdout_tail", sa.Text(), nullable=False),
        sa.Column("stderr_tail", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_workflow_run_steps_run_id_workflow_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_run_steps")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_workflow_run_steps_run_id")),
    )
    op.create_index(op.f("ix_workflow_run_steps_run_id"), "workflow_run_steps", ["run_id"])
    op.create_table(
        "workflow_host_leases",
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["workflow_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_workflow_host_leases_run_id_workflow_runs")),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_workflow_host_leases")),
    )
    op.create_table(
        "workflow_host_quarantine",
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_workflow_host_quarantine")),
    )
    op.create_table(
        "workflow_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("playbook", sa.String(length=1000), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_windows")),
        sa.UniqueConstraint("name", name=op.f("uq_workflow_windows_name")),
    )
    op.create_table(
        "workflow_window_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["window_id"], ["workflow_windows.id"], ondelete="CASCADE",
                                name=op.f("fk_workflow_window_occurrences_window_id_workflow_windows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_window_occurrences")),
        sa.UniqueConstraint("window_id", "scheduled_for", name=op.f("uq_workflow_window_occurrences_window_id")),
    )
    op.create_index(op.f("ix_workflow_window_occurrences_window_id"), "workflow_window_occurrences",
                    ["window_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_workflow_window_occurrences_window_id"), table_name="workflow_window_occurrences")
    op.drop_table("workflow_window_occurrences")
    op.drop_table("workflow_windows")
    op.drop_table("workflow_host_quarantine")
    op.drop_table("workflow_host_leases")
    op.drop_index(op.f("ix_workflow_run_steps_run_id"), table_name="workflow_run_steps")
    op.drop_table("workflow_run_steps")
    op.drop_index(op.f("ix_workflow_runs_state"), table_name="workflow_runs")
    op.drop_index(op.f("ix_workflow_runs_host"), table_name="workflow_runs")
    op.drop_table("workflow_runs")
