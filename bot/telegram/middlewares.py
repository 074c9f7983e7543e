"""Around every update: drop repeats of the same update_id; find out who is writing."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User

from bot.telegram.replies import answer
from core.errors import DomainError
from core.services.hub import Services
from core.services.members import Identity, TelegramUser, identify_telegram
from core.texts import t

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
KEEP_S = 24 * 3600  # Telegram gives up redelivering an update long before this
KNOWN_S = 30.0  # a member's roles are re-read at least this often (a location stream is busy)
KNOWN_MAX = 50_000


class SeenIds(Protocol):
    async def first_time(self, update_id: int) -> bool: ...


class MemorySeen:
    """Update ids seen by this process (one instance: enough)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.seen: OrderedDict[int, float] = OrderedDict()

    async def first_time(self, update_id: int) -> bool:
        now = time.monotonic()
        while self.seen and (
            len(self.seen) >= self.size or next(iter(self.seen.values())) < now - KEEP_S
        ):
            self.seen.popitem(last=False)
        if update_id in self.seen:
            return False
        self.seen[update_id] = now
        return True


class RedisSeen:
    """Update ids seen by any instance sharing this Redis."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)

    async def first_time(self, update_id: int) -> bool:
        return bool(await self.redis.set(f"lastmile:tg:update:{update_id}", 1, nx=True, ex=KEEP_S))


def update_ids_store(redis_url: str | None) -> SeenIds:
    return RedisSeen(redis_url) if redis_url else MemorySeen()


class Deduplicate(BaseMiddleware):
    def __init__(self, seen: SeenIds) -> None:
        self.seen = seen

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if not await self.seen.first_time(event.update_id):
            log.info("update %s delivered again: ignored", event.update_id)
            return None
        return await handler(event, data)


class Identify(BaseMiddleware):
    """Puts `who` (the core Identity) and `lang` into the handler data."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.known: dict[int, tuple[float, int, Identity]] = {}  # user -> (until, chat, who)

    def forget(self, user_id: int) -> None:
        """Their roles changed (they joined): look them up afresh next time."""
        self.known.pop(user_id, None)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is None or user.is_bot:
            return None
        chat_id = chat.id if chat else user.id
        now = time.monotonic()
        until, known_chat, who = self.known.get(user.id, (0.0, 0, None))
        if who is None or until < now or known_chat != chat_id:
            person = TelegramUser(user.id, chat_id, user.full_name, user.language_code)
            who = await identify_telegram(self.services.db, person)
            if who.known:  # members are remembered briefly; a stranger may join any moment
                if len(self.known) > KNOWN_MAX:
                    self.known.clear()
                self.known[user.id] = (now + KNOWN_S, chat_id, who)
        data["who"] = who
        data["identities"] = self
        data["lang"] = who.language
        return await handler(event, data)


class Refusals(BaseMiddleware):
    """A DomainError from a core service becomes a clear reply in the same chat; anything
    else is logged with context and answered with an apology (nothing was changed)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        lang = data.get("lang")
        try:
            return await handler(event, data)
        except DomainError as exc:
            text = exc.message(lang)
        except Exception:
            log.exception("handling %s failed", type(event).__name__)
            text = t("error.generic", lang)
        if isinstance(event, CallbackQuery):
            with contextlib.suppress(TelegramBadRequest):  # the handler may have answered it
                await event.answer()
            await answer(event, text)
        elif isinstance(event, Message):
            await event.answer(text)
        return None
