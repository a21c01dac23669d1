"""rollouts (one playbook over many hosts) and who started each run

Revision ID: 0005_rollouts
Revises: 0004
Create Date: 2026-12-03 16:00:00

Tables of controller/workflows/rollout_models.py, and ``workflow_runs.started_by`` (``cli:<login>``,
the API operator, ``window:<name>``; empty for runs recorded before).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_rollouts"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("started_by", sa.String(length=200), nullable=False, server_default=""))
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("control", sa.String(length=16), nullable=True),
        sa.Column("canary", sa.String(length=100), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("max_failures", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_state"), "rollouts", ["state"])
    op.create_table(
        "rollout_hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], ondelete="CASCADE",
                                name=op.f("fk_rollout_hosts_rollout_id_rollouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_hosts")),
        sa.UniqueConstraint("rollout_id", "host", name=op.f("uq_rollout_hosts_rollout_id")),
    )
    op.create_index(op.f("ix_rollout_hosts_rollout_id"), "rollout_hosts", ["rollout_id"])
    op.create_index(op.f("ix_rollout_hosts_run_id"), "rollout_hosts", ["run_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rollout_hosts_run_id"), table_name="rollout_hosts")
    op.drop_index(op.f("ix_rollout_hosts_rollout_id"), table_name="rollout_hosts")
    op.drop_table("rollout_hosts")
    op.drop_index(op.f("ix_rollouts_state"), table_name="rollouts")
    op.drop_table("rollouts")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("started_by")
