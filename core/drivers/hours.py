"""A driver's working hours: the local times of day she works, every day (`/hours 08:00-16:00`).

They let the planner count on a driver before she starts her shift, so the first driver on shift
does not take the whole day's orders into her van while the others are still on their way:
- before her shift she is *expected* from her hours' start until `NO_SHOW` after it, unless she
  has already been on shift today (then her day is over once she ends it); the planner gives her
  stops from her depot at her start time, and at `/shift` her route is ready;
- once on shift, her route ends by her hours' end (unless she gave her shift an end of its own);
- an expected driver who has not started `NO_SHOW` after her hours began is no longer counted
  on: `release_absent` sends the stops given to her back to be placed again (not a dispatcher's
  manual choice, which stays hers).
Drivers without hours are planned only while on shift, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from core.db import Database
from core.errors import DomainError
from core.models import Driver, Order, OrderStatus, ShiftState
from core.orders import lifecycle
from core.orders.lifecycle import Actor

NO_SHOW = timedelta(minutes=30)  # not on shift this long after her hours began: not counted on
HOURS = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*[-–]\s*(\d{1,2})(?::(\d{2}))?\s*$")


@dataclass(frozen=True)
class Span:
    starts: datetime
    ends: datetime


def parse(text: str) -> tuple[time, time]:
    """`08:00-16:00` (or `8-16`, `8:30–17`): her hours, starting before they end, within a day."""
    match = HOURS.match(text)
    if match is None:
        raise DomainError("hours.invalid", text=text[:40])
    h1, m1, h2, m2 = (int(g) if g else 0 for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise DomainError("hours.invalid", text=text[:40])
    starts = time(h1, m1)
    ends = time(23, 59) if h2 == 24 else time(h2, m2)
    if ends <= starts:
        raise DomainError("hours.backwards", text=text[:40])
    return starts, ends


def today(driver: Driver, now: datetime, zone: ZoneInfo) -> Span | None:
    """Her hours on `now`'s local day, if she has hours."""
    if driver.hours_from is None or driver.hours_until is None:
        return None
    day = now.astimezone(zone).date()
    return Span(
        datetime.combine(day, driver.hours_from, zone),
        datetime.combine(day, driver.hours_until, zone),
    )


def expected(driver: Driver, now: datetime, zone: ZoneInfo) -> Span | None:
    """Her hours today when the planner may count on her although she is not on shift: they
    have not ended, began less than `NO_SHOW` ago (or later today), and she has not been on
    shift today yet."""
    span = today(driver, now, zone)
    if span is None or driver.shift_state is ShiftState.ON:
        return None
    started = driver.shift_started_at
    if started is not None and started.astimezone(zone).date() == now.astimezone(zone).date():
        return None  # she worked today and ended her shift: her day is over
    if now >= span.ends or now >= span.starts + NO_SHOW:
        return None
    return span


async def set_hours(db: Database, driver_id: int, hours: tuple[time, time] | None) -> None:
    """Her working hours from now on (None: none, planned only while on shift)."""
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id, with_for_update=True)
        if driver is None:
            raise DomainError("error.driver_not_found", driver=driver_id)
        driver.hours_from, driver.hours_until = hours or (None, None)
        session.add(driver)


async def release_absent(
    db: Database, actor: Actor, *, now: datetime, zone: ZoneInfo, max_attempts: int
) -> list[int]:
    """Stops the planner gave to drivers it no longer counts on (not on shift, not expected: a
    no-show, or hours over) go back to be placed again; a dispatcher's manual assignment and a
    parcel already loaded stay. Returns the orders sent back."""
    async with db.transaction() as session:
        statement = (
            select(Order, Driver)
            .join(Driver, col(Driver.id) == Order.driver_id)
            .where(
                Order.status == OrderStatus.ASSIGNED,
                col(Order.loaded_at).is_(None),
                col(Order.driver_locked).is_(False),
                Driver.shift_state == ShiftState.OFF,
                col(Driver.hours_from).is_not(None),
            )
            .order_by(col(Order.id))
        )
        back = []
        for order, driver in list(await session.exec(statement)):
            if expected(driver, now, zone) is not None:
                continue
            assert order.id is not None
            await lifecycle.transition(
                session, order.id, OrderStatus.NEW, actor, max_attempts=max_attempts
            )
            back.append(order.id)
        return back
