"""Personal fields are sealed at rest (issue 29, finding 6): their columns become unbounded text.

A sealed value (``vxe1:`` + base64 envelope) is longer than the 200 characters a name column allowed.
Values are sealed by the application (it has the master key, the migration does not): rows written in
clear before are read as they are and sealed when ``VoxVault`` opens the database.

Revision ID: 0003_sealed
Revises: 0002_batch
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_sealed"
down_revision: str | None = "0002_batch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WIDENED = {"consents": ("speaker_name", "organization_name"), "voices": ("name",)}


def upgrade() -> None:
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, existing_type=sa.String(length=200), type_=sa.Text())


def downgrade() -> None:
    # Sealed values do not fit 200 characters: run with the previous version only on a database whose
    # personal fields were never sealed (or were erased).
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, existing_type=sa.Text(), type_=sa.String(length=200))
