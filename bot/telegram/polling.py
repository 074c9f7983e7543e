"""Long polling that acknowledges an update only after it was processed.

Telegram confirms every update below the `offset` of the next getUpdates. aiogram's polling
moves the offset on as soon as it has read an update, so one that failed is gone; here the
offset stays at the oldest update not yet processed. Each chat's updates are processed in order,
one at a time (chats side by side); an update deferred because the database is unreachable is
tried again, with a growing pause, until it goes through, and its chat's later updates wait
behind it. Updates fetched again while in hand are not processed twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.telegram.updates import Deferred, chat_of

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 10
FETCH_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)
RETRY_BACKOFF = BackoffConfig(min_delay=0.5, max_delay=10.0, factor=2.0, jitter=0.1)
IN_HAND_WAIT_S = 1.0  # only updates in hand came back: poll again after progress, or this
STOP_GRACE_S = 5.0


class Poller:
    def __init__(
        self, bot: Bot, process: Callable[[Update], Awaitable[None]], allowed: list[str]
    ) -> None:
        self.bot, self.process, self.allowed = bot, process, allowed
        self.offset: int | None = None
        self.in_hand: dict[int, bool] = {}  # update id (at or above the offset) -> processed
        self.queues: dict[int, deque[Update]] = {}  # chat -> its updates waiting, in order
        self.workers: dict[int, asyncio.Task[None]] = {}
        self._progress = asyncio.Event()  # set (and replaced) whenever an update is processed

    def next_offset(self) -> int | None:
        """The oldest update not processed yet, or the one after the newest; forgets the rest."""
        waiting = [number for number, processed in self.in_hand.items() if not processed]
        if waiting:
            self.offset = min(waiting)
        elif self.in_hand:
            self.offset = max(self.in_hand) + 1
        for number in [n for n in self.in_hand if self.offset is not None and n < self.offset]:
            del self.in_hand[number]
        return self.offset

    async def run(self) -> None:
        backoff = Backoff(FETCH_BACKOFF)
        timeout = self.bot.session.timeout or 60
        while True:
            method = GetUpdates(
                offset=self.next_offset(), timeout=POLL_TIMEOUT_S, allowed_updates=self.allowed
            )
            try:
                updates = await self.bot(method, request_timeout=int(timeout + POLL_TIMEOUT_S))
            except Exception as exc:  # Telegram unreachable: keep trying
                delay = next(backoff)
                log.error("Telegram: getUpdates failed (%r); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            fresh = [u for u in updates if u.update_id not in self.in_hand]
            for update in fresh:
                self.in_hand[update.update_id] = False
                self._queue(update)
            if updates and not fresh:  # the offset waits on updates in hand
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), IN_HAND_WAIT_S)

    def _queue(self, update: Update) -> None:
        chat = chat_of(update) or 0
        self.queues.setdefault(chat, deque()).append(update)
        if chat not in self.workers:
            self.workers[chat] = asyncio.create_task(self._work(chat))

    async def _work(self, chat: int) -> None:
        queue = self.queues[chat]
        try:
            while queue:
                await self._process(queue[0])
                self.in_hand[queue.popleft().update_id] = True
                self._progress.set()
                self._progress = asyncio.Event()
        finally:
            del self.queues[chat], self.workers[chat]

    async def _process(self, update: Update) -> None:
        backoff = Backoff(RETRY_BACKOFF)
        while True:
            try:
                await self.process(update)
                return
            except Deferred as exc:
                delay = next(backoff)
                log.warning("update %s: %s; again in %.1f s", update.update_id, exc, delay)
            except Exception:  # process() acknowledges bugs itself; never lose the worker
                log.exception("update %s failed", update.update_id)
                return
            with contextlib.suppress(TimeoutError):  # another update going through: retry now
                await asyncio.wait_for(self._progress.wait(), delay)

    async def stop(self) -> None:
        """Let the updates in hand finish (a while), then confirm what was processed."""
        workers = list(self.workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=STOP_GRACE_S)
            for task in late:  # not confirmed: Telegram gives them again after a restart
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        offset = self.next_offset()
        if offset is not None:
            with contextlib.suppress(Exception):
                await self.bot(GetUpdates(offset=offset, timeout=0, limit=1))
