"""Refused enrollments are counted in the database, so every worker and restart shares the count.

The in-process counters of ``voices/attempts.py`` let an attacker spread retries of a borderline clone
over workers or restarts (issue 25); one row per refusal and scope, read by every process, closes that.

Revision ID: 0004_refusals
Revises: 0003_sealed
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_refusals"
down_revision: str | None = "0003_sealed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enrollment_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_refusals")),
    )
    op.create_index("ix_enrollment_refusals_bucket_at", "enrollment_refusals", ["bucket", "at"])


def downgrade() -> None:
    op.drop_index("ix_enrollment_refusals_bucket_at", table_name="enrollment_refusals")
    op.drop_table("enrollment_refusals")
