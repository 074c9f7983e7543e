"""The autopilot: every order waiting for a driver is placed by the core, right after the order
is committed, and a driver who is ready sets off by herself.

Orders wait in the `placements` queue (written by the lifecycle in the order's own transaction;
see `orders/placements.py`). The worker is woken in-process when such a transaction commits
and also polls every `poll_s`, for orders written by other processes and for rows left behind by
a process that died. It claims due rows under a lease (a token and an expiry, as the senders do,
`core/leases.py`), so two instances never place the same order, and then:

- one order: cheapest insertion (`Planner.insert_order`);
- several at once (a CSV, an API batch, orders waiting when a driver starts): one batch solve
  (`Planner.place`), every stop already on a route kept with its driver;
- an order nobody can take stays new: the "unassignable" note with its reason, which alerts the
  dispatchers once (again only after the order changed), and the row is parked until a driver
  starts a shift or shares her location, or the day's planning time; while no driver is on
  shift or expected by her working hours (`drivers/hours.py`) at all (before the day starts),
  today's orders wait so, without an alert each;
- an order for a later day waits for that day's planning time (`DISPATCH_PLAN_AT`, local), or a
  driver starting her shift on that day, whichever comes first.

Re-plans (`reoptimize`): the scheduler's `dispatch.reoptimize` job, and after every commit that
left a hole in a route (an order cancelled, failed or sent back to dispatch) — the worker runs one
after its placements, so re-plans and placements never overlap in one process. Stops stay with
their driver unless moving them saves more than `DISPATCH_MOVE_MIN_SAVING_MINUTES`
(`replan.py`).

Routes start themselves: a driver on shift who is sharing her live location, with stops and
none under way, gets her first stop sent out for delivery (`Stops.start_next`) after every
commit that gives her an order (placed by the autopilot or assigned by hand), on her live
location and on her shift start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select

from core.clock import Clock
from core.config import Settings
from core.db import Database
from core.dispatch import replan, world
from core.dispatch.planner import Planner
from core.drivers import hours
from core.drivers.stops import Stops
from core.errors import DomainError
from core.leases import new_token
from core.models import Driver, Order, OrderWindow, Placement, ShiftState, StopKind
from core.models.types import UTCDateTime
from core.orders import lifecycle, placements
from core.orders.lifecycle import SYSTEM
from core.texts import t

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
BATCH = 1000  # orders claimed (and solved together) at most per pass


@dataclass
class Stats:
    """What the worker did, for tests and benchmarks."""

    passes: int = 0
    insertions: int = 0  # single orders placed by cheapest insertion
    solves: int = 0  # batch solves
    placed: int = 0
    unassignable: int = 0
    started: int = 0  # first stops sent out for delivery
    replans: int = 0


@dataclass(frozen=True)
class Outcome:
    placed: dict[int, int]  # order -> driver
    unplaced: dict[int, str]  # order -> why nobody took it
    retry: set[int]  # changed while being placed: try again


class Autopilot:
    def __init__(
        self,
        db: Database,
        planner: Planner,
        stops: Stops,
        settings: Settings,
        *,
        clock: Clock | None = None,
        poll_s: float = 2.0,
        lease: timedelta = LEASE,
    ) -> None:
        self.db = db
        self.planner = planner
        self.stops = stops
        self.settings = settings
        self.clock: Clock = clock or db.now
        self.poll_s = poll_s
        self.lease = lease
        self.zone = ZoneInfo(settings.app.timezone)
        self.stats = Stats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pass = asyncio.Lock()
        self._replan_wanted = False
        self._starts: set[asyncio.Task[None]] = set()
        self._starting: dict[int, asyncio.Lock] = {}

    @property
    def on(self) -> bool:
        return self.settings.dispatch.mode == "auto"

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Run the worker (auto mode only); woken on each commit that queued an order."""
        if not self.on or self._task is not None:
            return
        self.db.on_commit(placements.TOPIC, lambda _: self.wake())
        self.db.on_commit(placements.ASSIGNED_TOPIC, self._assigned)
        self.db.on_commit(placements.REPLAN_TOPIC, lambda _: self._want_replan())
        self.planner.on_late = lambda _driver: self._want_replan()
        self._task = asyncio.create_task(self._run(), name="autopilot")

    def _assigned(self, info: dict[str, Any]) -> None:
        """Orders were given to drivers (by anyone): each may set off now."""
        for driver_id in info.get("assigned_drivers", ()):
            task = asyncio.create_task(self._start_quietly(driver_id))
            self._starts.add(task)
            task.add_done_callback(self._starts.discard)

    async def _start_quietly(self, driver_id: int) -> None:
        try:
            await self.start_route(driver_id)
        except Exception:  # she can still tap Start route; the next trigger tries again
            log.exception("could not start the route of driver %s", driver_id)

    async def stop(self) -> None:
        self.planner.on_late = None
        while self._starts:
            await asyncio.gather(*list(self._starts), return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    def _want_replan(self) -> None:
        self._replan_wanted = True
        self.wake()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
                if self._replan_wanted:
                    self._replan_wanted = False
                    await self.reoptimize()
            except Exception:  # the rows stay queued: the next pass tries them again
                log.exception("autopilot pass failed")

    async def run_once(self) -> int:
        """Claim the due orders and place them; how many were claimed."""
        async with self._pass:
            token = new_token()
            claimed = await self._claim(token)
            if not claimed:
                return 0
            self.stats.passes += 1
            try:
                await self._handle(claimed, token)
            except BaseException:
                await self._release(claimed, token)  # due again at once, not after the lease
                raise
            return len(claimed)

    # -- what others call ------------------------------------------------------------------

    async def plan_day(self) -> int:
        """Place every waiting order of today (the planning-time job); how many were placed.
        Nothing in manual mode."""
        if not self.on:
            return 0
        before = self.stats.placed
        await self._make_due(self.today())
        while await self.run_once():
            pass
        return self.stats.placed - before

    async def reoptimize(self) -> replan.ReplanReport | None:
        """Re-plan today from where everyone is now, changing only what is worth it (the
        periodic job, and after a hole in a route); nothing in manual mode."""
        if not self.on:
            return None
        async with self._pass:
            self.stats.replans += 1
            back = await hours.release_absent(
                self.db, SYSTEM, now=self.clock(), zone=self.zone,
                max_attempts=self.settings.orders.max_attempts,
            )  # fmt: skip
            if back:
                log.info("orders of drivers who did not start, placed again: %s", back)
            minutes = self.settings.dispatch.move_min_saving_minutes
            return await replan.reoptimize(self.planner, SYSTEM, min_saving_minutes=minutes)

    async def driver_ready(self, driver_id: int) -> None:
        """A driver started her shift or shares her location: she may take today's waiting
        orders (retried now), and she sets off if she can."""
        if not self.on:
            return
        await self._make_due(self.today())
        self.wake()
        await self.start_route(driver_id)

    async def start_route(self, driver_id: int) -> int | None:
        """Send her first stop out for delivery if she is on shift, sharing her live location
        and not under way already (auto mode); the order sent out, if any."""
        if not self.on:
            return None
        async with self._starting.setdefault(driver_id, asyncio.Lock()):  # one at a time
            async with self.db.reads() as session:
                driver = await session.get(Driver, driver_id)
            now = self.clock()
            if driver is None or driver.shift_state is not ShiftState.ON:
                return None
            if driver.live_until is None or driver.live_until <= now:
                return None
            started = await self.stops.start_next(driver_id, SYSTEM)
            if started is not None:
                self.stats.started += 1
            return started

    # -- the queue ---------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def plan_time(self, day: date) -> datetime:
        """When orders of `day` are planned: its DISPATCH_PLAN_AT, local."""
        at = self.settings.dispatch.plan_at
        local = datetime.combine(day, time(at.hour, at.minute), tzinfo=self.zone)
        return local.astimezone(UTC)

    async def _claim(self, token: str) -> list[Placement]:
        return await placements.claim(self.db, token, self.clock(), self.lease, BATCH)

    async def _release(self, rows: list[Placement], token: str) -> None:
        await placements.release(self.db, [row.order_id for row in rows], token)

    async def _make_due(self, day: date) -> None:
        await placements.make_due(self.db, day)

    async def _handle(self, rows: list[Placement], token: str) -> None:
        ids = [row.order_id for row in rows]
        async with self.db.reads() as session:
            orders = {
                o.id: o for o in await session.exec(select(Order).where(col(Order.id).in_(ids)))
            }
            first_open = sa.func.min(OrderWindow.starts_at, type_=UTCDateTime())
            statement = (
                select(OrderWindow.order_id, first_open)
                .where(col(OrderWindow.order_id).in_(ids), OrderWindow.stop == StopKind.DELIVERY)
                .group_by(col(OrderWindow.order_id))
            )
            opens: dict[int, datetime] = dict((await session.exec(statement)).all())
            planned, _ = await world.drivers_planned(session, self.clock(), self.zone)
            nobody_on_shift = not planned
        today = self.today()
        later: dict[int, datetime] = {}
        unplaced: dict[int, str] = {}
        todo: list[int] = []
        waits: set[int] = set()
        for order_id in ids:
            order = orders.get(order_id)
            if order is None or order.status not in lifecycle.WAITING:
                continue  # moved on meanwhile: its transaction took it off the queue
            day = order.due_date  # else the day its first window opens (a slot picked anew)
            if day is None and opens.get(order_id) is not None:
                day = opens[order_id].astimezone(self.zone).date()
            if day is not None and day > today:
                later[order_id] = self.plan_time(day)
            elif order.lat is None or order.lon is None:
                unplaced[order_id] = t("dispatch.no_location")
            elif nobody_on_shift:
                waits.add(order_id)  # for the first driver to start her shift: no alert
            else:
                todo.append(order_id)
        outcome = await self._place(todo)
        unplaced.update(outcome.unplaced)
        self.stats.placed += len(outcome.placed)
        await self._settle(token, later, unplaced, outcome.retry, waits)
        # the drivers who got orders set off, if they can: `_assigned`, after each commit

    async def _place(self, order_ids: list[int]) -> Outcome:
        if not order_ids:
            return Outcome({}, {}, set())
        if len(order_ids) == 1:
            order_id = order_ids[0]
            self.stats.insertions += 1
            try:
                insertion = await self.planner.insert_order(order_id, SYSTEM, note=False)
            except DomainError:  # no longer waiting: moved on meanwhile
                return Outcome({}, {}, {order_id})
            if insertion.vehicle is not None:
                return Outcome({order_id: int(insertion.vehicle)}, {}, set())
            if insertion.reason == t("dispatch.changed"):
                return Outcome({}, {}, {order_id})
            return Outcome({}, {order_id: insertion.reason or t("dispatch.no_driver")}, set())
        self.stats.solves += 1
        report = await self.planner.place(order_ids, SYSTEM)
        placed = {a.order_id: a.driver_id for a in report.assigned}
        asked = set(order_ids)
        retry = set(report.skipped) & asked
        unplaced = {
            order_id: report.unassigned.get(order_id) or t("dispatch.no_driver")
            for order_id in order_ids
            if order_id not in placed and order_id not in retry
        }
        return Outcome(placed, unplaced, retry)

    async def _settle(
        self,
        token: str,
        later: dict[int, datetime],
        unplaced: dict[int, str],
        retry: set[int],
        waits: set[int],
    ) -> None:
        """Write back what this pass decided, for the rows it still holds (a row whose order
        changed meanwhile was written afresh, without this token, and is left alone). `waits`:
        parked without an alert, for the first driver who starts her shift."""
        if not (later or unplaced or retry or waits):
            return
        async with self.db.transaction() as session:
            ids = sorted({*later, *unplaced, *retry, *waits})
            # orders first, then their rows, as the lifecycle does: no deadlock with it
            await session.exec(
                select(Order.id)
                .where(col(Order.id).in_(ids))
                .order_by(col(Order.id))
                .with_for_update()
            )
            statement = (
                select(Placement)
                .where(col(Placement.order_id).in_(ids), col(Placement.lease_token) == token)
                .with_for_update()
            )
            for row in await session.exec(statement):
                row.lease_token = row.leased_until = None
                if row.order_id in later:
                    row.due_at = later[row.order_id]
                elif row.order_id in waits:
                    row.parked = True
                elif row.order_id in unplaced:
                    row.parked = True
                    if not row.alerted:
                        row.alerted = True
                        self.stats.unassignable += 1
                        reason = {"reason": unplaced[row.order_id]}
                        await lifecycle.note(session, row.order_id, "unassignable", SYSTEM, reason)
                session.add(row)
