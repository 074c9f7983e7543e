"""A driver at a stop leaves it after its service time, not "now": the ETA of her next stop (a
refresh from her position, or a re-plan made while she is there) counts her leaving no earlier
than her arrival plus the stop's service time (`rests.Visit.gone`), whether she tapped Delivered
on arrival or is still serving the stop. Read from the order events in the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.db import Database
from core.models import Order, OrderStatus, RouteStop
from tests.test_dispatch import DISPATCHER, WEST, near, on_shift, order_at, place_driver, planner
from tests.test_rests import CLOSE, at, leg, tap

S = OrderStatus
NOW = at(12)
SERVICE = timedelta(minutes=10)


async def at_a_stop(db: Database, taps: list[tuple[S, timedelta]]) -> tuple[int, int]:
    """On shift since 11:00 (no rest due), she stands at stop A (near 1, 10 minutes of service)
    with her taps there (`taps`: status, how long before now); stop B (near 2) is next.
    (driver id, B's order id)."""
    driver = await on_shift(db, "Wanda", 1, near(WEST, 1), shift_started_at=at(11),
                            last_seen_at=NOW - CLOSE)  # fmt: skip
    a = await order_at(db, "A", near(WEST, 1), hours=(7, 18), service_minutes=10)
    await tap(db, a.id, driver.id, [(status, NOW - ago) for status, ago in taps])
    b = await order_at(db, "B", near(WEST, 2), hours=(7, 18))
    return driver.id, b.id


AT_ONCE = [(S.ARRIVED, timedelta(minutes=2)), (S.DELIVERED, timedelta(minutes=2))]
SERVING = [(S.ARRIVED, timedelta(minutes=4))]


async def assigned_to(db: Database, order_id: int, driver_id: int) -> None:
    async with db.transaction() as session:
        row = await session.get(Order, order_id)
        row.status, row.driver_id = S.ASSIGNED, driver_id
        session.add(row)


@pytest.mark.parametrize(
    ("taps", "arrived"),
    [(AT_ONCE, NOW - timedelta(minutes=2)), (SERVING, NOW - timedelta(minutes=4))],
    ids=["tapped_delivered_on_arrival", "still_serving"],
)
async def test_her_next_eta_counts_the_service_time_of_the_stop_she_is_at(db, taps, arrived):
    driver_id, b = await at_a_stop(db, taps)
    await assigned_to(db, b, driver_id)
    etas = await planner(db, clock=lambda: NOW).refresh_etas(driver_id)
    expected = arrived + SERVICE + leg(1, 2)
    assert abs(etas[b].at - expected) <= CLOSE, (etas[b].at, expected)


@pytest.mark.parametrize(
    ("taps", "arrived"),
    [(AT_ONCE, NOW - timedelta(minutes=2)), (SERVING, NOW - timedelta(minutes=4))],
    ids=["tapped_delivered_on_arrival", "still_serving"],
)
async def test_a_replan_while_she_is_at_a_stop_has_her_leave_after_its_service(db, taps, arrived):
    driver_id, b = await at_a_stop(db, taps)
    await assigned_to(db, b, driver_id)
    c = await order_at(db, "C", near(WEST, 3), hours=(7, 18))  # a new order: the day re-planned
    report = await planner(db, clock=lambda: NOW).dispatch_day(DISPATCHER)
    assert {a.order_id for a in report.assigned} >= {c.id}
    async with db.reads() as session:
        stops = {r.order_id: r for r in await session.exec(select(RouteStop))}
    expected = arrived + SERVICE + leg(1, 2)
    assert abs(stops[b].eta - expected) <= CLOSE, (stops[b].eta, expected)


@pytest.mark.parametrize(
    "taps",
    [
        [(S.ARRIVED, timedelta(minutes=20)), (S.DELIVERED, timedelta(minutes=15))],
        [(S.ARRIVED, timedelta(minutes=20))],
    ],
    ids=["left_after_its_service", "serving_past_its_service"],
)
async def test_a_service_time_run_out_does_not_hold_her(db: Database, taps):
    """A's service time ran out before now: she leaves now (the rule only holds her back; it
    never pulls a departure into the past, nor serves a stop twice)."""
    driver_id, b = await at_a_stop(db, taps)
    await assigned_to(db, b, driver_id)
    etas = await planner(db, clock=lambda: NOW).refresh_etas(driver_id)
    assert abs(etas[b].at - (NOW + leg(1, 2))) <= CLOSE


async def test_driven_off_she_is_where_her_position_says(db: Database):
    """She tapped Delivered on arrival and her live position, seen since, is already 400 m on:
    she is driving, so her next ETA is from there, now."""
    driver_id, b = await at_a_stop(db, AT_ONCE)
    await assigned_to(db, b, driver_id)
    halfway = tuple((x + y) / 2 for x, y in zip(near(WEST, 1), near(WEST, 2), strict=True))
    await place_driver(db, driver_id, halfway)
    etas = await planner(db, clock=lambda: NOW).refresh_etas(driver_id)
    assert abs(etas[b].at - (NOW + leg(1, 2) / 2)) <= CLOSE
