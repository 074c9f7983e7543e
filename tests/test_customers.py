"""One phone number is one customer, however orders arrive at once (chat, CSV, API batch), and
the migration that made it so merges the customers made before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.config import normalize_database_url
from core.db import Database
from core.merchants import apikeys
from core.migrations import upgrade
from core.models import Customer, Order
from core.models.types import JSON, UTCDateTime
from core.orders import service as orders
from core.orders.imports import import_orders
from core.orders.lifecycle import SYSTEM
from core.orders.service import OrderDraft
from core.people.customers import find_or_add_customer
from tests.conftest import BACKENDS, POSTGRES_URL, scratch_postgres, sqlite_url
from tests.factories import count

PHONES = ["+4915130000001", "+4915130000002", "+4915130000003"]
CSV = "external_ref,customer_name,address,customer_phone\n" + "".join(
    f"CSV-{n},Cy,Door {n},{PHONES[n % 3]}\n" for n in range(12)
)


def draft(n: int, ref: str | None = None) -> OrderDraft:
    return OrderDraft(
        external_ref=ref, customer_name="Cy", customer_phone=PHONES[n % 3], address=f"Door {n}"
    )


async def test_orders_arriving_every_way_at_once_share_one_customer_per_phone(db: Database):
    key, _ = await apikeys.create_key(db, "shop")
    batch = [(n, draft(n, f"API-{n}")) for n in range(12)]
    await asyncio.gather(
        *(orders.create_order(db, draft(n), SYSTEM, source="chat") for n in range(12)),
        *(import_orders(db, CSV, SYSTEM, timezone="UTC") for _ in range(2)),
        apikeys.create_orders(db, key, batch),
        apikeys.create_orders(db, key, batch[::-1]),
    )
    async with db.reads() as session:
        customers = (await session.exec(select(Customer.phone, Customer.id))).all()
        owners = (await session.exec(select(Customer.phone).join(Order))).all()
    assert sorted(phone for phone, _ in customers) == PHONES
    assert len(owners) == 12 + 12 + 12  # chat, CSV (once), API (once)


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_url(tmp_path / "old.db")
        return
    assert POSTGRES_URL is not None
    async with scratch_postgres(normalize_database_url(POSTGRES_URL)) as url:
        yield normalize_database_url(url)


TYPES = {"created_at": UTCDateTime(), "updated_at": UTCDateTime(), "required_skills": JSON}
ORDER_ROW = {
    "kind": "delivery", "address": "Door", "service_minutes": 5, "notes": "", "priority": 0,
    "required_skills": [], "proof_required": "photo", "status": "new", "attempts": 0,
    "source": "api", "driver_locked": False,
}  # fmt: skip
# (id, name, phone, member, language): Ana three times (the oldest stays; the newest chat link
# and language win), Bo once, and three without a phone (two with an empty one)
OLD_CUSTOMERS = [
    (10, "Ana", "+4915112345678", None, None),
    (11, "Ana L", "+4915112345678", 1, "de"),
    (12, "Ana", "+4915112345678", 2, None),
    (20, "Bo", "+4915187654321", None, "en"),
    (30, "Cy", None, None, None),
    (31, "Cy", "", None, None),
    (32, "Di", "", None, None),
]
OWNERS = {1: 10, 2: 11, 3: 12, 4: 12, 5: 20, 6: 31, 7: 32}  # order → customer


def at(minute: int) -> datetime:
    return datetime(2026, 11, 20, 9, minute, tzinfo=UTC)


def rows(table: str, items: list[dict[str, Any]]) -> tuple[sa.TableClause, list[dict[str, Any]]]:
    """An insert of `items` naming only their columns: the models may have more by now."""
    columns = (sa.column(name, TYPES.get(name)) for name in items[0])
    return sa.table(table, *columns), items


async def old_data(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            for table, items in (
                rows("members", [
                    {"id": n, "name": f"M{n}", "language": "en", "active": True,
                     "created_at": at(0)} for n in (1, 2)
                ]),
                rows("customers", [
                    {"id": id_, "name": name, "phone": phone, "member_id": member,
                     "language": language, "created_at": at(n)}
                    for n, (id_, name, phone, member, language) in enumerate(OLD_CUSTOMERS)
                ]),
                rows("orders", [
                    {**ORDER_ROW, "id": n, "customer_id": customer, "tracking_token": f"t-{n}",
                     "created_at": at(9), "updated_at": at(9)}
                    for n, customer in OWNERS.items()
                ]),
            ):  # fmt: skip
                await connection.execute(sa.insert(table), items)
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_migration_merges_the_customers_of_one_phone(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url, "6c8f8485384b")  # the revision before
        await old_data(url)
        await upgrade(url)
        db = Database(url)
        try:
            async with db.reads() as session:
                customers = {
                    c.id: (c.name, c.phone, c.member_id, c.language)
                    for c in (await session.exec(select(Customer))).all()
                }
                owners = dict((await session.exec(select(Order.id, Order.customer_id))).all())
            assert customers == {
                10: ("Ana", "+4915112345678", 2, "de"),
                20: ("Bo", "+4915187654321", None, "en"),
                30: ("Cy", None, None, None),
                31: ("Cy", None, None, None),
                32: ("Di", None, None, None),
            }
            assert owners == {1: 10, 2: 10, 3: 10, 4: 10, 5: 20, 6: 31, 7: 32}
            async with db.transaction() as session:  # found, not added again
                await find_or_add_customer(session, "Ana", "+4915112345678")
            assert await count(db, Customer) == 5
            with pytest.raises(sa.exc.IntegrityError):  # and the phone is unique now
                async with db.transaction() as session:
                    session.add(Customer(name="Twin", phone="+4915187654321"))
        finally:
            await db.dispose()
