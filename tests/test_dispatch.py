"""Dispatch against a real database: batch, optimize, insertion, re-plans, locks and ETAs."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core.db import Database
from core.dispatch.planner import LATE_REPLAN_EVERY, Planner
from core.models import Depot, Driver, Order, OrderStatus, OutboxMessage, Role, RouteStop
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Actor, Window
from core.orders.service import OrderDraft
from core.routing.travel import StraightLine
from tests.factories import add_driver, add_member, move

S = OrderStatus
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
WEST, EAST = (52.52, 13.30), (52.52, 13.50)  # about 13.5 km apart
DISPATCHER = Actor("test-dispatcher")


def planner(db: Database, clock=lambda: NOW) -> Planner:
    return Planner(db, StraightLine(speed_kmh=36, detour=1.0), clock=clock)


async def on_shift(db: Database, name: str, chat: int, at: tuple[float, float], **fields) -> Driver:
    driver = await add_driver(db, name, chat)
    async with db.transaction() as session:
        saved = await session.get(Driver, driver.id)
        saved.shift_state = "on"
        saved.shift_started_at = NOW - timedelta(hours=1)
        saved.last_lat, saved.last_lon = at
        saved.last_seen_at = NOW - timedelta(minutes=1)
        for key, value in fields.items():
            setattr(saved, key, value)
        session.add(saved)
    return saved


async def place_driver(db: Database, driver_id: int, at: tuple[float, float]) -> None:
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id)
        driver.last_lat, driver.last_lon = at
        session.add(driver)


async def order_at(
    db: Database, ref: str, at: tuple[float, float], hours: tuple[float, float] = (9, 14), **extra
) -> Order:
    start, end = (NOW.replace(hour=0) + timedelta(hours=h) for h in hours)
    draft = OrderDraft(
        external_ref=ref,
        customer_name=f"Customer {ref}",
        address=f"{ref} street",
        lat=at[0],
        lon=at[1],
        windows=(Window(start, end),),
        proof_required="none",
        **extra,
    )
    return await orders.create_order(db, draft, SYSTEM, source="test")


def near(point: tuple[float, float], k: int) -> tuple[float, float]:
    return (point[0] + 0.004 * k, point[1] + 0.003 * ((k % 3) - 1))


async def driver_of(db: Database, order_id: int) -> int | None:
    async with db.sessions() as session:
        return (await session.get(Order, order_id)).driver_id


async def test_dispatch_day_assigns_everyone_and_saves_routes(db: Database):
    west = await on_shift(db, "Wanda West", 1, WEST)
    east = await on_shift(db, "Erik East", 2, EAST)
    west_orders = [await order_at(db, f"W{k}", near(WEST, k)) for k in range(1, 4)]
    east_orders = [await order_at(db, f"E{k}", near(EAST, k)) for k in range(1, 4)]
    report = await planner(db).dispatch_day(DISPATCHER)
    assert report.unassigned == {}
    assert sorted(a.order_id for a in report.assigned) == sorted(
        o.id for o in west_orders + east_orders
    )
    for order in west_orders:
        assert await driver_of(db, order.id) == west.id
    for order in east_orders:
        assert await driver_of(db, order.id) == east.id
    assert {a.driver for a in report.assigned} == {"Wanda", "Erik"}
    async with db.sessions() as session:
        stops = (await session.exec(select(RouteStop).order_by(RouteStop.id))).all()
        messages = (await session.exec(select(OutboxMessage))).all()
    assert len(stops) == 6
    by_route: dict[int, list[RouteStop]] = {}
    for stop in stops:
        by_route.setdefault(stop.route_id, []).append(stop)
    for route_stops in by_route.values():
        assert sorted(s.sequence for s in route_stops) == [0, 1, 2]
        ordered = sorted(route_stops, key=lambda s: s.sequence)
        etas = [s.eta for s in ordered]
        assert all(NOW <= a < b for a, b in itertools.pairwise(etas))
    assert sum(m.template == "driver.order_assigned" for m in messages) == 6


async def test_zones_capacity_and_skills(db: Database):
    await on_shift(db, "Wanda", 1, WEST, zones=["west"], capacity_kg=10)
    east = await on_shift(db, "Erik", 2, EAST, skills=["fridge"], capacity_kg=100)
    zoned = await order_at(db, "Z", near(WEST, 1), zone="east")
    cold = await order_at(db, "C", near(WEST, 2), required_skills=("fridge",))
    heavy = await order_at(db, "H", near(WEST, 3), weight_kg=150)
    nowhere = await orders.create_order(
        db, OrderDraft(customer_name="No Pin", address="somewhere"), SYSTEM, source="test"
    )
    medium = await order_at(db, "M", near(WEST, 4), weight_kg=20)
    report = await planner(db).dispatch_day(DISPATCHER)
    assert await driver_of(db, zoned.id) == east.id  # west covers only the west zone
    assert await driver_of(db, cold.id) == east.id  # only Erik has a fridge
    assert await driver_of(db, medium.id) == east.id  # 20 kg: too much for Wanda's 10 kg
    assert await driver_of(db, heavy.id) is None
    assert report.unassigned == {
        heavy.id: "it is bigger than every vehicle that could take it",
        nowhere.id: "its address has no map point yet; send a location pin or fix it",
    }


async def test_a_manual_assignment_wins_until_released(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    east = await on_shift(db, "Erik", 2, EAST)
    order = await order_at(db, "M", near(WEST, 1))
    service = planner(db)
    await service.assign_manually(order.id, east.id, DISPATCHER)
    await service.optimize(DISPATCHER)
    await service.dispatch_day(DISPATCHER)
    assert await driver_of(db, order.id) == east.id  # far, but the dispatcher said so
    await service.release(order.id, DISPATCHER)
    await service.optimize(DISPATCHER)
    assert await driver_of(db, order.id) == west.id
    async with db.sessions() as session:
        assert (await session.get(Order, order.id)).driver_locked is False


async def test_insertion_explains_and_alerts_when_nobody_can(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    await on_shift(db, "Erik", 2, EAST)
    boss = await add_member(db, "Dora", [Role.DISPATCHER], telegram_chat_id=99)
    first = await order_at(db, "A", near(WEST, 1))
    service = planner(db)
    await service.dispatch_day(DISPATCHER)
    new = await order_at(db, "B", near(WEST, 2))
    result = await service.insert_order(new.id, DISPATCHER)
    assert result.vehicle == str(west.id)
    assert result.reason.startswith("nearest feasible driver, +")
    assert await driver_of(db, new.id) == west.id
    async with db.sessions() as session:
        stops = (await session.exec(select(RouteStop))).all()
    assert {s.order_id for s in stops} == {first.id, new.id}

    hopeless = await order_at(db, "C", near(EAST, 5), hours=(8, 9))  # the window has closed
    result = await service.insert_order(hopeless.id, DISPATCHER)
    assert result.vehicle is None
    assert result.reason.startswith("no driver on shift can take it (Wanda: ")
    async with db.sessions() as session:
        saved = await session.get(Order, hopeless.id)
        alerts = (
            await session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.template == "dispatcher.order_unassignable"
                )
            )
        ).all()
    assert saved.status is S.NEW and saved.driver_id is None
    assert [(a.recipient_member_id, a.order_id) for a in alerts] == [(boss.id, hopeless.id)]
    assert 1 <= len(alerts[0].actions) <= 3


async def test_bad_requests_change_nothing(db: Database):
    await on_shift(db, "Wanda", 1, WEST)
    service = planner(db)
    with pytest.raises(Exception, match="is not waiting for a driver"):
        await service.insert_order(999, DISPATCHER)
    with pytest.raises(Exception, match="not on shift"):
        await service.replan_driver(999, DISPATCHER)


async def test_a_replan_never_moves_the_stop_she_is_driving_to(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    far = await order_at(db, "F", near(WEST, 8))
    close = [await order_at(db, f"N{k}", near(WEST, k)) for k in (1, 2)]
    service = planner(db)
    for order in (far, *close):
        await service.assign_manually(order.id, west.id, DISPATCHER)
    await move(db, far.id, S.OUT_FOR_DELIVERY)  # she set off to the far one first
    report = await service.replan_driver(west.id, DISPATCHER)
    assert report.unassigned == {}
    async with db.sessions() as session:
        stops = (await session.exec(select(RouteStop).order_by(RouteStop.sequence))).all()
    assert stops[0].order_id == far.id
    assert sorted(s.order_id for s in stops[1:]) == sorted(o.id for o in close)


async def test_etas_follow_the_moving_driver(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    target = (52.52, 13.40)  # about 6.8 km east of her: ~11 min at 36 km/h
    order = await order_at(db, "T", target)
    clock = [NOW]
    service = planner(db, clock=lambda: clock[0])
    await service.assign_manually(order.id, west.id, DISPATCHER)
    first = (await service.refresh_etas(west.id))[order.id]
    assert timedelta(minutes=10) < first.at - NOW < timedelta(minutes=13)
    assert await service.eta(order.id) == first.at  # saved on her open stop
    assert first.metres is not None and 6_600 < first.metres < 7_000  # straight line
    assert not first.heading and first.attempt == 0
    assert first.window_end == NOW.replace(hour=14)

    clock[0] = NOW + timedelta(minutes=8)
    async with db.transaction() as session:
        driver = await session.get(Driver, west.id)
        driver.last_lat, driver.last_lon = 52.52, 13.395  # ~340 m short of the door
        driver.last_seen_at = clock[0]
        session.add(driver)
    second = (await service.refresh_etas(west.id))[order.id]
    assert clock[0] < second.at < clock[0] + timedelta(minutes=1)
    assert second.metres is not None and 300 < second.metres < 400


async def test_optimize_reports_what_it_saves(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST, depot_id=None)
    points = [near(WEST, k) for k in (6, 1, 5, 2, 4, 3)]  # zig-zag as entered
    made = [await order_at(db, f"Z{k}", p) for k, p in enumerate(points)]
    service = planner(db)
    for order in made:
        await service.assign_manually(order.id, west.id, DISPATCHER)
    async with db.transaction() as session:  # the current plan: the order they came in
        position = {order.id: sequence for sequence, order in enumerate(made)}
        for stop in (await session.exec(select(RouteStop))).all():
            stop.sequence = position[stop.order_id]
            session.add(stop)
    report = await service.optimize(DISPATCHER)
    assert report.before is not None and report.after is not None
    assert report.seconds_saved > 0 and report.metres_saved > 0
    assert report.after.duration < report.before.duration


async def test_a_depot_start_is_used_without_a_live_position(db: Database):
    async with db.transaction() as session:
        depot = Depot(name="Hub", lat=WEST[0], lon=WEST[1])
        session.add(depot)
    driver = await on_shift(db, "Wanda", 1, WEST, depot_id=depot.id, last_seen_at=None)
    order = await order_at(db, "D", near(WEST, 2))
    report = await planner(db).dispatch_day(DISPATCHER)
    assert [a.order_id for a in report.assigned] == [order.id]
    assert await driver_of(db, order.id) == driver.id


async def test_no_database_lock_is_held_while_travel_times_are_fetched(db: Database):
    await on_shift(db, "Wanda", 1, WEST)
    await order_at(db, "L", near(WEST, 1))
    straight = StraightLine(speed_kmh=36, detour=1.0)

    class WritesWhileAsked:
        name = "writes-while-asked"

        async def matrix(self, sources, destinations, depart_at):
            # A slow HTTP call to OSRM stands here; meanwhile others must be able to write.
            async with db.transaction() as session:
                session.add(Depot(name="written meanwhile", lat=52.5, lon=13.4))
            return await straight.matrix(sources, destinations, depart_at)

    service = Planner(db, WritesWhileAsked(), clock=lambda: NOW)
    report = await asyncio.wait_for(service.dispatch_day(DISPATCHER), timeout=8)
    assert len(report.assigned) == 1
    async with db.sessions() as session:
        names = [d.name for d in (await session.exec(select(Depot))).all()]
    assert names == ["written meanwhile"]


async def test_a_ping_that_shows_a_delay_re_plans_the_route(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    relaxed = await order_at(db, "R", near(WEST, 2), hours=(9, 14))
    urgent = await order_at(db, "U", near(WEST, 3), hours=(9, 9.4))  # due by 09:24
    moment = [NOW]
    service = planner(db, clock=lambda: moment[0])
    for order in (relaxed, urgent):
        await service.assign_manually(order.id, west.id, DISPATCHER)
    async with db.transaction() as session:  # a plan gone stale: the urgent one second, late
        for stop in (await session.exec(select(RouteStop))).all():
            stop.sequence = 0 if stop.order_id == relaxed.id else 1
            session.add(stop)
    await place_driver(db, west.id, (52.525, 13.485))  # ~12.5 km out: ~21 min away
    before = await service.refresh_etas(west.id)
    assert before[urgent.id].at > NOW.replace(minute=24)  # late in this order
    after = await service.on_location(west.id, DISPATCHER)
    assert after[urgent.id].at <= NOW.replace(minute=24) < after[relaxed.id].at  # on time now
    async with db.sessions() as session:
        stops = (await session.exec(select(RouteStop).order_by(RouteStop.sequence))).all()
    assert [s.order_id for s in stops] == [urgent.id, relaxed.id]

    # stale again at once: not re-planned before LATE_REPLAN_EVERY has passed on the clock
    async with db.transaction() as session:
        for stop in (await session.exec(select(RouteStop))).all():
            stop.sequence = 0 if stop.order_id == relaxed.id else 1
            session.add(stop)
    again = await service.on_location(west.id, DISPATCHER)
    assert again[urgent.id].at > NOW.replace(minute=24)  # left as it is, late
    moment[0] = NOW + LATE_REPLAN_EVERY
    await place_driver(db, west.id, (52.53, 13.385))  # ~6 km out: urgent first is on time
    after = await service.on_location(west.id, DISPATCHER)
    assert after[urgent.id].at <= NOW.replace(minute=24) < after[relaxed.id].at  # re-planned


async def test_a_stop_that_cannot_be_on_time_stays_on_the_route(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    relaxed = await order_at(db, "R", near(WEST, 2), hours=(9, 14))
    urgent = await order_at(db, "U", near(WEST, 3), hours=(9, 9.2))  # due by 09:12
    service = planner(db)
    for order in (relaxed, urgent):
        await service.assign_manually(order.id, west.id, DISPATCHER)
    await place_driver(db, west.id, (52.525, 13.485))  # 21 min away: 09:12 is lost anyway
    etas = await service.on_location(west.id, DISPATCHER)
    assert set(etas) == {relaxed.id, urgent.id}  # both still hers, both with an ETA
    assert etas[relaxed.id].at < etas[urgent.id].at  # the one that can be on time goes first
    async with db.sessions() as session:
        assert {(await session.get(Order, o.id)).driver_id for o in (relaxed, urgent)} == {west.id}
