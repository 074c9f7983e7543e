"""When each driver's current stretch of work began, so that a re-plan made in the middle of her
day puts her rest where it is due (after ROUTING_BREAK_AFTER_HOURS of work), not that long after
the re-plan.

Her stretch began at her shift start, or where she last rested: a gap between two stops of hers
(from when she left one to her first event at the next: picked up, arrived, delivered, failed),
less the drive between them at the traffic of that hour, at least ROUTING_BREAK_MINUTES long.
She left a stop at her last event there, and not before its service time had passed since her
first (a driver who taps Delivered on arrival still spends the service time there: counted as
rest, her break would never be planned, and the plan would run half an hour late after it).
That is the checker's own rule: a wait at least as long as the rest counts as one. She is taken
to have set off again one drive before the next stop. A wait still under way counts too: at her
next stop before its window opens, having got there long enough before it.

The breaks the product planned for her are remembered (`remember`, on every plan written). A gap
that holds one she was told to take counts as that rest when it falls short of it by at most
`REST_SLACK`: her taps and the drive estimated at that hour are a few minutes out, and read
strictly, a rest taken as told looked too short and the product planned her a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Depot, Driver, Order, OrderEvent, OrderStatus, PlannedBreak
from core.models.orders import MAX_SERVICE_MINUTES
from core.routing import problem as rp
from core.routing.travel import Point, TrafficProfile, TravelProvider, haversine_m

S = OrderStatus
AT_A_STOP = (S.PICKED_UP, S.ARRIVED, S.DELIVERED, S.FAILED)
AT_THE_STOP_M = 100  # a live position this close to her next stop: she is there
REST_SLACK = timedelta(minutes=5)  # a gap holding a break she was told of: this short still counts
MAX_SERVICE = timedelta(minutes=MAX_SERVICE_MINUTES)


@dataclass
class Visit:
    stop: tuple[int, bool]  # (order, pickup?)
    point: Point
    arrived: datetime
    left: datetime
    service: timedelta  # the stop's service time: she leaves no earlier than that after arriving

    @property
    def gone(self) -> datetime:
        """When she left: her last event there, and not before its service time was over."""
        return max(self.left, self.arrived + self.service)


@dataclass
class Day:
    """One driver's day so far: where and when it began, and her stops."""

    began: datetime
    start: Point | None  # her depot; None: unknown (the first gap is not judged)
    visits: list[Visit]
    told: list[datetime] = field(default_factory=list)  # when each break planned for her starts

    def told_between(self, left: datetime, arrived: datetime) -> bool:
        """Whether a break planned for her starts between leaving a stop and the next."""
        return any(left - REST_SLACK <= start <= arrived for start in self.told)


async def days(
    session: AsyncSession,
    drivers: list[Driver],
    depots: dict[int, Depot],
    breaks: rp.Breaks,
    now: datetime,
) -> dict[int, Day]:
    """The stops of each driver on shift since her shift began (only the last hours that can
    hold the rest that counts: an older one leaves a rest due at once all the same)."""
    horizon = now - timedelta(seconds=breaks.after + 2 * breaks.length) - timedelta(hours=1)
    out: dict[int, Day] = {}
    for driver in drivers:
        if driver.shift_started_at is None or driver.id is None:
            continue
        depot = depots.get(driver.depot_id) if driver.depot_id else None
        start = Point(depot.lat, depot.lon) if depot else None
        out[driver.id] = Day(driver.shift_started_at, start, [])
    if not out:
        return out
    since = max(horizon, min(day.began for day in out.values()))
    await _visits(session, out, since)
    told = select(PlannedBreak).where(
        col(PlannedBreak.driver_id).in_(list(out)), PlannedBreak.starts_at >= since
    )
    for planned in await session.exec(told.order_by(col(PlannedBreak.starts_at))):
        out[planned.driver_id].told.append(planned.starts_at)
    return out


async def _visits(
    session: AsyncSession, out: dict[int, Day], since: datetime, until: datetime | None = None
) -> None:
    """Each day's visits from its driver's taps at her stops from `since` (and her shift start)
    up to `until`."""
    statement = (
        select(OrderEvent.order_id, OrderEvent.to_status, OrderEvent.created_at, Order)
        .join(Order, col(Order.id) == OrderEvent.order_id)
        .where(
            OrderEvent.kind == "status_changed",
            col(OrderEvent.to_status).in_(AT_A_STOP),
            col(Order.driver_id).in_(list(out)),
            OrderEvent.created_at >= since,
        )
        .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
    )
    if until is not None:
        statement = statement.where(OrderEvent.created_at <= until)
    for order_id, status, at, order in await session.exec(statement):
        day = out[order.driver_id]  # type: ignore[index]
        if at < day.began:
            continue
        pickup = status is S.PICKED_UP
        lat, lon = (order.pickup_lat, order.pickup_lon) if pickup else (order.lat, order.lon)
        if lat is None or lon is None:
            continue
        stop = (order_id, pickup)
        if day.visits and day.visits[-1].stop == stop:
            day.visits[-1].left = at
        else:
            service = timedelta(minutes=order.service_minutes)
            day.visits.append(Visit(stop, Point(lat, lon), at, at, service))


async def last_visits(
    session: AsyncSession, drivers: list[Driver], now: datetime
) -> dict[int, Visit]:
    """Driver -> the last stop she tapped at (Arrived, Picked up, Delivered, Failed) in the
    longest service time before `now`, if she is still there: a driver whose live position,
    seen after her last tap there, is more than AT_THE_STOP_M away has driven off. She leaves
    it at its `Visit.gone` (maybe already past), whether or not she has tapped Delivered."""
    out: dict[int, Day] = {
        driver.id: Day(driver.shift_started_at, None, [])
        for driver in drivers
        if driver.shift_started_at is not None and driver.id is not None
    }
    if not out:
        return {}
    # twice the longest service: a stop she is still at has all its taps in it
    since = max(now - 2 * MAX_SERVICE, min(day.began for day in out.values()))
    await _visits(session, out, since, now)
    found: dict[int, Visit] = {}
    for driver in drivers:
        day = out.get(driver.id) if driver.id is not None else None
        if driver.id is None or day is None or not day.visits:
            continue
        visit = day.visits[-1]
        seen = driver.last_seen_at
        if driver.last_lat is not None and driver.last_lon is not None and seen is not None:
            here = Point(driver.last_lat, driver.last_lon)
            away = float(haversine_m([here], [visit.point])[0, 0]) > AT_THE_STOP_M
            if away and seen > visit.left:
                continue
        found[driver.id] = visit
    return found


async def remember(
    session: AsyncSession, driver_id: int, since: datetime, breaks: list[tuple[datetime, int]]
) -> None:
    """A plan made at `since` was written for her: its breaks (start, seconds) replace the ones
    planned for her from then on; the earlier ones (told, taken or under way) stay."""
    await session.exec(
        sa.delete(PlannedBreak).where(
            col(PlannedBreak.driver_id) == driver_id, col(PlannedBreak.starts_at) >= since
        )
    )
    for starts_at, seconds in breaks:
        session.add(PlannedBreak(driver_id=driver_id, starts_at=starts_at, seconds=seconds))


@dataclass(frozen=True)
class Head:
    """Where a driver on the road is, and the stop she is heading to: where and when it opens."""

    here: Point
    stop: Point
    opens: datetime | None


async def work_began(
    travel: TravelProvider,
    breaks: rp.Breaks,
    found: dict[int, Day],
    heads: dict[int, Head] | None = None,
    now: datetime | None = None,
) -> dict[int, datetime]:
    """Driver -> when her current stretch of work began. A driver waiting at her next stop for
    its window (she is there, it opens later) since long enough before it opens rests there:
    her stretch begins when it opens."""
    heads = heads or {}
    points = list(
        dict.fromkeys(
            p
            for driver, day in found.items()
            for p in (
                day.start,
                *(v.point for v in day.visits),
                heads[driver].stop if driver in heads else None,
            )
            if p is not None
        )
    )
    if not points:
        return {driver: day.began for driver, day in found.items()}
    index = {p: i for i, p in enumerate(points)}
    free = (await travel.matrix(points, points, None)).durations
    profile = getattr(travel, "traffic", None)
    rest = timedelta(seconds=breaks.length)

    def drive(a: Point, b: Point, at: datetime) -> timedelta:
        seconds = float(free[index[a], index[b]])
        if isinstance(profile, TrafficProfile):
            seconds *= profile.factor(at)
        return timedelta(seconds=seconds)

    out = {}
    for driver, day in found.items():
        began = day.began
        where, left = day.start, day.began
        for visit in day.visits:
            if where is not None:
                leg = drive(where, visit.point, left)
                idle = visit.arrived - left - leg
                told = idle >= rest - REST_SLACK and day.told_between(left, visit.arrived)
                if idle >= rest or told:
                    began = max(began, visit.arrived - leg)
            where, left = visit.point, visit.gone
        head = heads.get(driver)
        if head is not None and head.opens is not None and now is not None and head.opens > now:
            there = float(haversine_m([head.here], [head.stop])[0, 0]) <= AT_THE_STOP_M
            arrived = left + drive(where, head.stop, left) if where is not None else left
            if there and head.opens - arrived >= rest:
                began = max(began, head.opens)
        out[driver] = began
    return out
