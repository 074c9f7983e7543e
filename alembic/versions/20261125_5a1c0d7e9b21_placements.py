"""placements: orders waiting for the autopilot to put them on a route

Revision ID: 5a1c0d7e9b21
Revises: 5c1e0a7d2b94
Create Date: 2026-11-25 17:00:00

Orders that wait for a driver when this runs (new, rescheduled) get a row, due at once: with
DISPATCH_MODE=auto the service places them when it starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5a1c0d7e9b21"
down_revision: str | None = "5c1e0a7d2b94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parked", sa.Boolean(), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.execute(
        "INSERT INTO placements (order_id, parked, alerted, created_at) "
        "SELECT id, false, false, CURRENT_TIMESTAMP FROM orders "
        "WHERE status IN ('new', 'rescheduled')"
    )


def downgrade() -> None:
    op.drop_table("placements")
