"""reports off per member, open exception alerts

Revision ID: b7e2c4a91d3f
Revises: 7d3e5b1a9c42
Create Date: 2026-12-07 15:00:00

`members.reports_off`: an owner who switched the pushed reports off (everyone starts on).
`open_alerts`: the dispatcher alerts whose condition still holds, one per kind and subject.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "b7e2c4a91d3f"
down_revision: str | None = "7d3e5b1a9c42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN (SQLite has it): a batch would copy `members`, and dropping the old
    # copy fails while other tables' rows refer to it
    op.add_column(
        "members",
        sa.Column("reports_off", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "open_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subject", name="uq_open_alerts_kind_subject"),
    )


def downgrade() -> None:
    op.drop_table("open_alerts")
    op.drop_column("members", "reports_off")  # SQLite 3.35 and later drop a column in place
