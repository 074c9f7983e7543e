"""reports: shifts (every spell a driver is on shift), routes.planned_drive_s, and indexes
for reading a day (orders, windows, events and pings by time)

Revision ID: 7d3e5b1a9c42
Revises: 5a1c0d7e9b21
Create Date: 2026-12-07 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "7d3e5b1a9c42"
down_revision: str | None = "5a1c0d7e9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
TIMES = (
    ("orders", "created_at"),
    ("order_windows", "starts_at"),
    ("order_events", "created_at"),
    ("location_pings", "recorded_at"),
)


def upgrade() -> None:
    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["driver_id"], ["drivers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_shifts_driver_started", "shifts", ["driver_id", "started_at"])
    op.create_index("ix_shifts_ended_at", "shifts", ["ended_at"])
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("planned_drive_s", sa.Integer(), nullable=True))
    for table, column in TIMES:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in TIMES:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("planned_drive_s")
    op.drop_index("ix_shifts_ended_at", table_name="shifts")
    op.drop_index("ix_shifts_driver_started", table_name="shifts")
    op.drop_table("shifts")
