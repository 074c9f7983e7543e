"""chat identities of other channels, conversation state per chat

Revision ID: c3a9e1f0d2b4
Revises: b7e2c4a91d3f
Create Date: 2026-12-07 18:00:00

`chat_identities`: a member's chat on a channel other than Telegram (the sandbox, later
WhatsApp). Telegram identities stay on `members.telegram_*`, so no row moves.
`conversation_states`: where a chat is in a multi-step conversation, until it expires (used when
no Redis is configured).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "c3a9e1f0d2b4"
down_revision: str | None = "b7e2c4a91d3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "chat_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_chat_identities_external"),
    )
    op.create_index("ix_chat_identities_member_id", "chat_identities", ["member_id"])
    op.create_table(
        "conversation_states",
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id"),
    )


def downgrade() -> None:
    op.drop_table("conversation_states")
    op.drop_index("ix_chat_identities_member_id", table_name="chat_identities")
    op.drop_table("chat_identities")
