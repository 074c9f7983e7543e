"""When a driver's stretch of work began, as a re-plan made mid-day sees it (her rest is due
ROUTING_BREAK_AFTER_HOURS later): her shift start, a gap between two of her stops as long as the
rest (beyond the drive), or a wait at her next stop long enough before its window opens. Read
from the order events in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from core.db import Database
from core.models import Depot, Driver, Order, OrderEvent, OrderStatus, PlannedBreak, RouteStop
from core.routing.check import simulate
from core.routing.travel import Point, haversine_m
from tests.test_dispatch import DISPATCHER, WEST, near, on_shift, order_at, planner

S = OrderStatus
CLOSE = timedelta(seconds=2)
FIVE = timedelta(minutes=5)


def leg(a: int, b: int) -> timedelta:
    """near(WEST, a) to near(WEST, b) at the dispatcher's 10 m/s, straight."""
    metres = haversine_m([Point(*near(WEST, a))], [Point(*near(WEST, b))])[0, 0]
    return timedelta(seconds=float(metres) / 10)


def at(hour: float) -> datetime:
    return datetime(2026, 11, 24, tzinfo=UTC) + timedelta(hours=hour)


async def day_so_far(
    db: Database, b_arrives: datetime, c_opens: float = 12.0, tapped: timedelta = FIVE
) -> int:
    """A driver on shift since 07:00 from a depot at WEST: stop A (near 1) done 07:30–07:35, stop
    B (near 2) from `b_arrives` for 5 minutes (each stop's service time); she taps Delivered
    `tapped` after Arrived; now, 12:00, she stands at stop C (near 3), whose window opens at
    `c_opens`. Her driver id."""
    async with db.transaction() as session:
        depot = Depot(name="West", lat=WEST[0], lon=WEST[1])
        session.add(depot)
        await session.flush()
    driver = await on_shift(db, "Wanda", 1, near(WEST, 3), depot_id=depot.id,
                            shift_started_at=at(7), last_seen_at=at(12) - CLOSE)  # fmt: skip
    for ref, k, arrived in (("A", 1, at(7.5)), ("B", 2, b_arrives)):
        order = await order_at(db, ref, near(WEST, k), hours=(7, 18))
        async with db.transaction() as session:
            row = await session.get(Order, order.id)
            row.status, row.driver_id = S.DELIVERED, driver.id
            session.add(row)
            for status, when in ((S.ARRIVED, arrived), (S.DELIVERED, arrived + tapped)):
                session.add(OrderEvent(order_id=order.id, kind="status_changed", to_status=status,
                                       actor="test", created_at=when))  # fmt: skip
    head = await order_at(db, "C", near(WEST, 3), hours=(c_opens, 18))
    async with db.transaction() as session:
        row = await session.get(Order, head.id)
        row.status, row.driver_id = S.ASSIGNED, driver.id
        session.add(row)
    return driver.id


async def work_began(db: Database, driver_id: int) -> datetime:
    world = await planner(db, clock=lambda: at(12)).world()
    vehicle = world.problem.vehicle_by_id[str(driver_id)]
    assert vehicle.start is not None and vehicle.rested is not None  # on the road, at work
    return world.epoch + timedelta(seconds=vehicle.rested)


@pytest.mark.parametrize(
    ("b_arrives", "began"),
    [
        (at(7.5) + FIVE + leg(1, 2) + timedelta(minutes=29), at(7)),  # 29 min: no rest
        (at(9), at(9) - leg(1, 2)),  # 85 min from A to B: she rested, and set off a drive before B
    ],
    ids=["gap_shorter_than_a_rest", "gap_of_a_rest"],
)
async def test_a_gap_between_two_stops_as_long_as_the_rest_is_one(db, b_arrives, began):
    driver_id = await day_so_far(db, b_arrives)
    assert abs(await work_began(db, driver_id) - began) <= CLOSE


async def test_the_service_time_of_a_stop_is_no_rest_when_she_taps_delivered_on_arrival(
    db: Database,
):
    """She taps Arrived and Delivered at once, then spends the stop's 5 minutes of service
    there: from A's taps to B, 29 minutes beyond the drive and the service are no rest (counted
    as one, her break was never planned and the checker, which times the service, found her
    half an hour late after 4.5 h of work)."""
    b_arrives = at(7.5) + FIVE + leg(1, 2) + timedelta(minutes=29)
    driver_id = await day_so_far(db, b_arrives, tapped=timedelta(0))
    assert abs(await work_began(db, driver_id) - at(7)) <= CLOSE


async def test_a_wait_at_her_next_stop_long_enough_before_it_opens_is_a_rest(db: Database):
    driver_id = await day_so_far(db, at(9), c_opens=12.5)  # at C since 09:06, it opens 12:30
    assert await work_began(db, driver_id) == at(12.5)


async def test_a_wait_shorter_than_a_rest_is_none(db: Database):
    # B from 11:50 to 11:55, at C about 11:56; C opens 12:15: 19 minutes of waiting
    driver_id = await day_so_far(db, at(11) + timedelta(minutes=50), c_opens=12.25)
    began = at(11) + timedelta(minutes=50) - leg(1, 2)  # the gap from A to B was a rest
    assert abs(await work_began(db, driver_id) - began) <= CLOSE


async def tap(db: Database, order_id: int, driver_id: int, taps: list[tuple[S, datetime]]) -> None:
    """Her taps at this stop, stamped when she made them (the order ends in the last one)."""
    async with db.transaction() as session:
        row = await session.get(Order, order_id)
        row.status, row.driver_id = taps[-1][0], driver_id
        session.add(row)
        for status, when in taps:
            session.add(OrderEvent(order_id=order_id, kind="status_changed", to_status=status,
                                   actor="test", created_at=when))  # fmt: skip


async def test_a_break_taken_when_told_counts_though_her_taps_make_it_a_little_short(
    db: Database,
):
    """On shift since 07:00 (her morning unknown: no depot), at 11:15 she has five stops: the
    plan written for her (dispatch) has her rest after the second, and the product remembers
    that break. She takes it, but her taps leave 27 of its 30 minutes between the two stops
    around it (she taps Delivered on arrival and gets to the next stop 3 minutes before its
    ETA). After that stop her last two are re-planned: the rest she was told to take counts as
    taken, and she is planned no second break (read strictly, her day had run 5 h without a
    rest and she got one at once)."""
    now = at(11.25)  # no depot: her morning before these stops is unknown, not a rest
    driver = await on_shift(db, "Wanda", 1, near(WEST, 1), shift_started_at=at(7),
                            last_seen_at=now - CLOSE)  # fmt: skip
    for ref, k in (("B", 2), ("C", 3), ("D", 4), ("E", 5), ("F", 6)):
        await order_at(db, ref, near(WEST, k), hours=(7, 18))
    report = await planner(db, clock=lambda: now).dispatch_day(DISPATCHER)
    assert len(report.assigned) == 5
    async with db.reads() as session:
        told = (await session.exec(select(PlannedBreak))).all()
        stops = (await session.exec(select(RouteStop).order_by(col(RouteStop.sequence)))).all()
    assert [b.driver_id for b in told] == [driver.id] and told[0].seconds == 30 * 60
    rest = told[0].starts_at
    before = max((s for s in stops if s.planned_departure <= rest), key=lambda s: s.sequence)
    after = stops[stops.index(before) + 1]
    assert after.planned_arrival - rest >= timedelta(minutes=30)  # she rests, then drives
    for stop in stops[: stops.index(before) + 1]:  # Delivered tapped on arrival
        taps = [(S.ARRIVED, stop.planned_arrival), (S.DELIVERED, stop.planned_arrival)]
        await tap(db, stop.order_id, driver.id, taps)
    early = after.planned_arrival - timedelta(minutes=3)
    await tap(db, after.order_id, driver.id, [(S.ARRIVED, early), (S.DELIVERED, early + FIVE)])
    later = early + FIVE + CLOSE
    async with db.transaction() as session:
        row = await session.get(Driver, driver.id)
        order = await session.get(Order, after.order_id)
        row.last_lat, row.last_lon, row.last_seen_at = order.lat, order.lon, later
        session.add(row)
    world = await planner(db, clock=lambda: later).world()
    vehicle = world.problem.vehicle_by_id[str(driver.id)]
    left = world.sequences[str(driver.id)]
    assert left
    route, violations = simulate(world.problem, vehicle, left)
    assert violations == [] and route.breaks == ()
    assert vehicle.rested is not None and world.at(vehicle.rested) > rest
    # a re-plan now forgets none of it: the break she took stays remembered
    await planner(db, clock=lambda: later).dispatch_day(DISPATCHER)
    async with db.reads() as session:
        kept = (await session.exec(select(PlannedBreak))).all()
    assert [b.starts_at for b in kept] == [rest]
