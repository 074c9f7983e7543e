"""What open tracking pages show, read once for all of them, and when to show it again.

`Views` reads views in batches: every caller waits for the next read that starts after it asked
(so nobody sees data older than their request), one statement reads every token asked for
meanwhile, and the callers of one token share one view and its encoded JSON.

`LiveFeed` wakes the pages of an order when it may look different. The database is the bus: one
poll per interval finds new order events and new location pings, whichever process wrote them.
Nothing is polled while no page is open. Staff boards (`watch_all`) hear of every change: new
events, and positions of any driver. Rows are found by id, but ids are not committed in
order: on PostgreSQL a transaction takes its id from a sequence long before it commits, so a
poll can see id 11 while id 10 is still uncommitted. Each poll therefore also asks again for the
ids it skipped ("gaps") for `grace_s` seconds (a rolled-back transaction leaves a gap for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from core.db import READ_ONLY, Database
from core.errors import NotFound
from core.models import LocationPing, Order, OrderEvent, OrderStatus, is_tracking_token
from core.tracking.public import Expired, TrackingView, read_views

log = logging.getLogger(__name__)
GAPS_MAX = 1000  # ids below the highest seen that a poll asks for again, at most
BATCH_MAX = 500  # tokens read by one statement


class Views:
    """Tracking views, read in batches. A caller waits for the next read that starts after it
    asked, so it never sees data older than its request; everyone waiting for the same token
    shares one view (and its encoded JSON), and everyone waiting shares one statement."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: dict[str, asyncio.Future[TrackingView | None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, token: str, *, keep_days: float) -> TrackingView:
        if not is_tracking_token(token):  # before it joins a batch: nothing in it can fail it
            raise NotFound("tracking.unknown")
        future = self._waiting.get(token)
        if future is None:
            future = self._waiting[token] = asyncio.get_running_loop().create_future()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())
        view = await asyncio.shield(future)  # a caller that leaves does not cancel the others
        if view is None:
            raise NotFound("tracking.unknown")
        if view.expired(keep_days, self.db.now()):
            raise Expired("tracking.expired")
        return view

    async def _read(self) -> None:
        while self._waiting:
            tokens = list(self._waiting)[:BATCH_MAX]
            batch = {token: self._waiting.pop(token) for token in tokens}
            try:
                views = await read_views(self.db, tokens, self.db.now())
                for token, future in batch.items():
                    future.set_result(views.get(token))
            except Exception as exc:  # every caller of this batch gets the error
                for future in batch.values():
                    future.set_exception(exc)
                    future.exception()  # retrieved: callers that left must not log it again
            finally:  # cancelled (the app stops): nobody waits for ever
                for future in batch.values():
                    future.cancel()  # no-op once done

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Seen:
    """Which ids of a table the feed has seen: all up to `last` but the `gaps`."""

    def __init__(self, id_column: Any, key_column: Any) -> None:
        self.id, self.key = id_column, key_column
        self.last = 0
        self.gaps: dict[int, float] = {}  # id → when a poll first found it missing

    def query(self) -> sa.Select[Any]:
        ids = sa.or_(self.id > self.last, self.id.in_(list(self.gaps)))
        return sa.select(self.id, self.key).where(ids)

    def saw(self, ids: list[int], now: float, grace_s: float) -> None:
        for known in ids:
            self.gaps.pop(known, None)
        top = max(ids, default=0)
        if top > self.last:
            new = set(ids)
            for skipped in range(max(self.last + 1, top - GAPS_MAX), top):
                if skipped not in new:
                    self.gaps[skipped] = now
            self.last = top
        self.gaps = {i: since for i, since in self.gaps.items() if now - since <= grace_s}
        if len(self.gaps) > GAPS_MAX:  # the oldest go first
            self.gaps = dict(sorted(self.gaps.items())[-GAPS_MAX:])


class Changes:
    """What a board watching everything has not been told yet: "events", "pings" or both."""

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self._woken = asyncio.Event()

    def tell(self, kinds: set[str]) -> None:
        if kinds:
            self.kinds |= kinds
            self._woken.set()

    async def wait(self, seconds: float) -> set[str]:
        """The kinds of change since the last call (empty after `seconds` of none)."""
        try:
            await asyncio.wait_for(self._woken.wait(), seconds)
        except TimeoutError:
            return set()
        self._woken.clear()
        kinds, self.kinds = self.kinds, set()
        return kinds


class LiveFeed:
    def __init__(self, db: Database, every_s: float = 0.25, grace_s: float = 60.0) -> None:
        self.db = db
        self.every_s = every_s
        self.grace_s = grace_s  # how long a skipped id may take to commit
        self.views = Views(db)  # what the pages show, read once per change for all of them
        self.pages: dict[int, set[asyncio.Queue[bool]]] = defaultdict(set)
        self.events = Seen(col(OrderEvent.id), col(OrderEvent.order_id))
        self.pings = Seen(col(LocationPing.id), col(LocationPing.driver_id))
        self.boards: set[Changes] = set()
        self.new: set[str] = set()  # what the last poll found: "events", "pings"
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    async def _started(self) -> None:
        if self._task is None or self._task.done():
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._ready))
        assert self._ready is not None
        await asyncio.shield(self._ready)  # what happened before is in the first view

    @contextlib.asynccontextmanager
    async def watch(self, order_id: int) -> AsyncIterator[asyncio.Queue[bool]]:
        """A queue that gets an item whenever order `order_id` may look different."""
        queue: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)
        self.pages[order_id].add(queue)
        try:
            await self._started()
            yield queue
        finally:
            self.pages[order_id].discard(queue)
            if not self.pages[order_id]:
                del self.pages[order_id]

    @contextlib.asynccontextmanager
    async def watch_all(self) -> AsyncIterator[Changes]:
        """Told of every change: any order's new event, any driver's new position."""
        changes = Changes()
        self.boards.add(changes)
        try:
            await self._started()
            yield changes
        finally:
            self.boards.discard(changes)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.views.close()

    async def catch_up(self) -> None:
        """From now on, report what is new. Ids just below the highest are asked for again like
        gaps: a transaction may hold one of them uncommitted."""
        async with self.db.engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            for seen in (self.events, self.pings):
                top = (await connection.execute(sa.select(sa.func.max(seen.id)))).scalar()
                seen.last, seen.gaps = max((top or 0) - GAPS_MAX, 0), {}
        await self.changes()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            await self.catch_up()
        except Exception as exc:
            ready.set_exception(exc)
            ready.exception()  # the pages waiting get it; nobody else needs to log it
            return
        ready.set_result(None)
        while self.pages or self.boards:
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
            for board in self.boards:
                board.tell(self.new)

    async def changes(self) -> set[int]:
        """Orders with a new event, or whose driver sent a position, since the last call."""
        async with self.db.engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            events = (await connection.execute(self.events.query())).all()
            pings = (await connection.execute(self.pings.query())).all()
            changed = {order_id for _, order_id in events}
            drivers = {driver_id for _, driver_id in pings}
            if drivers:
                moving = await connection.execute(
                    sa.select(col(Order.id)).where(
                        col(Order.driver_id).in_(drivers),
                        col(Order.status) == OrderStatus.OUT_FOR_DELIVERY,
                    )
                )
                changed |= set(moving.scalars())
        self.new = {kind for kind, rows in (("events", events), ("pings", pings)) if rows}
        now = time.monotonic()
        self.events.saw([i for i, _ in events], now, self.grace_s)
        self.pings.saw([i for i, _ in pings], now, self.grace_s)
        return changed
