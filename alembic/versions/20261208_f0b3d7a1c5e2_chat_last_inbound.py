"""chat_identities: when the person last wrote to us on that channel (WhatsApp's 24-hour window)

Revision ID: f0b3d7a1c5e2
Revises: e4f2a6c8b1d3
Create Date: 2026-12-08 00:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "f0b3d7a1c5e2"
down_revision: str | None = "e4f2a6c8b1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_identities") as batch:
        batch.add_column(sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_identities") as batch:
        batch.drop_column("last_inbound_at")
