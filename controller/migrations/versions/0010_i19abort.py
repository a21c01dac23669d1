"""abort of a single run: who asked, when, and when the engine took it

Revision ID: 0010_i19abort
Revises: 0009_holds
Create Date: 2026-12-03 19:00:00

``boxkeeper runs abort ID`` (the API, the web page) records ``abort_requested_by`` and
``abort_requested_at`` on the run from any process; the engine reads them at its next step boundary
and records ``aborted_at`` when it acts on them (controller/workflows/aborts.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_i19abort"
down_revision: str | Sequence[str] | None = "0009_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("abort_requested_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("abort_requested_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("aborted_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("aborted_at")
        batch.drop_column("abort_requested_at")
        batch.drop_column("abort_requested_by")
