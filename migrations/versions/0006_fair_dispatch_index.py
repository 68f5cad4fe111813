"""Index the waiting jobs by owner in creation order: the dispatcher ranks every waiting job within
its owner's queue each time it starts jobs (round robin between users), and this index holds all it
reads (status, owner, created_at, id), in that order, so the ranking neither sorts nor reads rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_owner_created", "jobs", ["status", "owner", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_owner_created", "jobs")
