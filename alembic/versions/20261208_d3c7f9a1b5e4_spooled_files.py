"""spooled files: files the object store could not take yet, held until uploaded

Revision ID: d3c7f9a1b5e4
Revises: d4d8a0b2c6f5
Create Date: 2026-12-08 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "d3c7f9a1b5e4"
down_revision: str | None = "d4d8a0b2c6f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spooled_files",
        sa.Column("key", sa.String(length=512), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spooled_files")
