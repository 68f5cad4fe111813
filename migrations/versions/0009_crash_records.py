"""Remember crashes: how many times handing a job over stopped its dispatcher (the second time the job
fails with the error instead of stopping the next dispatcher too), and how each dispatcher that did not
stop on purpose ended (``/health`` reports dispatchers that keep crashing).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("handover_crashes", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("dispatchers") as batch:
        batch.add_column(sa.Column("ended_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("failure", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dispatchers") as batch:
        batch.drop_column("failure")
        batch.drop_column("ended_at")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("handover_crashes")
