"""Pings into "driver nearby" for customers and "order at risk" for dispatchers, once each."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from core.bootstrap import Services
from core.clock import FixedClock, system_clock
from core.config import Settings
from core.db import Database
from core.drivers.positions import ETA_EVERY_S, ETA_PACE_S, Fix
from core.models import (
    Customer,
    Driver,
    Member,
    OrderStatus,
    OutboxMessage,
    Role,
    ShiftState,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change, Window
from core.orders.service import OrderDraft
from core.people.members import grant

S = OrderStatus


async def setup(db: Database, *, window_minutes: int, clock: FixedClock | None = None):
    async with db.transaction() as session:
        people = {}
        for name, role in (("Ana", Role.DRIVER), ("Cy", Role.CUSTOMER), ("Bo", Role.DISPATCHER)):
            member = Member(name=name, telegram_chat_id=len(people) + 1)
            session.add(member)
            await session.flush()
            await grant(session, member, role)
            people[name] = member
        driver = (await session.exec(select(Driver))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
        session.add(driver)
    now = system_clock()
    window = Window(now - timedelta(hours=1), now + timedelta(minutes=window_minutes))
    draft = OrderDraft(customer_name="Cy", address="Door 1", lat=52.5200, lon=13.4050,
                       windows=(window,))  # fmt: skip
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    async with db.transaction() as session:
        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        customer.member_id = people["Cy"].id
        session.add(customer)
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY):
        await orders.change_status(db, order.id, target, SYSTEM, Change(driver_id=driver.id))
    services = Services.build(Settings(_env_file=None), db, clock=clock)  # type: ignore[call-arg]
    return services, driver, order


async def templates(db: Database) -> list[str]:
    async with db.sessions() as session:
        rows = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return [row.template for row in rows]


async def test_driver_nearby_is_told_once_per_attempt(db: Database):
    services, driver, _ = await setup(db, window_minutes=120)
    positions = services.positions
    await positions.ping(driver.id, Fix(52.5500, 13.4050, system_clock(), live=True))  # ~3.3 km
    await positions.drain()
    assert "customer.driver_nearby" not in await templates(db)
    etas = await services.planner.refresh_etas(driver.id)
    assert await positions.notify_nearby(etas) == []

    await positions.ping(driver.id, Fix(52.5215, 13.4050, system_clock(), live=True))  # ~170 m
    etas = await services.planner.refresh_etas(driver.id)  # (the ping's own is throttled)
    assert await positions.notify_nearby(etas) != []
    assert await positions.notify_nearby(etas) == []  # not twice in one attempt
    assert (await templates(db)).count("customer.driver_nearby") == 1
    await services.close()


async def test_etas_follow_pings_on_the_service_clock_not_the_wall_clock(db: Database):
    """ETAs are refreshed at most every ETA_EVERY_S of the service's time (and once a real
    second). Before, it was every 30 real seconds: 90 simulated minutes on the demo's clock, so
    its customers rarely heard "nearby"."""
    clock = FixedClock(system_clock())
    services, driver, _ = await setup(db, window_minutes=120, clock=clock)
    positions = services.positions
    await positions.ping(driver.id, Fix(52.5500, 13.4050, clock(), live=True))  # ~3.3 km
    await positions.drain()
    await asyncio.sleep(ETA_PACE_S)  # (and at most once a real second)
    clock.advance(timedelta(seconds=ETA_EVERY_S / 3))
    await positions.ping(driver.id, Fix(52.5215, 13.4050, clock(), live=True))  # ~170 m, too soon
    await positions.drain()
    assert "customer.driver_nearby" not in await templates(db)
    await asyncio.sleep(ETA_PACE_S)
    clock.advance(timedelta(seconds=ETA_EVERY_S))
    await positions.ping(driver.id, Fix(52.5214, 13.4050, clock(), live=True))
    await positions.drain()
    assert (await templates(db)).count("customer.driver_nearby") == 1
    await services.close()


async def test_nearby_goes_by_the_eta_computed_for_the_ping_itself(db: Database):
    """~1.1 km away is 3.4 minutes at the default travel model: within TRACKING_NEARBY_MINUTES
    (5). Before, it re-read the ETA from the order's saved route stop, which an order
    sent out without a saved route has not, so only the 300 m straight-line rule could fire."""
    services, driver, order = await setup(db, window_minutes=120)
    await services.positions.ping(driver.id, Fix(52.5300, 13.4050, system_clock(), live=True))
    await services.positions.drain()
    assert (await templates(db)).count("customer.driver_nearby") == 1
    assert await services.planner.eta(order.id) is None  # no saved stop to read one from
    await services.close()


async def test_an_order_predicted_after_its_window_alerts_dispatchers_once(db: Database):
    services, driver, order = await setup(db, window_minutes=1)
    positions = services.positions
    await positions.ping(driver.id, Fix(52.62, 13.40, system_clock(), live=True))  # ~11 km: too far
    await positions.drain()
    assert (await templates(db)).count("dispatcher.order_at_risk") == 1
    etas = await services.planner.refresh_etas(driver.id)
    assert etas[order.id].at > system_clock() + timedelta(minutes=1)
    assert await positions.alert_at_risk(etas) == []  # once per attempt
    await services.close()
