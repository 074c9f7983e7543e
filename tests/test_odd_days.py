"""Odd days: an order with several windows, or stops locked to many drivers, keep PyVRP's plan
for everyone else, never serve fewer orders than the same day without them, and every reason
given for a stop left out is true."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, timedelta

import numpy as np
from sqlmodel import select

from core.config import RoutingSettings
from core.db import Database
from core.dispatch.planner import Planner
from core.dispatch.world import delivery_id
from core.models import Order, OrderStatus, Route, RouteStop
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Window
from core.orders.service import OrderDraft
from core.routing.check import check
from core.routing.engines.pyvrp import odd_stops
from core.routing.insert import cheapest_insertion
from core.routing.plan import Plan
from core.routing.problem import ON_BOARD, Depot, Objective, Pair, Problem, Stop, Vehicle
from core.routing.problem import Window as Span
from core.routing.solve import solve, without
from core.routing.travel import Point, StraightLine, haversine_m
from core.texts import t
from tests.test_dispatch import DISPATCHER, NOW, driver_of, on_shift, order_at

HOUR = 3600
FULL = t("routing.reason.full")
SOLVE = dict(max_iterations=300, time_limit_s=60, seed=1)  # outcomes, not speed


def city_day(orders: int = 240, drivers: int = 16, seed: int = 3) -> Problem:
    """A generated city day: 3 depots, drivers 08:00–19:00, orders with 1–3 h windows."""
    rng = np.random.default_rng(seed)
    n = 3 + orders
    radii, angles = 12 * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    lat = 52.52 + radii * np.sin(angles) / 111
    lon = 13.405 + radii * np.cos(angles) / (111 * math.cos(math.radians(52.52)))
    points = [Point(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]
    metres = np.ceil(haversine_m(points, points) * 1.3)
    seconds = np.ceil(metres / (25 / 3.6))
    stops = []
    for i in range(orders):
        start, width = int(rng.uniform(8, 16)) * HOUR, int(rng.integers(1, 4)) * HOUR
        stops.append(Stop(f"k{i}", 3 + i, (Span(start, start + width),), service=180))
    return Problem(
        durations=seconds,
        distances=metres,
        vehicles=tuple(
            Vehicle(f"v{k}", depot=f"d{k % 3}", shift=Span(8 * HOUR, 19 * HOUR))
            for k in range(drivers)
        ),
        stops=tuple(stops),
        depots=tuple(Depot(f"d{i}", i) for i in range(3)),
        objective=Objective(duration=1),
    )


def replaced(problem: Problem, **changes: dict) -> Problem:
    """The problem with some stops changed: stop id -> fields."""
    stops = tuple(dataclasses.replace(s, **changes.get(s.id, {})) for s in problem.stops)
    return dataclasses.replace(problem, stops=stops)


def served(plan: Plan) -> set[str]:
    return {stop for route in plan.routes for stop in route.stops}


def assert_reasons_true(problem: Problem, plan: Plan) -> None:
    """A stop is called full only where no route has a feasible place for it."""
    assert check(problem, plan) == []
    for stop_id, reason in plan.unassigned.items():
        if reason == FULL:
            fits = cheapest_insertion(problem, plan.sequences, stop_id)
            assert fits.vehicle is None, f"{stop_id} fits on {fits.vehicle} but was 'full'"


def test_one_order_with_two_windows_keeps_the_day():
    day = city_day()
    base = solve(without(day, {"k0"}), **SOLVE)
    two = (Span(9 * HOUR, 10 * HOUR), Span(15 * HOUR, 16 * HOUR))
    odd_day = replaced(day, k0={"windows": two})
    plan = solve(odd_day, **SOLVE)
    assert plan.engine == "pyvrp"
    assert served(plan) >= served(base) | {"k0"}
    visit = plan.visit("k0")
    assert any(w.start <= visit.start <= w.end for w in two)
    assert plan.duration <= base.duration * 1.03  # PyVRP's quality, not OR-Tools'
    assert_reasons_true(odd_day, plan)


def test_stops_locked_to_sixteen_drivers_keep_the_day():
    day = city_day()
    locked = {f"k{i}": f"v{i}" for i in range(16)}
    base = solve(without(day, set(locked)), **SOLVE)
    unlocked = solve(day, **SOLVE)
    odd_day = replaced(
        day, **{s: {"vehicles": frozenset({v}), "priority": ON_BOARD} for s, v in locked.items()}
    )
    plan = solve(odd_day, **SOLVE)
    assert plan.engine == "pyvrp"
    assert served(plan) >= served(base) | set(locked)
    for stop, vehicle in locked.items():
        assert plan.route_of(stop).vehicle == vehicle
    assert plan.duration <= unlocked.duration * 1.2  # locks cost detours, not the day
    assert_reasons_true(odd_day, plan)


def test_stops_an_engine_left_out_are_full_only_when_nothing_fits():
    day = city_day(orders=120, drivers=8)
    rushed = solve(day, engine="ortools", time_limit_s=0.05)  # too little time to finish
    assert_reasons_true(day, rushed)
    assert len(served(rushed)) == len(day.stops)  # the rest fit: they are placed after all
    overfull = city_day(orders=240, drivers=3)
    plan = solve(overfull, **SOLVE)
    assert plan.unassigned and set(plan.unassigned.values()) == {FULL}
    assert_reasons_true(overfull, plan)


def test_what_pyvrp_cannot_express_is_placed_after_it():
    day = city_day(orders=60, drivers=40)
    vehicles = [v.id for v in day.vehicles]
    pairs = {f"k{i}": frozenset({vehicles[i], vehicles[(i + 1) % 40]}) for i in range(40)}
    evening = (Span(9 * HOUR, 10 * HOUR), Span(17 * HOUR, 18 * HOUR))
    odd_day = replaced(
        day,
        k50={"windows": evening},  # a delivery with two windows, after its pickup k51
        **{s: {"vehicles": allowed} for s, allowed in pairs.items()},  # 40 allowed pairs
    )
    odd_day = dataclasses.replace(odd_day, pairs=(Pair("k51", "k50"),))
    outside = odd_stops(odd_day)
    assert {"k50", "k51"} <= outside and len(outside) > 2  # past 15 profiles and 12 dimensions
    plan = solve(odd_day, **SOLVE)
    assert plan.engine == "pyvrp" and plan.unassigned == {}
    for stop, allowed in pairs.items():
        assert plan.route_of(stop).vehicle in allowed
    route = plan.route_of("k50")
    assert route is plan.route_of("k51") and route.stops.index("k51") < route.stops.index("k50")
    assert any(w.start <= plan.visit("k50").start <= w.end for w in evening)
    assert_reasons_true(odd_day, plan)


# -- through the database: Planner.dispatch_day --------------------------------------------


async def test_dispatch_day_with_a_two_window_order_and_sixteen_locks(db: Database):
    rng = np.random.default_rng(5)
    service = Planner(
        db,
        StraightLine(speed_kmh=25, detour=1.3),
        RoutingSettings(time_limit_s=0.5),
        clock=lambda: NOW,
    )
    drivers = [await on_shift(db, f"Driver{k} Test", 100 + k, _around(rng)) for k in range(16)]
    placed = []
    for k in range(180):
        start = float(rng.integers(9, 16))
        placed.append(await order_at(db, f"D{k}", _around(rng), (start, start + 2)))
    day = NOW.replace(hour=0)
    two = (Window(day + timedelta(hours=10), day + timedelta(hours=11)),
           Window(day + timedelta(hours=15), day + timedelta(hours=16)))  # fmt: skip
    draft = OrderDraft(
        customer_name="Twice", address="Two windows street", lat=52.53, lon=13.41,
        windows=two, proof_required="none",
    )  # fmt: skip
    odd = await orders.create_order(db, draft, SYSTEM, source="test")
    locked = {placed[k].id: drivers[k].id for k in range(16)}
    for order_id, driver_id in locked.items():
        await service.assign_manually(order_id, driver_id, DISPATCHER)

    world = await service.world()
    odd_stops = {delivery_id(order_id) for order_id in [*locked, odd.id]}
    base = solve(without(world.problem, odd_stops), time_limit_s=0.5, seed=1)
    pyvrp = solve(world.problem, engine="pyvrp", time_limit_s=0.5, seed=1)  # the same world

    report = await service.dispatch_day(DISPATCHER)

    assert report.unassigned == {}  # a comfortable day: every order is served
    async with db.sessions() as session:
        routes = (await session.exec(select(Route))).all()
        stops = (await session.exec(select(RouteStop))).all()
        order = await session.get(Order, odd.id)
    assert len(stops) >= len(served(base)) + len(odd_stops)
    planned = sum(route.planned_duration_s for route in routes)
    assert planned <= pyvrp.duration * 1.15  # as good as PyVRP on the same world
    assert report.engine == "pyvrp"
    for order_id, driver_id in locked.items():
        assert await driver_of(db, order_id) == driver_id  # the dispatcher's choice stays
    assert order.status is OrderStatus.ASSIGNED
    [stop] = [s for s in stops if s.order_id == odd.id]
    starts = stop.planned_departure - timedelta(minutes=order.service_minutes)
    assert any(w.starts_at <= starts.replace(tzinfo=UTC) <= w.ends_at for w in two)


def _around(rng: np.random.Generator) -> tuple[float, float]:
    """A point within about 6 km of the centre."""
    return 52.52 + float(rng.uniform(-0.05, 0.05)), 13.405 + float(rng.uniform(-0.08, 0.08))
