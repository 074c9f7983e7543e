"""parcels on board

Revision ID: 3f1c2a9b7d10
Revises: 87b5056278fb
Create Date: 2026-11-25 17:30:00

`orders.loaded_at`: when the parcel left the depot in its driver's van. Re-plans may re-sequence
such a parcel but never give it to another driver.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "3f1c2a9b7d10"
down_revision: str | None = "87b5056278fb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("loaded_at")
