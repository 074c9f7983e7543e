"""Live updates for open tracking pages. The database is the bus: one poll per interval finds new
order events and new location pings, whichever process wrote them, and wakes the pages of the
orders concerned. Nothing is polled while no page is open."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlmodel import col, select

from core.db import Database
from core.models import LocationPing, Order, OrderEvent, OrderStatus

log = logging.getLogger(__name__)


class LiveFeed:
    def __init__(self, db: Database, every_s: float = 0.25) -> None:
        self.db = db
        self.every_s = every_s
        self.pages: dict[int, set[asyncio.Queue[bool]]] = defaultdict(set)
        self.last_event = self.last_ping = -1
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watch(self, order_id: int) -> AsyncIterator[asyncio.Queue[bool]]:
        """A queue that gets an item whenever order `order_id` may look different."""
        queue: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)
        self.pages[order_id].add(queue)
        if self._task is None or self._task.done():
            await self._catch_up()
            self._task = asyncio.create_task(self._run())
        try:
            yield queue
        finally:
            self.pages[order_id].discard(queue)
            if not self.pages[order_id]:
                del self.pages[order_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _catch_up(self) -> None:
        async with self.db.reads() as session:
            self.last_event = (await session.exec(select(sa.func.max(OrderEvent.id)))).one() or 0
            self.last_ping = (await session.exec(select(sa.func.max(LocationPing.id)))).one() or 0

    async def _run(self) -> None:
        while self.pages:
            await asyncio.sleep(self.every_s)
            try:
                changed = await self.changes()
            except Exception:  # a failed poll is retried at the next tick
                log.exception("live updates: polling failed")
                continue
            for order_id in changed:
                for queue in self.pages.get(order_id, ()):
                    if queue.empty():
                        queue.put_nowait(True)

    async def changes(self) -> set[int]:
        """Orders with a new event, or whose driver sent a position, since the last call."""
        async with self.db.reads() as session:
            events = list(
                await session.exec(
                    select(OrderEvent.id, OrderEvent.order_id).where(
                        OrderEvent.id > self.last_event
                    )
                )
            )
            pings = list(
                await session.exec(
                    select(LocationPing.id, LocationPing.driver_id).where(
                        LocationPing.id > self.last_ping
                    )
                )
            )
            changed = {order_id for _, order_id in events}
            drivers = {driver_id for _, driver_id in pings}
            if drivers:
                moving = await session.exec(
                    select(Order.id).where(
                        col(Order.driver_id).in_(drivers),
                        Order.status == OrderStatus.OUT_FOR_DELIVERY,
                    )
                )
                changed |= {order_id for order_id in moving if order_id is not None}
        self.last_event = max([self.last_event, *(i for i, _ in events)])
        self.last_ping = max([self.last_ping, *(i for i, _ in pings)])
        return changed
