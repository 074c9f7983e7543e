"""The live feed behind open tracking pages: it reports every order event and driver position
once, even when a row with a lower id commits after one with a higher id (PostgreSQL takes ids
from a sequence before commit), and it wakes the pages of the orders concerned."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database, is_sqlite
from core.drivers import positions
from core.models import Driver, LocationPing, Member, OrderEvent, OrderStatus, Role
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft
from core.people.members import grant
from core.tracking.live import LiveFeed

S = OrderStatus


async def day(db: Database) -> tuple[int, int, int]:
    """Driver Ana with order `a` out for delivery, and order `b` still new."""
    async with db.transaction() as session:
        member = Member(name="Ana Lopez")
        session.add(member)
        await session.flush()
        await grant(session, member, Role.DRIVER)
        driver = (await session.exec(select(Driver))).one()
    ids = []
    for name in ("Cy", "Di"):
        draft = OrderDraft(customer_name=name, address="Door 1", lat=52.52, lon=13.405)
        ids.append((await orders.create_order(db, draft, SYSTEM, source="test")).id)
    await orders.change_status(db, ids[0], S.ASSIGNED, SYSTEM, Change(driver_id=driver.id))
    await orders.change_status(db, ids[0], S.OUT_FOR_DELIVERY, SYSTEM)
    assert driver.id is not None
    return ids[0], ids[1], driver.id


def event(order_id: int, **explicit: Any) -> sa.Insert:
    values = dict(order_id=order_id, kind="note", actor="test", data={}, created_at=system_clock())
    return sa.insert(OrderEvent).values(**values, **explicit)


def ping(driver_id: int, **explicit: Any) -> sa.Insert:
    values = dict(driver_id=driver_id, lat=52.53, lon=13.41, live=True, recorded_at=system_clock())
    return sa.insert(LocationPing).values(**values, received_at=system_clock(), **explicit)


async def last_id(db: Database, column: Any) -> int:
    async with db.reads() as session:
        return (await session.exec(select(sa.func.max(column)))).one() or 0


async def test_an_event_committed_after_a_later_one_is_still_reported(db: Database):
    """Transaction A takes an id, B takes the next and commits first: a poll between the two
    commits sees only B's; A's must come with a later poll, not be skipped for ever."""
    if is_sqlite(db.url):
        pytest.skip("SQLite has one writer at a time: ids commit in order (see the next test)")
    a, b, _ = await day(db)
    feed = LiveFeed(db)
    await feed.changes()  # everything so far
    async with db.engine.connect() as first:
        await first.execute(event(a))  # A: the lower id, not committed yet
        async with db.transaction() as second:
            await second.exec(event(b))  # B: the higher id, committed
        assert await feed.changes() == {b}
        await first.commit()
    assert await feed.changes() == {a}
    assert await feed.changes() == set()  # and each once


async def test_a_position_committed_after_a_later_one_is_still_reported(db: Database):
    if is_sqlite(db.url):
        pytest.skip("SQLite has one writer at a time: ids commit in order (see the next test)")
    a, b, driver = await day(db)
    async with db.transaction() as session:
        other = Member(name="Bo")
        session.add(other)
        await session.flush()
        await grant(session, other, Role.DRIVER)
        bo = (await session.exec(select(Driver.id).where(Driver.member_id == other.id))).one()
    await orders.change_status(db, b, S.ASSIGNED, SYSTEM, Change(driver_id=bo))
    await orders.change_status(db, b, S.OUT_FOR_DELIVERY, SYSTEM)
    feed = LiveFeed(db)
    await feed.changes()
    async with db.engine.connect() as first:
        await first.execute(ping(driver))  # Ana's position: the lower id, not committed yet
        await positions.record(db, bo, positions.Fix(52.53, 13.41, system_clock(), live=True))
        assert await feed.changes() == {b}
        await first.commit()
    assert await feed.changes() == {a}


async def test_rows_that_appear_below_the_highest_id_seen_are_reported(db: Database):
    """The same skip written with explicit ids, so that it runs on SQLite as well: the row with
    the lower id appears only after the feed has seen a higher one."""
    a, b, driver = await day(db)
    feed = LiveFeed(db)
    await feed.changes()
    top = await last_id(db, col(OrderEvent.id))
    async with db.transaction() as session:
        await session.exec(event(b, id=top + 2))
    assert await feed.changes() == {b}
    async with db.transaction() as session:
        await session.exec(event(a, id=top + 1))
    assert await feed.changes() == {a}

    top = await last_id(db, col(LocationPing.id))
    async with db.transaction() as session:
        await session.exec(ping(driver, id=top + 3))
    assert await feed.changes() == {a}  # Ana's order out for delivery, not `b`
    async with db.transaction() as session:
        await session.exec(ping(driver, id=top + 1))
    assert await feed.changes() == {a}
    assert await feed.changes() == set()


async def test_an_id_that_never_commits_is_given_up_after_the_grace_period(db: Database):
    a, _, _ = await day(db)
    feed = LiveFeed(db, grace_s=0.0)
    await feed.changes()
    top = await last_id(db, col(OrderEvent.id))
    async with db.transaction() as session:
        await session.exec(event(a, id=top + 2))  # top + 1 never comes (rolled back)
    assert await feed.changes() == {a}
    assert feed.events.gaps  # asked for again at the next poll, which is past the grace period
    assert await feed.changes() == set()
    assert feed.events.gaps == {}  # and then no more


async def test_a_change_wakes_the_pages_of_that_order_only(db: Database):
    a, b, driver = await day(db)
    feed = LiveFeed(db, every_s=0.05)
    try:
        async with feed.watch(a) as page_a, feed.watch(a) as also_a, feed.watch(b) as page_b:
            fix = positions.Fix(52.521, 13.405, system_clock(), live=True)
            await positions.record(db, driver, fix)
            await asyncio.wait_for(page_a.get(), 10)  # a bound, not a measurement
            await asyncio.wait_for(also_a.get(), 10)
            assert page_b.empty()
            await orders.change_status(db, b, S.CANCELLED, SYSTEM)
            await asyncio.wait_for(page_b.get(), 10)
        assert not feed.pages  # closed pages are forgotten
    finally:
        await feed.close()
