"""Delivery metrics: pure functions over the rows a period needs (`rows.load` reads them).

The definitions (the README's "## Reports" says the same, one sentence each):
- an order **belongs** to a period when it was created in it, one of its delivery windows
  starts in it, or it was delivered, failed, returned or cancelled in it;
- **delivered** / **failed**: status changes to delivered / failed in the period (every failed
  attempt counts, grouped by the listed reason; the driver's own words count as "other");
- **on time**: delivered inside one of the order's delivery windows (an order without a window
  promised nothing and counts as on time), out of the delivered;
- **first attempt**: delivered on the first attempt, out of the orders that reached an end in the
  period (delivered or returned; cancelled orders are left out);
- **delivery time**: created → delivered and out for delivery (the last time before delivery) →
  delivered, averaged, and the 90th percentile by the nearest-rank method;
- **per shift / per hour on shift**: deliveries by drivers divided by their shifts that overlap
  the period, and by the hours of those shifts inside the period (a shift still open counts up to
  now);
- **actual km and drive time**: straight-line distance between consecutive location pings of a
  driver inside one of her shifts, counting a step (its distance and its time) when its speed
  is at least `MOVING_MPS`; **planned**: the distance and drive time of the day's saved routes;
- **rating**: the average rating of the delivered orders that were rated, and their share;
- **notifications not delivered**: outbox rows made in the period that ended dead or skipped;
- **still open**: orders of the period not delivered, returned or cancelled by its end.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import NamedTuple

import numpy as np

from core.drivers.stops import FAIL_REASONS
from core.models import OrderStatus
from core.routing.travel import great_circle_m

S = OrderStatus
OUTCOMES = (S.DELIVERED, S.FAILED, S.RETURNED, S.CANCELLED)
FINAL = (S.DELIVERED, S.RETURNED, S.CANCELLED)
MOVING_MPS = 1.0  # 3.6 km/h: slower steps between pings are standing, not driving


class OrderRow(NamedTuple):
    id: int
    ref: str
    customer: str  # first name
    status: OrderStatus  # now
    created_at: datetime
    windows: tuple[tuple[datetime, datetime], ...]  # delivery windows
    attempts: int
    driver_id: int | None
    rating: int | None


class EventRow(NamedTuple):
    order_id: int
    status: OrderStatus  # the status it changed to
    at: datetime
    reason: str | None = None  # a failure's listed reason code, else the driver's words


class ShiftRow(NamedTuple):
    driver_id: int
    started_at: datetime
    ended_at: datetime | None  # None: still on shift


class PingRow(NamedTuple):
    driver_id: int
    at: datetime
    lat: float
    lon: float


@dataclass
class Rows:
    """What the database holds about a stretch of time (see `rows.load`)."""

    now: datetime
    orders: dict[int, OrderRow] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)  # sorted by time
    shifts: list[ShiftRow] = field(default_factory=list)
    pings: list[PingRow] = field(default_factory=list)  # sorted by driver, then time
    drivers: dict[int, str] = field(default_factory=dict)  # first names
    planned_m: int = 0
    planned_drive_s: int = 0
    notifications_lost: int = 0
    belonging: dict[tuple[datetime, datetime], list[OrderRow]] = field(default_factory=dict)

    @cached_property
    def times(self) -> list[datetime]:
        return [event.at for event in self.events]

    def events_in(self, start: datetime, end: datetime) -> list[EventRow]:
        """The events of [start, end) (the events are in time order)."""
        times = self.times
        return self.events[bisect_left(times, start) : bisect_left(times, end)]

    @cached_property
    def by_order(self) -> dict[int, list[EventRow]]:
        grouped: dict[int, list[EventRow]] = defaultdict(list)
        for event in self.events:
            grouped[event.order_id].append(event)
        return grouped


@dataclass(frozen=True)
class Spread:
    average: float | None  # minutes
    p90: float | None


@dataclass(frozen=True)
class DriverLine:
    name: str
    delivered: int
    shifts: int
    hours: float
    km: float


@dataclass(frozen=True)
class Metrics:
    delivered: int
    failed: int
    failed_by_reason: dict[str, int]
    returned: int
    on_time: int
    on_time_rate: float | None  # 0..1
    first_attempt: int
    finished: int  # delivered or returned
    first_attempt_rate: float | None
    since_created: Spread
    since_out: Spread
    shifts: int
    shift_hours: float
    per_shift: float | None
    per_hour: float | None
    drive_s: int
    km: float
    planned_drive_s: int
    planned_km: float
    rating: float | None
    rated: int
    rated_share: float | None
    notifications_lost: int
    still_open: int
    drivers: tuple[DriverLine, ...]
    hourly: tuple[tuple[int, int, int], ...]  # (local hour, delivered, on time), 24 rows


class Tally(NamedTuple):
    """A period's outcomes as the database counts them (`rows.tally`): what the days a
    report is compared with need, without reading their rows."""

    delivered: int
    failed: int
    returned: int
    on_time: int
    first_attempt: int
    by_drivers: int  # deliveries with a driver
    rated: int
    rating_sum: int


def figures(tally: Tally, spells: list[tuple[int, datetime, datetime]]) -> dict[str, float | None]:
    """The compared metrics of a tally and its shifts (`shifts_in`), as `compute` defines them."""
    hours = sum((b - a).total_seconds() for _, a, b in spells) / 3600
    return {
        "delivered": tally.delivered,
        "failed": tally.failed,
        "on_time_rate": ratio(tally.on_time, tally.delivered),
        "first_attempt_rate": ratio(tally.first_attempt, tally.delivered + tally.returned),
        "per_shift": ratio(tally.by_drivers, len(spells)),
        "per_hour": ratio(tally.by_drivers, hours),
        "rating": ratio(tally.rating_sum, tally.rated),
    }


def compared(m: Metrics) -> dict[str, float | None]:
    """The same figures of computed metrics."""
    return {name: getattr(m, name) for name in COMPARED}


COMPARED = (
    "delivered",
    "failed",
    "on_time_rate",
    "first_attempt_rate",
    "per_shift",
    "per_hour",
    "rating",
)


def p90(values: list[float]) -> float | None:
    """The nearest-rank 90th percentile: the smallest value at least 90 % of them reach."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def spread(minutes: list[float]) -> Spread:
    return Spread(sum(minutes) / len(minutes) if minutes else None, p90(minutes))


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def inside(at: datetime, start: datetime, end: datetime) -> bool:
    return start <= at < end


def belongs(order: OrderRow, events: list[EventRow], start: datetime, end: datetime) -> bool:
    """Whether an order is one of the period's (see the module's definitions)."""
    return (
        inside(order.created_at, start, end)
        or any(inside(w_start, start, end) for w_start, _ in order.windows)
        or any(e.status in OUTCOMES and inside(e.at, start, end) for e in events)
    )


def on_time(order: OrderRow, delivered_at: datetime) -> bool:
    return not order.windows or any(a <= delivered_at <= b for a, b in order.windows)


def period_orders(rows: Rows, start: datetime, end: datetime) -> list[OrderRow]:
    """The period's orders, by number (worked out once per period: the CSV asks again)."""
    key = (start.astimezone(UTC), end.astimezone(UTC))
    if key not in rows.belonging:
        events = rows.by_order
        rows.belonging[key] = [
            o for i, o in sorted(rows.orders.items()) if belongs(o, events.get(i, []), start, end)
        ]
    return rows.belonging[key]


def compute(rows: Rows, start: datetime, end: datetime, zone: object) -> Metrics:
    """Every metric of [start, end) (aware datetimes); `zone` (a tzinfo) buckets the hours."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)  # DST days: real hours, not wall
    events = rows.by_order
    delivered: list[tuple[OrderRow, EventRow]] = []
    failed: dict[str, int] = defaultdict(int)
    returned = 0
    since_created, since_out = [], []
    for event in rows.events_in(start, end):
        order = rows.orders[event.order_id]
        if event.status is S.DELIVERED:
            delivered.append((order, event))
            since_created.append(minutes(event.at - order.created_at))
            outs = [
                e.at
                for e in events[order.id]
                if e.status is S.OUT_FOR_DELIVERY and e.at <= event.at
            ]
            if outs:
                since_out.append(minutes(event.at - outs[-1]))
        elif event.status is S.FAILED:
            failed[event.reason if event.reason in FAIL_REASONS else "other"] += 1
        elif event.status is S.RETURNED:
            returned += 1
    timely = [(o, e) for o, e in delivered if on_time(o, e.at)]
    first = sum(1 for o, _ in delivered if o.attempts <= 1)
    ratings = [o.rating for o, _ in delivered if o.rating is not None]
    hourly = [[0, 0] for _ in range(24)]
    for order, event in delivered:
        hour = event.at.astimezone(zone).hour  # type: ignore[arg-type]
        hourly[hour][0] += 1
        hourly[hour][1] += on_time(order, event.at)
    mine = period_orders(rows, start, end)
    still_open = sum(1 for o in mine if not ended_by(events.get(o.id, []), end))
    spells = shifts_in(rows, start, end)
    drive = driving(rows, spells)
    per_driver: dict[int, int] = defaultdict(int)
    for order, _ in delivered:
        if order.driver_id is not None:
            per_driver[order.driver_id] += 1
    hours: dict[int, float] = defaultdict(float)
    count: dict[int, int] = defaultdict(int)
    for driver_id, a, b in spells:
        hours[driver_id] += (b - a).total_seconds() / 3600
        count[driver_id] += 1
    ids = sorted(set(per_driver) | set(count), key=lambda i: (-per_driver[i], i))
    lines = tuple(
        DriverLine(
            rows.drivers.get(i, f"#{i}"),
            per_driver[i],
            count[i],
            hours[i],
            drive.get(i, (0.0, 0.0))[0] / 1000,
        )
        for i in ids
    )
    by_drivers = sum(per_driver.values())
    total_hours = sum((b - a).total_seconds() for _, a, b in spells) / 3600  # as `figures`
    return Metrics(
        delivered=len(delivered),
        failed=sum(failed.values()),
        failed_by_reason=dict(sorted(failed.items(), key=lambda item: (-item[1], item[0]))),
        returned=returned,
        on_time=len(timely),
        on_time_rate=ratio(len(timely), len(delivered)),
        first_attempt=first,
        finished=len(delivered) + returned,
        first_attempt_rate=ratio(first, len(delivered) + returned),
        since_created=spread(since_created),
        since_out=spread(since_out),
        shifts=len(spells),
        shift_hours=total_hours,
        per_shift=ratio(by_drivers, len(spells)),
        per_hour=ratio(by_drivers, total_hours),
        drive_s=round(sum(s for _, s in drive.values())),
        km=sum(m for m, _ in drive.values()) / 1000,
        planned_drive_s=rows.planned_drive_s,
        planned_km=rows.planned_m / 1000,
        rating=ratio(sum(ratings), len(ratings)),
        rated=len(ratings),
        rated_share=ratio(len(ratings), len(delivered)),
        notifications_lost=rows.notifications_lost,
        still_open=still_open,
        drivers=lines,
        hourly=tuple((h, d, t) for h, (d, t) in enumerate(hourly)),
    )


def minutes(span: timedelta) -> float:
    return span.total_seconds() / 60


def ended_by(events: list[EventRow], end: datetime) -> bool:
    return any(e.status in FINAL and e.at < end for e in events)


def shifts_in(rows: Rows, start: datetime, end: datetime) -> list[tuple[int, datetime, datetime]]:
    """(driver, from, to) of every shift overlapping [start, end), cut to it (and to now)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    spells = []
    for shift in rows.shifts:
        a = max(shift.started_at, start)
        b = min(shift.ended_at or rows.now, end)
        if b > a:
            spells.append((shift.driver_id, a, b))
    return spells


def driving(
    rows: Rows, spells: list[tuple[int, datetime, datetime]]
) -> dict[int, tuple[float, float]]:
    """driver -> (metres, seconds) moving between consecutive pings inside one of her shifts
    (haversine, vectorized per shift)."""
    pings: dict[int, list[PingRow]] = defaultdict(list)
    for ping in rows.pings:
        pings[ping.driver_id].append(ping)
    done: dict[int, tuple[float, float]] = {}
    for driver_id, a, b in spells:
        m, s = done.get(driver_id, (0.0, 0.0))
        inside_shift = [p for p in pings.get(driver_id, []) if a <= p.at <= b]
        if len(inside_shift) > 1:
            seconds = np.diff([p.at.timestamp() for p in inside_shift])
            lat = np.array([p.lat for p in inside_shift])
            lon = np.array([p.lon for p in inside_shift])
            steps = great_circle_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
            moving = (seconds > 0) & (steps >= MOVING_MPS * seconds)
            m, s = m + float(steps[moving].sum()), s + float(seconds[moving].sum())
        done[driver_id] = (m, s)
    return done
