"""`db.retrying`: a transaction PostgreSQL gives up to break a deadlock runs again."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from core.db import Database, retrying
from core.models import Customer
from tests.conftest import POSTGRES_URL


@pytest.mark.skipif(not POSTGRES_URL, reason="SQLite has one writer at a time: no deadlocks")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_deadlocked_transaction_runs_again(db: Database):
    async with db.transaction() as session:
        first, second = Customer(name="A"), Customer(name="B")
        session.add_all([first, second])
    both_hold_one = asyncio.Barrier(2)
    attempts = {"forward": 0, "backward": 0}

    async def rename(label: str, ids: list[int | None]) -> None:
        async def work() -> None:
            attempts[label] += 1
            async with db.transaction() as session:
                for n, customer_id in enumerate(ids):
                    customer = await session.get(Customer, customer_id, with_for_update=True)
                    assert customer is not None
                    customer.name = f"{customer.name}+{label}"
                    session.add(customer)
                    await session.flush()
                    if n == 0 and attempts[label] == 1:
                        await both_hold_one.wait()  # each holds one row and wants the other

        await retrying(work)

    await asyncio.gather(
        rename("forward", [first.id, second.id]), rename("backward", [second.id, first.id])
    )
    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL broke the deadlock; it ran again
    async with db.reads() as session:
        names = sorted((await session.exec(select(Customer.name))).all())
    assert all(name.count("+") == 2 for name in names), names
