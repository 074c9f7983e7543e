"""planned breaks: the breaks the product planned for each driver, remembered so that a rest
she took when told counts as taken

Revision ID: d4d8a0b2c6f5
Revises: c3e9a1f4b7d2
Create Date: 2026-12-08 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "d4d8a0b2c6f5"
down_revision: str | None = "c3e9a1f4b7d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "planned_breaks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "driver_id",
            sa.Integer(),
            sa.ForeignKey("drivers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_planned_breaks_driver_id", "planned_breaks", ["driver_id"])


def downgrade() -> None:
    op.drop_index("ix_planned_breaks_driver_id", table_name="planned_breaks")
    op.drop_table("planned_breaks")
