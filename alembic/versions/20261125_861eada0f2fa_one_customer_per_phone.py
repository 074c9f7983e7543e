"""one customer per phone

Orders created at once for one new phone number each made a customer. Duplicates are merged
into the oldest customer of that phone: its orders move there, and it keeps the newest chat
link and language among them (later ones replace earlier ones, as they do for one customer).
An empty phone is no phone. Then the phone becomes unique.

Revision ID: 861eada0f2fa
Revises: 6c8f8485384b
Create Date: 2026-11-25 12:00:00.000000
"""

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa

from alembic import op

revision: str = "861eada0f2fa"
down_revision: str | None = "6c8f8485384b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

customers = sa.table(
    "customers",
    sa.column("id", sa.Integer),
    sa.column("phone", sa.String),
    sa.column("member_id", sa.Integer),
    sa.column("language", sa.String),
    sa.column("created_at", sa.DateTime),
)
orders = sa.table("orders", sa.column("customer_id", sa.Integer))


def merge_duplicates(bind: sa.Connection) -> None:
    bind.execute(customers.update().where(customers.c.phone == "").values(phone=None))
    shared = (
        sa.select(customers.c.phone)
        .where(customers.c.phone.is_not(None))
        .group_by(customers.c.phone)
        .having(sa.func.count() > 1)
    )
    rows = bind.execute(
        sa.select(customers.c.id, customers.c.phone, customers.c.member_id, customers.c.language)
        .where(customers.c.phone.in_(shared))
        .order_by(customers.c.phone, customers.c.created_at, customers.c.id)
    ).all()
    for _, group in groupby(rows, key=lambda row: row.phone):
        keep, *others = list(group)
        newest = [keep, *others][::-1]
        member = next((row.member_id for row in newest if row.member_id is not None), None)
        language = next((row.language for row in newest if row.language), None)
        dropped = [row.id for row in others]
        bind.execute(
            orders.update().where(orders.c.customer_id.in_(dropped)).values(customer_id=keep.id)
        )
        bind.execute(customers.delete().where(customers.c.id.in_(dropped)))
        bind.execute(
            customers.update()
            .where(customers.c.id == keep.id)
            .values(member_id=member, language=language)
        )


def upgrade() -> None:
    merge_duplicates(op.get_bind())
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_phone"))
        batch_op.create_index(batch_op.f("ix_customers_phone"), ["phone"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_phone"))
        batch_op.create_index(batch_op.f("ix_customers_phone"), ["phone"], unique=False)
