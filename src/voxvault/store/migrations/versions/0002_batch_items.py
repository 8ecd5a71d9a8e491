"""Batch items remember their watermark id and resolved voice, so a manifest can be rebuilt from rows.

Revision ID: 0002_batch
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_batch"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_items") as batch:
        batch.add_column(sa.Column("watermark_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("voice_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_items") as batch:
        batch.drop_column("voice_id")
        batch.drop_column("watermark_id")
