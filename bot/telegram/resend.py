"""Direct replies (what handlers send) survive Telegram's 429s, 5xx and network errors.

An aiogram session middleware (aiogram's hook around every Bot API request) on the bot the
handlers use: a 429 holds the chat for its `retry_after` (the outbox sender waits it out too)
and the request is sent again; a 5xx or network error is retried with a growing pause; all
within `TELEGRAM_REPLY_RETRY_S`. A text message that still did not go is handed to the outbox,
whose sender delivers it later in order with the person's other messages; the handler goes on
as if it was sent (a later edit of it is handed over as the new text). A button press that
cannot be answered any more (too old, e.g. after an outage) needs no answer."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import Chat, Message
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.pacing import sleep_until
from bot.telegram.sender import Holds
from core.db import Database
from core.notify import outbox

log = logging.getLogger(__name__)
BACKOFF = BackoffConfig(min_delay=0.5, max_delay=8.0, factor=2.0, jitter=0.1)
HANDED_OVER = 0  # message_id of a reply handed to the outbox (Telegram's ids start at 1)
TOO_OLD = "query is too old"


class Resend(BaseRequestMiddleware):
    def __init__(self, db: Database, holds: Holds, patience_s: float) -> None:
        self.db, self.holds, self.patience_s = db, holds, patience_s
        self.handed: set[int] = set()  # chats with replies handed over, maybe not sent yet

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat = getattr(method, "chat_id", None)
        chat = chat if isinstance(chat, int) else None
        if chat is None and not isinstance(method, AnswerCallbackQuery):
            return await make_request(bot, method)  # not a reply (start-up, polling, files)
        if isinstance(method, EditMessageText) and method.message_id == HANDED_OVER:
            return await self._hand_over(bot, method, chat, "its first text was handed over")
        if chat in self.handed and isinstance(method, SendMessage):
            if await outbox.replies_waiting(self.db, chat):  # after those, in order
                return await self._hand_over(bot, method, chat, "earlier replies wait there")
            self.handed.discard(chat)
        deadline = time.monotonic() + self.patience_s
        backoff = Backoff(BACKOFF)
        while True:
            if chat is not None:  # a 429 held the chat: wait it out (sender's or ours)
                await sleep_until(lambda: min(self.holds.end(chat), deadline))
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                error: Exception = exc
                wait = float(exc.retry_after)
                if chat is not None:
                    self.holds.hold(chat, wait)
            except (TelegramServerError, TelegramNetworkError) as exc:
                error, wait = exc, next(backoff)
            except TelegramBadRequest as exc:
                if isinstance(method, AnswerCallbackQuery) and TOO_OLD in exc.message:
                    log.info("a button press was answered too late to stop its spinner")
                    return Response[Any](ok=True, result=True)
                raise
            if time.monotonic() + wait > deadline:
                return await self._hand_over(bot, method, chat, repr(error), error)
            name = method.__api_method__
            log.info("Telegram: %s failed (%r); again in %.1f s", name, error, wait)
            if chat is None or not isinstance(error, TelegramRetryAfter):
                await asyncio.sleep(wait)  # (a 429 on a chat: its hold is waited out above)

    async def _hand_over(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        chat: int | None,
        why: str,
        error: Exception | None = None,
    ) -> Response[Any]:
        """Give a text message to the outbox and answer as if Telegram had taken it."""
        not_found = TelegramBadRequest(method, "message to edit not found")
        if isinstance(method, AnswerCallbackQuery):  # it only stops a spinner
            return Response[Any](ok=True, result=True)
        text = getattr(method, "text", None)
        if chat is None or not isinstance(method, SendMessage | EditMessageText) or not text:
            raise error or not_found
        extra = method.model_dump(mode="json", exclude_none=True, include={"entities"})
        if isinstance(method.parse_mode, str):  # (not aiogram's "the bot's default")
            extra["parse_mode"] = method.parse_mode
        if isinstance(method, SendMessage) and method.reply_markup is not None:
            extra["reply_markup"] = method.reply_markup.model_dump(mode="json", exclude_none=True)
        if not await outbox.hand_over(self.db, chat, text, extra):
            log.error("reply to chat %s lost (%s; no member to queue it for): %r", chat, why, text)
            raise error or not_found
        log.warning("reply to chat %s handed to the outbox (%s)", chat, why)
        self.handed.add(chat)
        if isinstance(method, EditMessageText):
            return Response[Any](ok=True, result=True)
        sent = Message(
            message_id=HANDED_OVER,
            date=self.db.now(),
            chat=Chat(id=chat, type="private"),
            text=text,
        )
        return Response[Any](ok=True, result=sent.as_(bot))
