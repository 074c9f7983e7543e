"""Around every message and button press: find out who is writing; answer what fails outside
the core (which answers its own refusals)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from core.bootstrap import Services
from core.db import unavailable
from core.errors import DomainError
from core.people.identities import Person, telegram_chat
from core.texts import t

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Identify(BaseMiddleware):
    """Puts `who` (the core Identity) and `lang` into the handler data."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is None or user.is_bot:
            return None
        chat_id = chat.id if chat else user.id
        who = await self.services.conversations.identify(
            telegram_chat(user.id, chat_id), Person(user.full_name, user.language_code)
        )
        data["who"] = who
        data["lang"] = who.language
        return await handler(event, data)


class Refusals(BaseMiddleware):
    """A DomainError from a core service becomes a clear reply in the same chat; an unreachable
    database is left to the caller (the update is deferred, bot.telegram.updates); anything else
    is logged with context and answered with an apology (nothing was changed)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        lang = data.get("lang")
        try:
            return await handler(event, data)
        except DomainError as exc:
            text = exc.message(lang)
        except Exception as exc:
            if unavailable(exc):
                raise
            log.exception("handling %s failed", type(event).__name__)
            text = t("error.generic", lang)
        if isinstance(event, CallbackQuery):
            with contextlib.suppress(TelegramBadRequest):  # the handler may have answered it
                await event.answer()
            if event.message is not None:
                await event.bot.send_message(event.message.chat.id, text)  # type: ignore[union-attr]
        elif isinstance(event, Message):
            await event.answer(text)
        return None
