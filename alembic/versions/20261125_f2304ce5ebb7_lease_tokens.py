"""lease tokens: who holds a claimed outbox message or webhook delivery

Revision ID: f2304ce5ebb7
Revises: 861eada0f2fa
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "f2304ce5ebb7"
down_revision: str | None = "861eada0f2fa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("outbox", "webhook_deliveries")


def upgrade() -> None:
    # rows in flight now have no token: their senders (stopped for the upgrade) lose them, and
    # they are claimed again when their lease runs out, as after a crash
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("lease_token")
