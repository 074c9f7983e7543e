"""drivers: working hours (`/hours`), local times of day the planner counts on her

Revision ID: e4f2a6c8b1d3
Revises: c3a9e1f0d2b4
Create Date: 2026-12-07 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "e4f2a6c8b1d3"
down_revision: str | None = "c3a9e1f0d2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("drivers") as batch:
        batch.add_column(sa.Column("hours_from", sa.Time(), nullable=True))
        batch.add_column(sa.Column("hours_until", sa.Time(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drivers") as batch:
        batch.drop_column("hours_until")
        batch.drop_column("hours_from")
