"""Where drivers are: location pings, live-sharing expiry, "driver nearby", stale alerts.

A live location in chat is a stream of edits that ends either with a final edit (the driver
stopped sharing) or silently at `date + live_period`. `live_until` keeps that end; a driver on
shift whose position is older than the stale limit, or whose sharing ended, is asked once to share
again and the dispatchers are told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from core.clock import Clock
from core.config import TrackingSettings
from core.db import Database
from core.dispatch.planner import Eta, Planner
from core.drivers.loading import check_departure
from core.errors import DomainError
from core.models import (
    Driver,
    LocationPing,
    Order,
    OrderEvent,
    ShiftState,
)
from core.notify import outbox
from core.notify.rules import Notice, dispatcher_members
from core.orders import lifecycle
from core.orders.lifecycle import SYSTEM

log = logging.getLogger(__name__)
ETA_EVERY_S = 30.0  # a driver's ETAs are recomputed at most this often (service time)
ETA_PACE_S = 1.0  # and at most once a real second (a fast clock must not swamp the service)


@dataclass(frozen=True)
class Fix:
    """One position report."""

    lat: float
    lon: float
    at: datetime
    live_until: datetime | None = None  # None: a one-off pin, or the end of live sharing
    live: bool = False
    accuracy_m: float | None = None
    heading: int | None = None
    speed_mps: float | None = None


_PINGS = LocationPing.__table__  # type: ignore[attr-defined]
_DRIVERS = Driver.__table__  # type: ignore[attr-defined]
# Built once: a ping is the busiest write there is (Core statements, no ORM bookkeeping).
SAVE_PING = sa.insert(_PINGS)
MOVE_DRIVER = (
    sa.update(_DRIVERS)
    .where(
        _DRIVERS.c.id == sa.bindparam("driver"),
        sa.or_(_DRIVERS.c.last_seen_at.is_(None), _DRIVERS.c.last_seen_at <= sa.bindparam("at")),
    )
    .values(
        last_lat=sa.bindparam("lat"),
        last_lon=sa.bindparam("lon"),
        last_seen_at=sa.bindparam("at"),
        live_until=sa.bindparam("until"),
        stale_alerted_at=None,
    )
)


async def record(db: Database, driver_id: int, fix: Fix) -> None:
    """Save a ping and the driver's latest position (older pings never move her back)."""
    async with db.transaction() as session:
        connection = await session.connection()
        await connection.execute(
            SAVE_PING,
            {
                "driver_id": driver_id,
                "lat": fix.lat,
                "lon": fix.lon,
                "accuracy_m": fix.accuracy_m,
                "heading": fix.heading,
                "speed_mps": fix.speed_mps,
                "live": fix.live,
                "recorded_at": fix.at,
                "received_at": db.now(),
            },
        )
        await connection.execute(
            MOVE_DRIVER,
            {"driver": driver_id, "at": fix.at, "lat": fix.lat, "lon": fix.lon,
             "until": fix.live_until},
        )  # fmt: skip


async def stop_sharing(db: Database, driver_id: int, at: datetime) -> None:
    async with db.transaction() as session:
        await session.exec(
            sa.update(Driver).where(Driver.id == driver_id).values(live_until=at)  # type: ignore[arg-type]
        )


class Positions:
    """Pings in, ETAs and "nearby" notices out. ETA work runs in the background, at most one
    at a time per driver and at most every `ETA_EVERY_S`, so a ping is answered at once."""

    def __init__(
        self,
        db: Database,
        planner: Planner,
        settings: TrackingSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.planner = planner
        self.settings = settings or TrackingSettings()
        self.clock: Clock = clock or db.now
        self._last: dict[int, tuple[datetime, float]] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ping(self, driver_id: int, fix: Fix) -> None:
        await record(self.db, driver_id, fix)
        now, real = self.clock(), time.monotonic()  # service time; real time paces the work
        last = self._last.get(driver_id)
        if last is not None and (
            now - last[0] < timedelta(seconds=ETA_EVERY_S) or real - last[1] < ETA_PACE_S
        ):
            return
        if (running := self._running.get(driver_id)) is not None and not running.done():
            return  # one refresh per driver at a time; the next ping after it starts another
        self._last[driver_id] = (now, real)
        task = asyncio.create_task(self._after_ping(driver_id))
        self._running[driver_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background ETA work (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _after_ping(self, driver_id: int) -> None:
        try:
            await check_departure(self.db, driver_id, SYSTEM, now=self.clock())
            etas = await self.planner.on_location(driver_id, SYSTEM)
            await self.notify_nearby(etas)
            await self.alert_at_risk(etas)
        except Exception:  # a failed ETA refresh must not lose the ping or stop the loop
            log.exception("ETA refresh for driver %s failed", driver_id)

    async def notify_nearby(self, etas: dict[int, Eta]) -> list[int]:
        """Tell each customer whose driver, on her way to them, is close (by ETA or in a straight
        line), once per delivery attempt."""
        soon = timedelta(minutes=self.settings.nearby_minutes)
        told = []
        for order_id, eta in etas.items():
            metres = eta.metres is not None and eta.metres <= self.settings.nearby_metres
            near = eta.heading and (eta.at - self.clock() <= soon or metres)
            if near and await self._once(order_id, "driver_nearby", {"attempt": eta.attempt}):
                told.append(order_id)
        return told

    async def alert_at_risk(self, etas: dict[int, Eta]) -> list[int]:
        """Tell the dispatchers, once per attempt, about orders now predicted after their window."""
        late = []
        for order_id, eta in etas.items():
            if eta.window_end is not None and eta.at > eta.window_end:
                minutes = int((eta.at - eta.window_end).total_seconds() // 60) + 1
                data = {"attempt": eta.attempt, "reason": f"+{minutes} min"}
                if await self._once(order_id, "at_risk", data):
                    late.append(order_id)
        return late

    async def _once(self, order_id: int, kind: str, data: dict[str, object]) -> bool:
        """Record note `kind` on the order unless one exists for this attempt already."""
        async with self.db.transaction() as session:
            await session.exec(select(Order.id).where(Order.id == order_id).with_for_update())
            statement = select(OrderEvent.data).where(
                OrderEvent.order_id == order_id, OrderEvent.kind == kind
            )
            if any(
                seen.get("attempt") == data["attempt"] for seen in await session.exec(statement)
            ):
                return False
            await lifecycle.note(session, order_id, kind, SYSTEM, data)
            return True

    async def check_stale(self) -> list[int]:
        """Ask drivers on shift whose position went stale to share again; tell dispatchers.
        Once per stale spell: a new ping ends the spell."""
        now = self.clock()
        limit = now - timedelta(minutes=self.settings.stale_minutes)
        async with self.db.transaction() as session:
            statement = (
                select(Driver)
                .where(
                    Driver.shift_state == ShiftState.ON,
                    col(Driver.stale_alerted_at).is_(None),
                    sa.or_(
                        col(Driver.last_seen_at).is_(None),
                        col(Driver.last_seen_at) < limit,
                        col(Driver.live_until) < now,
                    ),
                )
                .with_for_update(skip_locked=True)
            )
            stale = list((await session.exec(statement)).all())
            staff = await dispatcher_members(session)
            for driver in stale:
                driver.stale_alerted_at = now
                session.add(driver)
                since = driver.last_seen_at
                minutes = int((now - since).total_seconds() // 60) if since else None
                params = {"driver_id": driver.id, "minutes": minutes}
                spell = f"stale:{driver.id}:{now.isoformat()}"
                notice = Notice(driver.member_id, "driver.share_location_again", params)
                await outbox.add(session, notice, f"{spell}:{driver.member_id}")
                acts = ({"action": "driver.ask_location", "driver_id": driver.id},)
                for member_id in staff:
                    alert = Notice(member_id, "dispatcher.driver_stale", params, acts)
                    await outbox.add(session, alert, f"{spell}:{member_id}")
            return [d.id for d in stale if d.id is not None]


async def ask_location(db: Database, driver_id: int, *, by: int | None) -> None:
    """A dispatcher asks a driver to share her location again."""
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id)
        if driver is None:
            raise DomainError("error.driver_not_found", driver=driver_id)
        notice = Notice(driver.member_id, "driver.share_location_again", {"driver_id": driver_id})
        await outbox.add(session, notice, f"ask-location:{driver_id}:{db.now().isoformat()}:{by}")
