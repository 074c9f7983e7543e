"""From the database to a routing problem: drivers on shift, their open stops, waiting orders.

Times in the problem are seconds from `epoch` (now). Stop ids are `o<order id>` for a delivery
and `o<order id>p` for its pickup; vehicle ids are the driver ids as text.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import RoutingSettings
from core.drivers import hours, rests
from core.models import (
    Depot,
    Driver,
    Member,
    Order,
    OrderKind,
    OrderStatus,
    OrderWindow,
    RouteStop,
    ShiftState,
    StopKind,
    open_stop,
)
from core.routing import problem as rp
from core.routing.cost import objective
from core.routing.travel import Matrix, Point, TrafficProfile, TravelProvider

S = OrderStatus
WAITING = (S.NEW, S.RESCHEDULED)
OPEN = (S.ASSIGNED, S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED)
MOVING = (S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED)  # the driver has set off
HEADING = (S.OUT_FOR_DELIVERY, S.ARRIVED)  # the stop she is heading to (or at)
DIMENSIONS = ("grams", "ml", "units")
LIVE_FOR = timedelta(minutes=30)  # a position older than this no longer counts as "here"
BIG = 10**12
REORDER_MIN_MINUTES = 1.0  # re-ordering a route is free, but not for less than this
UTC_ZONE = ZoneInfo("UTC")


def delivery_id(order_id: int) -> str:
    return f"o{order_id}"


def pickup_id(order_id: int) -> str:
    return f"o{order_id}p"


def order_of(stop_id: str) -> int:
    return int(stop_id[1:].removesuffix("p"))


def on_board(order: Order) -> bool:
    """Its parcel left the depot in its driver's van: only she can deliver it (a dispatcher's
    `/assign` hands it over)."""
    loaded = order.loaded_at is not None and order.driver_id is not None
    return loaded and order.status is S.ASSIGNED


async def unlocated(session: AsyncSession, day: date) -> list[int]:
    """Waiting orders of the day that have no point yet (their address is not geocoded)."""
    statement = select(Order.id).where(
        col(Order.status).in_(WAITING),
        col(Order.lat).is_(None),
        col(Order.due_date).is_(None) | (Order.due_date == day),
    )
    return [order_id for order_id in await session.exec(statement) if order_id is not None]


@dataclass
class World:
    """What dispatch sees: the problem plus what it needs to talk about it."""

    problem: rp.Problem
    epoch: datetime
    drivers: dict[str, Driver]
    names: dict[str, str]
    orders: dict[int, Order]
    sequences: dict[str, list[str]]  # current stop order per driver (open stops)
    locked: dict[str, int]  # leading stops that stay put (where she is driving to)
    window_ends: dict[int, datetime] = dataclasses.field(default_factory=dict)  # deliveries'

    def at(self, seconds: int) -> datetime:
        return self.epoch + timedelta(seconds=seconds)

    def cost_of_minutes(self, minutes: float) -> int:
        """`minutes` of paid driver time in the plan's cost units."""
        return round(minutes * 60 * (self.problem.objective.duration or 1))

    def nearest_driver(self, stop_id: str) -> str | None:
        stop = self.problem.stop_by_id[stop_id]
        starts = {v.id: self.problem.start_location(v) for v in self.problem.vehicles}
        if not starts:
            return None
        durations = self.problem.durations
        return min(starts, key=lambda v: int(durations[starts[v], stop.location]))


async def load_world(
    session: AsyncSession,
    travel: TravelProvider,
    settings: RoutingSettings,
    *,
    now: datetime,
    day: date | None = None,
    waiting: list[int] | None = None,
    only_driver: int | None = None,
    manual: int | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> World:
    """`manual`: an order a dispatcher is giving to `only_driver`, planned as hers (at the end of
    her stops, for the caller to place) whoever has it now. Drivers are those on shift and those
    expected before their shift by their working hours (`drivers/hours.py`, local to `zone`)."""
    epoch = now.replace(microsecond=0)
    day = day or epoch.date()
    drivers, expecting = await drivers_planned(session, now, zone, only_driver)
    members = {
        m.id: m
        for m in await session.exec(
            select(Member).where(col(Member.id).in_([d.member_id for d in drivers]))
        )
    }
    active = select(Depot).where(col(Depot.active))
    depots = {d.id: d for d in await session.exec(active) if d.id is not None}
    driver_ids = [d.id for d in drivers]
    statement = select(Order).where(
        col(Order.status).in_(OPEN), col(Order.driver_id).in_(driver_ids)
    )
    orders = {o.id: o for o in await session.exec(statement) if o.id is not None}
    # `waiting`: None = every waiting order of the day, else just these (maybe none)
    statement = select(Order).where(col(Order.status).in_(WAITING), col(Order.lat).is_not(None))
    if waiting is None:
        statement = statement.where(col(Order.due_date).is_(None) | (Order.due_date == day))
    else:
        statement = statement.where(col(Order.id).in_(waiting))
    if waiting is None or waiting:
        orders.update({o.id: o for o in await session.exec(statement) if o.id is not None})
    given = await session.get(Order, manual) if manual is not None else None
    if given is not None and given.id is not None and given.status in (*WAITING, S.ASSIGNED):
        orders[given.id] = given
    windows: dict[tuple[int, StopKind], list[OrderWindow]] = {}
    if orders:
        rows = await session.exec(
            select(OrderWindow).where(col(OrderWindow.order_id).in_(list(orders)))
        )
        for row in rows:
            windows.setdefault((row.order_id, row.stop), []).append(row)
    sequences = await _current_sequences(session, orders, drivers)
    if manual is not None and manual in orders and only_driver is not None:
        mine = sequences.setdefault(str(only_driver), [])
        given_ids = [pickup_id(manual), delivery_id(manual)]
        mine += [s for s in given_ids if s not in mine]

    points: list[Point] = []
    index: dict[Point, int] = {}

    def location(lat: float, lon: float) -> int:
        point = Point(lat, lon)
        if point not in index:
            index[point] = len(points)
            points.append(point)
        return index[point]

    def seconds(moment: datetime) -> int:
        return int((moment - epoch).total_seconds())

    problem_depots = [rp.Depot(str(d.id), location(d.lat, d.lon)) for d in depots.values()]
    # A driver at a stop leaves it when its service time is over, not now (`rests.Visit.gone`)
    at_stops = await rests.last_visits(session, drivers, now)
    remaining: dict[str, int] = {}  # a stop she is serving: the service time it has left
    vehicles, names, by_id = [], {}, {}
    for driver in drivers:
        live = (
            driver.last_lat is not None
            and driver.last_seen_at is not None
            and now - driver.last_seen_at <= LIVE_FOR
        )
        depot = depots.get(driver.depot_id) if driver.depot_id else None
        if not live and depot is None:
            continue  # nowhere to start from: not plannable until she shares her location
        if (span := expecting.get(driver.id)) is not None:
            started, ends = span.starts, span.ends  # from her depot (or where she is), later
        else:
            started = driver.shift_started_at or epoch
            ends = driver.shift_ends_at or _hours_end(driver, started, zone, settings)
        capacity = (
            tuple(_scaled(v, scale) for v, scale in zip(
                (driver.capacity_kg, driver.capacity_l, driver.capacity_units),
                (1000, 1000, 1), strict=True))
        )  # fmt: skip
        vid = str(driver.id)
        start = None
        if live and driver.last_lat is not None and driver.last_lon is not None:
            start = location(driver.last_lat, driver.last_lon)
        leaves, parked = max(0, seconds(started)), False
        if (visit := at_stops.get(driver.id)) is not None:  # type: ignore[arg-type]
            order_id, pickup = visit.stop
            gone = seconds(visit.gone)
            serving = orders.get(order_id)
            if not pickup and serving is not None and serving.status is S.ARRIVED:
                remaining[delivery_id(order_id)] = max(0, gone)  # she leaves it then
            elif gone > 0:  # done there: she stands at it until its service time is over
                start = location(visit.point.lat, visit.point.lon)
                leaves, parked = max(leaves, gone), True
        end = max(0, seconds(ends))
        vehicles.append(
            rp.Vehicle(
                vid,
                depot=str(depot.id) if depot else None,
                start=start,
                open_end=depot is None,
                shift=rp.Window(min(leaves, end), end),
                parked=parked,
                capacity=capacity,
                skills=frozenset(driver.skills),
                max_stops=driver.max_stops,
            )
        )
        member = members.get(driver.member_id)
        names[vid] = member.name.split()[0] if member and member.name else f"driver {vid}"
        by_id[vid] = driver

    allowed_by_zone = _zones(drivers)
    stops, pairs = [], []
    for order in orders.values():
        if order.lat is None or order.lon is None:
            continue
        assert order.id is not None
        demand = (
            math.ceil((order.weight_kg or 0) * 1000),
            math.ceil((order.volume_l or 0) * 1000),
            order.units or 0,
        )
        vehicles_for: frozenset[str] | None = None
        if order.id == manual:
            vehicles_for = frozenset({str(only_driver)})
        elif order.status in MOVING or order.driver_locked or on_board(order):
            vehicles_for = frozenset({str(order.driver_id)}) if order.driver_id else None
        elif order.zone and (zoned := allowed_by_zone(order.zone)) is not None:
            vehicles_for = zoned
        if vehicles_for is not None:
            vehicles_for = frozenset(v for v in vehicles_for if v in by_id)
        in_van = (order.status in MOVING or on_board(order)) and order.driver_id is not None
        common: dict[str, Any] = dict(
            demand=demand,
            skills=frozenset(order.required_skills),
            vehicles=vehicles_for,
            priority=rp.ON_BOARD if in_van else order.priority,
            service=remaining.get(delivery_id(order.id), round(order.service_minutes * 60)),
        )
        stops.append(
            rp.Stop(
                delivery_id(order.id),
                location(order.lat, order.lon),
                windows=_windows(windows.get((order.id, StopKind.DELIVERY), []), seconds),
                **common,
            )
        )
        needs_pickup = order.kind is OrderKind.PICKUP_DELIVERY and order.status not in MOVING
        if needs_pickup and order.pickup_lat is not None and order.pickup_lon is not None:
            stops.append(
                rp.Stop(
                    pickup_id(order.id),
                    location(order.pickup_lat, order.pickup_lon),
                    windows=_windows(windows.get((order.id, StopKind.PICKUP), []), seconds),
                    **common,
                )
            )
            pairs.append(rp.Pair(pickup_id(order.id), delivery_id(order.id)))

    rest = breaks(settings)
    stretches = await rests.days(session, drivers, depots, rest, now) if rest else {}
    # Done reading: end the transaction before asking the travel provider (maybe over HTTP),
    # so no lock is held meanwhile; the rows stay readable, detached from the session.
    session.expunge_all()
    await session.rollback()
    empty = np.zeros((0, 0), dtype=np.int64)
    # With a traffic profile the problem keeps free-flow times and the profile, so that each
    # leg is timed at the hour it is driven; a provider without one answers for `epoch`.
    traffic = _traffic(travel, epoch)
    when = None if traffic is not None else epoch
    matrix = await travel.matrix(points, points, when) if points else Matrix(empty, empty)
    if rest is not None and stretches:
        began = await rests.work_began(
            travel, rest, stretches, _heads(vehicles, stops, sequences, points, epoch), now
        )
        vehicles = [
            dataclasses.replace(v, rested=seconds(began[int(v.id)]))
            if v.start is not None and int(v.id) in began
            else v
            for v in vehicles
        ]
    problem = rp.Problem(
        durations=matrix.durations,
        distances=matrix.distances,
        vehicles=tuple(vehicles),
        stops=tuple(stops),
        depots=tuple(problem_depots),
        pairs=tuple(pairs),
        dimensions=DIMENSIONS,
        objective=objective(settings.cost_per_hour, settings.cost_per_km),
        traffic=traffic,
        breaks=rest,
    )
    known = set(problem.stop_by_id)
    sequences = {v: [s for s in seq if s in known] for v, seq in sequences.items() if v in by_id}
    locked = {
        v: 1 for v, seq in sequences.items() if seq and orders[order_of(seq[0])].status in HEADING
    }
    last_ends = {
        order_id: max(row.ends_at for row in rows)
        for (order_id, kind), rows in windows.items()
        if kind is StopKind.DELIVERY and rows
    }
    return World(problem, epoch, by_id, names, orders, sequences, locked, last_ends)


def _heads(
    vehicles: list[rp.Vehicle],
    stops: list[rp.Stop],
    sequences: dict[str, list[str]],
    points: list[Point],
    epoch: datetime,
) -> dict[int, rests.Head]:
    """Each driver on the road with stops: where she is, her next stop and when it opens (its
    first window still open; None when it is open now or has no window)."""
    by_id = {s.id: s for s in stops}
    out = {}
    for vehicle in vehicles:
        sequence = sequences.get(vehicle.id) or []
        head = by_id.get(sequence[0]) if sequence else None
        if vehicle.start is None or head is None:
            continue
        window = next((w for w in head.windows if w.end >= 0), None)
        opens = epoch + timedelta(seconds=window.start) if window and window.start > 0 else None
        out[int(vehicle.id)] = rests.Head(points[vehicle.start], points[head.location], opens)
    return out


def _traffic(travel: TravelProvider, epoch: datetime) -> rp.Traffic | None:
    """The provider's hour-of-day profile, anchored at the epoch's local time; None when it has
    none or it is flat (then its times hold at any hour)."""
    profile = getattr(travel, "traffic", None)
    if not isinstance(profile, TrafficProfile) or all(f == 1.0 for f in profile.factors):
        return None
    local = epoch.astimezone(ZoneInfo(profile.zone))
    offset = local.hour * 3600 + local.minute * 60 + local.second
    return rp.Traffic.of(profile.factors, offset)


def breaks(settings: RoutingSettings) -> rp.Breaks | None:
    """The drivers' rests from the settings; None when turned off (0 hours or 0 minutes)."""
    after, length = round(settings.break_after_hours * 3600), round(settings.break_minutes * 60)
    return rp.Breaks(after, length) if after > 0 and length > 0 else None


async def drivers_on_shift(
    session: AsyncSession, only: int | None, state: ShiftState = ShiftState.ON
) -> list[Driver]:
    statement = (
        select(Driver)
        .join(Member, col(Member.id) == Driver.member_id)
        .where(Driver.shift_state == state, Member.active)
        .order_by(col(Driver.id))
    )
    if only is not None:
        statement = statement.where(Driver.id == only)
    return list(await session.exec(statement))


async def drivers_planned(
    session: AsyncSession, now: datetime, zone: ZoneInfo, only: int | None = None
) -> tuple[list[Driver], dict[int | None, hours.Span]]:
    """Drivers the planner counts on now: on shift, or off shift but expected by their working
    hours (those with the span of hours she is counted on for)."""
    drivers = await drivers_on_shift(session, only)
    expecting = {}
    for driver in await drivers_on_shift(session, only, ShiftState.OFF):
        if (span := hours.expected(driver, now, zone)) is not None:
            expecting[driver.id] = span
            drivers.append(driver)
    return drivers, expecting


def _hours_end(
    driver: Driver, started: datetime, zone: ZoneInfo, settings: RoutingSettings
) -> datetime:
    """Where a route on shift ends without an end of its own: her hours' end that day, if she
    has hours ending after she started, else `ROUTING_SHIFT_HOURS` after the start."""
    span = hours.today(driver, started, zone)
    if span is not None and span.ends > started:
        return span.ends
    return started + timedelta(hours=settings.shift_hours)


async def _current_sequences(
    session: AsyncSession, orders: dict[int, Order], drivers: list[Driver]
) -> dict[str, list[str]]:
    """Each driver's open stops in their planned order: the stop she is heading to first, then
    the saved route order (a parcel picked up keeps its delivery's place), then anything not yet
    on a route."""
    planned: dict[str, int] = {}
    if orders:
        rows = await session.exec(
            select(RouteStop).where(col(RouteStop.order_id).in_(list(orders)), open_stop())
        )
        for row in rows:
            key = (
                pickup_id(row.order_id)
                if row.kind is StopKind.PICKUP
                else delivery_id(row.order_id)
            )
            planned[key] = row.sequence
    out: dict[str, list[str]] = {}
    for driver in drivers:
        stop_ids = []
        for order in orders.values():
            if order.driver_id != driver.id or order.status not in OPEN:
                continue
            assert order.id is not None
            if order.kind is OrderKind.PICKUP_DELIVERY and order.status is S.ASSIGNED:
                stop_ids.append(pickup_id(order.id))
            stop_ids.append(delivery_id(order.id))

        def rank(stop_id: str) -> tuple[int, int, int]:
            heading = 0 if orders[order_of(stop_id)].status in HEADING else 1
            return (heading, planned.get(stop_id, BIG), order_of(stop_id))

        out[str(driver.id)] = sorted(stop_ids, key=rank)
    return out


def _zones(drivers: list[Driver]):
    """zone -> the drivers who cover it; drivers without zones cover every zone."""

    def allowed(zone: str) -> frozenset[str] | None:
        if not any(d.zones for d in drivers):
            return None
        return frozenset(str(d.id) for d in drivers if not d.zones or zone in d.zones)

    return allowed


def _windows(rows: list[OrderWindow], seconds) -> tuple[rp.Window, ...]:
    out = []
    for row in sorted(rows, key=lambda r: r.starts_at):
        start, end = max(0, seconds(row.starts_at)), seconds(row.ends_at)
        if end >= 0:
            out.append(rp.Window(start, end))
    if rows and not out:
        return (rp.Window(0, 0),)  # every window is over: reachable by no one
    return tuple(out)


def _scaled(value: float | int | None, scale: int) -> int:
    return BIG if value is None else math.floor(value * scale)
