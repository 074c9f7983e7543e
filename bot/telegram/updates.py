"""Each Telegram update is processed once, and is acknowledged only when it was.

An update is claimed before it is processed (a repeat that comes while it is in hand waits),
marked done after, and given back when the database (or Redis) could not be reached: then it is
not acknowledged (`Deferred`: the webhook answers non-2xx, polling keeps the offset before it)
and comes again. Other failures are bugs: logged and acknowledged, so a poison update cannot come
back forever. While the database is out, each person who wrote is told once that their message
will be handled later."""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import Update

from core.db import unavailable

log = logging.getLogger(__name__)
KEEP_S = 24 * 3600  # Telegram gives up redelivering an update long before this
LEASE_S = 300  # an update claimed by a process that died is taken up again after this
PEOPLE_MAX = 50_000
PREFIX = "lastmile:tg:"


class Deferred(Exception):
    """The update was not processed now; it must not be acknowledged, so that it comes again."""


class Claim(enum.Enum):
    NEW = "new"  # yours to process
    BUSY = "busy"  # being processed (here or by another instance)
    DONE = "done"  # processed already


class UpdateLog(Protocol):
    async def claim(self, update_id: int) -> Claim: ...
    async def done(self, update_id: int, chat_id: int | None) -> None:
        """Processed; the chat's outage (if it had one) is over."""

    async def release(self, update_id: int) -> None: ...
    async def first_apology(self, chat_id: int) -> bool:
        """True the first time in an outage (until `done` for the chat) it is asked."""


class MemoryLog:
    """Updates and apologies of this process (one instance: enough)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.updates: OrderedDict[int, tuple[bool, float]] = OrderedDict()  # id -> (done, since)
        self.told: set[int] = set()

    async def claim(self, update_id: int) -> Claim:
        now = time.monotonic()
        while self.updates and (
            len(self.updates) >= self.size or next(iter(self.updates.values()))[1] < now - KEEP_S
        ):
            self.updates.popitem(last=False)
        if update_id in self.updates:
            done, since = self.updates[update_id]
            if done:
                return Claim.DONE
            if since > now - LEASE_S:
                return Claim.BUSY
        self.updates[update_id] = (False, now)
        return Claim.NEW

    async def done(self, update_id: int, chat_id: int | None) -> None:
        self.updates[update_id] = (True, time.monotonic())
        self.updates.move_to_end(update_id)
        if chat_id is not None:
            self.told.discard(chat_id)

    async def release(self, update_id: int) -> None:
        self.updates.pop(update_id, None)

    async def first_apology(self, chat_id: int) -> bool:
        if chat_id in self.told:
            return False
        if len(self.told) >= PEOPLE_MAX:
            self.told.clear()
        self.told.add(chat_id)
        return True


class RedisLog:
    """Updates and apologies shared by every instance using this Redis."""

    def __init__(self, url: str) -> None:
        from core.redis_pool import client

        self.redis = client(url, "updates")

    async def claim(self, update_id: int) -> Claim:
        key = f"{PREFIX}update:{update_id}"
        if await self.redis.set(key, "busy", nx=True, ex=LEASE_S):
            return Claim.NEW
        value = await self.redis.get(key)
        return Claim.BUSY if value in (b"busy", None) else Claim.DONE

    async def done(self, update_id: int, chat_id: int | None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{PREFIX}update:{update_id}", "done", ex=KEEP_S)
            if chat_id is not None:
                pipe.delete(f"{PREFIX}told:{chat_id}")
            await pipe.execute()

    async def release(self, update_id: int) -> None:
        await self.redis.delete(f"{PREFIX}update:{update_id}")

    async def first_apology(self, chat_id: int) -> bool:
        return bool(await self.redis.set(f"{PREFIX}told:{chat_id}", 1, nx=True, ex=KEEP_S))


def update_log(redis_url: str | None) -> UpdateLog:
    return RedisLog(redis_url) if redis_url else MemoryLog()


def chat_of(update: Update) -> int | None:
    """The chat an update comes from (the user's for a button under an inaccessible message)."""
    context = UserContextMiddleware.resolve_event_context(update)
    return context.chat_id or context.user_id


def language_of(update: Update) -> str | None:
    user = UserContextMiddleware.resolve_event_context(update).user
    return user.language_code if user else None


Feed = Callable[[Update], Awaitable[object]]
Apologize = Callable[[int, str | None], Awaitable[None]]


async def process_once(log_: UpdateLog, update: Update, feed: Feed, apologize: Apologize) -> None:
    """Feed `update` to the dispatcher unless it was processed already; `Deferred` when it
    could not be processed now (it must come again)."""
    number = update.update_id
    try:
        claim = await log_.claim(number)
    except Exception as exc:  # nothing was done: let it come again
        raise Deferred(f"update {number}: the update log cannot be read ({exc!r})") from exc
    if claim is Claim.DONE:
        log.info("update %s delivered again: ignored", number)
        return
    if claim is Claim.BUSY:
        raise Deferred(f"update {number} is being processed")
    chat = chat_of(update)
    try:
        await feed(update)
    except Exception as exc:
        if not unavailable(exc):
            log.exception("update %s failed; acknowledged, or it would come back forever", number)
        else:
            log.warning("update %s deferred, the database is unreachable: %r", number, exc)
            try:
                await log_.release(number)
                # a person waiting for an answer hears once per outage why it will come late
                waiting = update.message is not None or update.callback_query is not None
                if waiting and chat is not None and await log_.first_apology(chat):
                    await apologize(chat, language_of(update))
            except Exception:  # the claim's lease runs out; the apology is a courtesy
                log.warning("update %s: could not give it back or apologize", number, exc_info=True)
            raise Deferred(f"update {number}: the database is unreachable") from exc
    try:
        await log_.done(number, chat)
    except Exception:  # it was processed: acknowledge it all the same
        log.warning("update %s: could not mark it done", number, exc_info=True)
