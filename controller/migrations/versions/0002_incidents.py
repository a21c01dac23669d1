"""incidents, timeline, notification outbox, host mutes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:40:00

Hand-written; runs on SQLite and PostgreSQL. The partial unique index allows at most one
not-resolved incident per dedup key.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOT_RESOLVED = sa.text("status != 'resolved'")


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("client_name", sa.String(length=100), nullable=True),
        sa.Column("host_name", sa.String(length=100), nullable=True),
        sa.Column("dedup_key", sa.String(length=400), nullable=False),
        sa.Column("cause", sa.String(length=50), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("acknowledged_at", sa.Float(), nullable=True),
        sa.Column("ack_expires_at", sa.Float(), nullable=True),
        sa.Column("withheld", sa.String(length=300), nullable=True),
        sa.Column("needs_sync", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_incidents_client_id_clients"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_incidents_host_id_hosts"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("uq_incidents_open_dedup_key", "incidents", ["dedup_key"], unique=True,
                    sqlite_where=NOT_RESOLVED, postgresql_where=NOT_RESOLVED)
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_index("ix_incidents_host_id", "incidents", ["host_id"])

    op.create_table(
        "incident_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_incident_events_incident_id_incidents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
    )
    op.create_index("ix_incident_events_incident_id_at", "incident_events", ["incident_id", "at"])

    op.create_table(
        "notifications",
        sa.Column("id", BigId, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_notifications_incident_id_incidents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notifications_dedup_key")),
    )
    op.create_index("ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_incident_id_channel", "notifications", ["incident_id", "channel"])

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


def downgrade() -> None:
    op.drop_index("ix_host_mutes_host_id", table_name="host_mutes")
    op.drop_table("host_mutes")
    op.drop_index("ix_notifications_incident_id_channel", table_name="notifications")
    op.drop_index("ix_notifications_status_next_attempt_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_incident_events_incident_id_at", table_name="incident_events")
    op.drop_table("incident_events")
    op.drop_index("ix_incidents_host_id", table_name="incidents")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_index("uq_incidents_open_dedup_key", table_name="incidents")
    op.drop_table("incidents")
