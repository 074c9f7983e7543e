"""The Telegram channel: aiogram Bots and a Dispatcher over the core services.

Long polling by default (bot.telegram.polling); in webhook mode the FastAPI app feeds updates in
through `feed`. Either way an update is processed once and acknowledged only when it was
(bot.telegram.updates). Handlers reply through a bot whose requests survive 429s and 5xx
(bot.telegram.resend); the outbox sender has its own bot and retries. `start()` also runs the
sender. (The stale-location check runs on the core's scheduler: core.jobs.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommandScopeChat, BotCommandScopeDefault, Update

from bot.telegram import keyboards
from bot.telegram.conversation import TelegramInfo
from bot.telegram.middlewares import Identify, Refusals
from bot.telegram.polling import Poller
from bot.telegram.resend import Resend
from bot.telegram.routers import common, core
from bot.telegram.sender import Holds, Sender
from bot.telegram.updates import process_once, update_log
from core.bootstrap import Services
from core.models import Channel, Role
from core.texts import catalog_language, t

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


class TelegramChannel:
    def __init__(self, services: Services) -> None:
        settings = services.settings.telegram
        assert settings.bot_token is not None
        self.services = services
        api = TelegramAPIServer.from_base(str(settings.api_url).rstrip("/"))
        token = settings.bot_token.get_secret_value()
        holds = Holds()
        self.bot = Bot(token, session=AiohttpSession(api=api))
        self.bot.session.middleware(Resend(services.db, holds, settings.reply_retry_s))
        redis_url = services.settings.redis.url
        self.updates = update_log(redis_url)
        self.dp = Dispatcher()  # conversation state is the core's (core.conversations.state)
        identify, refusals = Identify(services), Refusals()
        for observer in (self.dp.message, self.dp.edited_message, self.dp.callback_query):
            observer.outer_middleware(identify)
            observer.outer_middleware(refusals)
        self.dp["svc"] = services
        for routes in (common, core):
            self.dp.include_router(routes.router.build())
        services.conversations.register(Channel.TELEGRAM, TelegramInfo(self.bot, services))
        self.sender = Sender(Bot(token, session=AiohttpSession(api=api)), services, holds)
        self.poller = Poller(self.bot, self.process, ALLOWED_UPDATES)
        self._sending: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def parse(self, data: dict[str, Any]) -> Update:
        """The update in `data`; pydantic's ValidationError when it is not a valid one."""
        return Update.model_validate(data, context={"bot": self.bot})

    async def feed(self, data: dict[str, Any]) -> None:
        """Process one update (from the webhook); `Deferred` when it must come again."""
        await self.process(self.parse(data))

    async def process(self, update: Update) -> None:
        await process_once(
            self.updates, update, lambda u: self.dp.feed_update(self.bot, u), self._apologize
        )

    async def _apologize(self, chat_id: int, language: str | None) -> None:
        text = t("error.unavailable", catalog_language(language))
        await self.bot.send_message(chat_id, text)

    async def set_default_commands(self) -> None:
        await self.bot.set_my_commands(
            keyboards.commands_for(frozenset(), "en"), scope=BotCommandScopeDefault()
        )

    async def start(self) -> None:
        """Start the background parts: polling (unless webhook mode) and the sender."""
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
            self._spawn(self.poller.run())
            log.info("Telegram: long polling %s", settings.telegram.api_url)
        self._sending = asyncio.create_task(self.sender.run())

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.create_task(coroutine))

    async def stop(self) -> None:
        self.sender.stop()  # it finishes the messages in flight and hands back the rest
        for task in self._tasks:  # polling
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.poller.stop()  # updates in hand finish; what was processed is confirmed
        if self._sending is not None:
            await self._sending
        await self.dp.storage.close()
        await self.bot.session.close()
        await self.sender.bot.session.close()


async def set_member_commands(bot: Bot, chat_id: int, roles: frozenset[Role], lang: str) -> None:
    """The command menu of one chat, for the roles its member holds."""
    await bot.set_my_commands(
        keyboards.commands_for(roles, lang), scope=BotCommandScopeChat(chat_id=chat_id)
    )
