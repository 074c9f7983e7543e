"""signature pad: web_links (signed, revocable links to staff web views), init_data_uses (Mini
App initData already acted on), proofs' SVG hash and the pad's idempotency key

Revision ID: c3e9a1f4b7d2
Revises: b8d5f2c0e3a7
Create Date: 2026-12-08 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "c3e9a1f4b7d2"
down_revision: str | None = "b8d5f2c0e3a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column(
            "member_id",
            sa.Integer(),
            sa.ForeignKey("members.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("orders.id"), nullable=True),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_web_links_member_id", "web_links", ["member_id"])
    op.create_index("ix_web_links_order_id", "web_links", ["order_id"])
    op.create_table(
        "init_data_uses",
        sa.Column("hash", sa.String(length=64), primary_key=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("proofs") as batch:
        batch.add_column(sa.Column("signature_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_proofs_idempotency", ["order_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("proofs") as batch:
        batch.drop_constraint("uq_proofs_idempotency", type_="unique")
        batch.drop_column("idempotency_key")
        batch.drop_column("signature_sha256")
    op.drop_table("init_data_uses")
    op.drop_index("ix_web_links_order_id", table_name="web_links")
    op.drop_index("ix_web_links_member_id", table_name="web_links")
    op.drop_table("web_links")
