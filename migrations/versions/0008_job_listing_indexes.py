"""Index jobs in creation order, per owner and overall: OGC API - Processes ``/jobs`` lists a caller's
jobs (every job for an administrator) newest first, a page at a time from a (created_at, id) cursor;
these indexes hold that order, so a page reads its rows and nothing else however many jobs the table
holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created", "jobs")
    op.drop_index("ix_jobs_owner_created", "jobs")
