"""Subscribers of a job (the callback class of OGC API - Processes) and what has been notified to them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("subscribers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("notify_due", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("notified", sa.String(16), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime(), nullable=True))
    # Partial: only the few jobs that may still owe a notification (scheduler.models.NOTIFY_DUE).
    where = {"postgresql_where": sa.text("notify_due"), "sqlite_where": sa.text("notify_due = 1")}
    op.create_index("ix_jobs_notify_due", "jobs", ["notify_due"], **where)


def downgrade() -> None:
    op.drop_index("ix_jobs_notify_due", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("notified_at", "notified", "notify_due", "subscribers"):
            batch.drop_column(column)
