"""silences with an owner replace host_mutes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00

A host mute had no owner, so the end of an update window deleted every mute of its hosts,
an operator's too. A silence names its owner (operator, run or window); ending a run or window
removes only its own. Existing mutes become operator silences (those a run made carry the actor
``boxkeeper-update`` and become run silences of an unknown run: they lapse at ``until``).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_ref", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_silences_host_id_hosts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_host_id", "silences", ["host_id"])
    op.create_index("ix_silences_owner", "silences", ["owner_kind", "owner_ref"])
    op.execute(
        "INSERT INTO silences (host_id, until, reason, owner_kind, owner_ref, created_at) "
        "SELECT host_id, until, reason, "
        "CASE WHEN created_by = 'boxkeeper-update' THEN 'run' ELSE 'operator' END, "
        "CASE WHEN created_by = 'boxkeeper-update' THEN 'unknown' ELSE COALESCE(created_by, 'unknown') END, "
        "created_at FROM host_mutes"
    )
    op.drop_index("ix_host_mutes_host_id", table_name="host_mutes")
    op.drop_table("host_mutes")


def downgrade() -> None:
    op.create_table(
        "host_mutes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_host_mutes_host_id_hosts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_mutes")),
    )
    op.create_index("ix_host_mutes_host_id", "host_mutes", ["host_id"])
    op.execute("INSERT INTO host_mutes (host_id, until, reason, created_at, created_by) "
               "SELECT host_id, until, reason, created_at, owner_ref FROM silences")
    op.drop_index("ix_silences_owner", table_name="silences")
    op.drop_index("ix_silences_host_id", table_name="silences")
    op.drop_table("silences")
