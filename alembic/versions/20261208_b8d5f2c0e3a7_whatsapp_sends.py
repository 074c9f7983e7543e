"""outbox: parts sent, template switch and receipts; sent_messages: each message a channel
accepted for a row (WhatsApp's wamid) with its receipts

Revision ID: b8d5f2c0e3a7
Revises: a7c4e1b9d2f6
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "b8d5f2c0e3a7"
down_revision: str | None = "a7c4e1b9d2f6"  # after wa-in's inbound_bodies
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("parts_sent", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("as_template", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("delivery_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("delivery_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch:  # the defaults were for the rows already there
        batch.alter_column("parts_sent", server_default=None)
        batch.alter_column("as_template", server_default=None)
    op.create_table(
        "sent_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_sent_messages_external"),
    )
    op.create_index("ix_sent_messages_outbox_id", "sent_messages", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_sent_messages_outbox_id", table_name="sent_messages")
    op.drop_table("sent_messages")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("delivery_at")
        batch.drop_column("delivery_status")
        batch.drop_column("as_template")
        batch.drop_column("parts_sent")
