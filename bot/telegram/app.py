"""The Telegram channel: one aiogram Bot and Dispatcher over the core services.

Long polling by default; in webhook mode the FastAPI app feeds updates in through `feed`.
`run()` also runs the outbox sender and the stale-location check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommandScopeChat, BotCommandScopeDefault, Update

from bot.telegram import keyboards
from bot.telegram.middlewares import Deduplicate, Identify, Refusals, update_ids_store
from bot.telegram.routers import common, customer, dispatcher, driver, fallback
from bot.telegram.sender import Sender
from core.models import Role
from core.services.hub import Services

log = logging.getLogger(__name__)
STALE_CHECK_S = 60.0
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


def storage_for(redis_url: str | None) -> BaseStorage:
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(redis_url)
    return MemoryStorage()


class TelegramChannel:
    def __init__(self, services: Services) -> None:
        settings = services.settings.telegram
        assert settings.bot_token is not None
        self.services = services
        api = TelegramAPIServer.from_base(str(settings.api_url).rstrip("/"))
        self.bot = Bot(settings.bot_token.get_secret_value(), session=AiohttpSession(api=api))
        redis_url = services.settings.redis.url
        self.dp = Dispatcher(storage=storage_for(redis_url))
        self.dp.update.outer_middleware(Deduplicate(update_ids_store(redis_url)))
        identify, refusals = Identify(services), Refusals()
        for observer in (self.dp.message, self.dp.edited_message, self.dp.callback_query):
            observer.outer_middleware(identify)
            observer.outer_middleware(refusals)
        self.dp["svc"] = services
        for routes in (common, dispatcher, driver, customer, fallback):
            self.dp.include_router(routes.router.build())
        self.sender = Sender(self.bot, services)
        self._sending: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def feed(self, data: dict[str, Any]) -> None:
        """Process one update (from the webhook)."""
        update = Update.model_validate(data, context={"bot": self.bot})
        await self.dp.feed_update(self.bot, update)

    async def set_default_commands(self) -> None:
        await self.bot.set_my_commands(
            keyboards.commands_for(frozenset(), "en"), scope=BotCommandScopeDefault()
        )

    async def start(self) -> None:
        """Start the background parts: polling (unless webhook mode), sender, stale check."""
        settings = self.services.settings
        try:
            await self.set_default_commands()
        except Exception:  # the menu is a convenience; never stop the bot for it
            log.warning("Telegram: could not set the command menu", exc_info=True)
        if settings.telegram.mode == "webhook":
            url = f"{str(settings.app.base_url).rstrip('/')}/webhooks/telegram"
            secret = settings.telegram.webhook_secret
            try:
                await self.bot.set_webhook(
                    url,
                    secret_token=secret.get_secret_value() if secret else None,
                    allowed_updates=ALLOWED_UPDATES,
                )
                log.info("Telegram: webhook at %s", url)
            except Exception as exc:  # keep serving: the outbox and the web app still work
                log.error("Telegram: could not set the webhook %s: %s", url, exc)
        else:
            with contextlib.suppress(Exception):  # polling retries on its own with backoff
                await self.bot.delete_webhook()
            self._spawn(self._poll())
            log.info("Telegram: long polling %s", settings.telegram.api_url)
        self._sending = asyncio.create_task(self.sender.run())
        self._spawn(self._check_stale())

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    async def _poll(self) -> None:
        await self.dp.start_polling(
            self.bot, handle_signals=False, close_bot_session=False, allowed_updates=ALLOWED_UPDATES
        )

    async def _check_stale(self) -> None:
        while True:
            try:
                stale = await self.services.tracker.check_stale()
                if stale:
                    log.info("drivers with a stale location: %s", stale)
            except Exception:
                log.exception("stale-location check failed")
            await asyncio.sleep(STALE_CHECK_S)

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.dp.stop_polling()
        self.sender.stop()  # it finishes the messages in flight and hands back the rest
        if self._sending is not None:
            await self._sending
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.dp.storage.close()
        await self.bot.session.close()


async def set_member_commands(bot: Bot, chat_id: int, roles: frozenset[Role], lang: str) -> None:
    """The command menu of one chat, for the roles its member holds."""
    await bot.set_my_commands(
        keyboards.commands_for(roles, lang), scope=BotCommandScopeChat(chat_id=chat_id)
    )
