"""inbound_bodies and inbound_seen: WhatsApp webhook bodies stored before they are answered,
processed once under a lease; members.reach_channel: where a person with several chats is reached

Revision ID: a7c4e1b9d2f6
Revises: f0b3d7a1c5e2
Create Date: 2026-12-08 00:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "a7c4e1b9d2f6"
down_revision: str | None = "f0b3d7a1c5e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_bodies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", STAMP, nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("received_at", STAMP, nullable=False),
        sa.Column("processed_at", STAMP, nullable=True),
        sa.UniqueConstraint("channel", "body_sha256", name="uq_inbound_bodies_hash"),
    )
    op.create_index("ix_inbound_bodies_due", "inbound_bodies", ["status", "next_attempt_at"])
    op.create_table(
        "inbound_seen",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column(
            "body_id",
            sa.Integer(),
            sa.ForeignKey("inbound_bodies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_index("ix_inbound_seen_body_id", "inbound_seen", ["body_id"])
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("reach_channel", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("reach_channel")
    op.drop_index("ix_inbound_seen_body_id", table_name="inbound_seen")
    op.drop_table("inbound_seen")
    op.drop_index("ix_inbound_bodies_due", table_name="inbound_bodies")
    op.drop_table("inbound_bodies")
