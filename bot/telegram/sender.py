"""Delivers the outbox to Telegram: rate-limited, retried, and never lost.

- at most TELEGRAM_RATE_PER_S messages a second overall and TELEGRAM_CHAT_RATE_PER_S per chat,
  across all instances when REDIS_URL is set (bot.send_limits);
- 429: everything waits `retry_after` (every instance, with Redis), the message is tried again
  and the wait is not counted as a failed attempt;
- network and server errors: retried with backoff (core.notify.outbox);
- a row may carry a file it names under APP_DATA_DIR: a photo (sent with its text as caption)
  or a document (sendDocument); a document that is not there fails the row for good;
- 403 (bot blocked) or a chat that no longer exists: the message is dead, the member's Telegram
  chat is marked unusable and the dispatchers are told;
- a message is marked sent right after Telegram accepts it; stopping finishes the messages in
  flight and hands back the rest, so a restart neither repeats nor skips any;
- several instances: a claimed batch's leases are renewed while it is delivered (a chat's pace
  and a 429's wait may outlast one lease), and each message is sent only after proving its lease
  is still ours, and within half of it (`core.leases`): another instance never sends it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import replace

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage

from bot.delivery import SenderLoop, fenced_turn, in_order
from bot.send_limits import SendLimits
from bot.telegram.conversation import MissingFile, show
from core.bootstrap import Services
from core.conversations.notices import notice_reply
from core.leases import Leases
from core.models import Channel, Member, OutboxMessage
from core.notify import outbox
from core.notify.messages import Rendered, render
from core.people.members import chat_unreachable

log = logging.getLogger(__name__)
IDLE_S = 0.5
BATCH = 100
GONE = ("chat not found", "user is deactivated", "bot was kicked", "PEER_ID_INVALID")


class Holds:
    """Chats Telegram told to wait (a 429's retry_after), whoever sent: the outbox sender and
    direct replies both wait them out, so neither trips the other's 429 again."""

    def __init__(self) -> None:
        self.until: dict[int, float] = {}  # chat -> monotonic time it may be written to again

    def hold(self, chat_id: int, seconds: float) -> None:
        self.until[chat_id] = max(self.until.get(chat_id, 0.0), time.monotonic() + seconds)

    def end(self, chat_id: int) -> float:
        """When the chat's hold ends (0 when it has none; an ended hold is forgotten)."""
        until = self.until.get(chat_id, 0.0)
        if until and until <= time.monotonic():
            del self.until[chat_id]
            return 0.0
        return until


class Sender(SenderLoop):
    name = "Telegram sender"
    idle_s = IDLE_S

    def __init__(self, bot: Bot, services: Services, holds: Holds | None = None) -> None:
        super().__init__()
        self.bot = bot
        self.services = services
        settings = services.settings.telegram
        self.limits = SendLimits(
            f"telegram:{bot.id}",
            settings.rate_per_s,
            settings.chat_rate_per_s,
            services.settings.redis.url,
        )
        self.leases = Leases(services.db, OutboxMessage, services.settings.outbox.lease)
        self.holds = holds or Holds()

    async def drain_once(self) -> bool:
        """Claim one batch and deliver it; False when nothing was due."""
        db, lease = self.services.db, self.leases.length
        rows = await outbox.claim(db, Channel.TELEGRAM, limit=BATCH, lease=lease)
        if not rows:
            return False
        chats = await self._chats(rows)
        by_chat: dict[int | None, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_chat[chats.get(row.recipient_member_id)].append(row)
        assert rows[0].lease_token is not None
        async with self.leases.kept(rows[0].lease_token):
            await asyncio.gather(*(self._deliver_chat(c, items) for c, items in by_chat.items()))
        self.limits.forget_idle()  # idle chats: nothing to remember
        return True

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.limits.close()

    async def _chats(self, rows: list[OutboxMessage]) -> dict[int, int | None]:
        async with self.services.db.reads() as session:
            return {
                row.recipient_member_id: getattr(
                    await session.get(Member, row.recipient_member_id), "telegram_chat_id", None
                )
                for row in rows
            }

    async def _deliver_chat(self, chat_id: int | None, rows: list[OutboxMessage]) -> None:
        """A chat's messages in order; when one must wait, the later ones wait behind it."""

        async def deliver(row: OutboxMessage) -> bool:
            assert chat_id is not None
            return await self._deliver(chat_id, row)

        no_chat = "no Telegram chat" if chat_id is None else None
        await in_order(self.services.db, rows, self._stopping, deliver, no_chat=no_chat)

    async def _deliver(self, chat_id: int, row: OutboxMessage) -> bool:
        """Send one message; False when it has to be tried again later, or another sender has
        taken it over (then the chat's later messages are its too)."""
        assert row.id is not None and row.lease_token is not None
        db, token = self.services.db, row.lease_token

        def held() -> float:  # a 429's wait for this chat, whoever was told (replies too)
            return self.holds.end(chat_id)

        try:
            rendered = await render(db, row, self.services.settings)
            deadline = await fenced_turn(self.leases, row.id, token, self.limits, chat_id, held)
            if deadline is None:
                log.warning("message %s was taken over by another sender: not sending it", row.id)
                return False
            async with asyncio.timeout_at(deadline):
                await self._send(chat_id, rendered, row)
        except TelegramRetryAfter as exc:
            log.info("Telegram asks to wait %s s (message %s)", exc.retry_after, row.id)
            self.holds.hold(chat_id, exc.retry_after)
            await self.limits.pause(exc.retry_after)  # every instance waits
            await self.limits.hold(chat_id, exc.retry_after)
            await outbox.retry_later(db, row.id, exc.retry_after, exc.message, token=token)
            return False
        except MissingFile as exc:  # nothing to send, now or later
            log.error("message %s (%s): %s", row.id, row.template, exc)
            await outbox.mark_failed(db, row.id, str(exc), permanent=True, token=token)
        except TelegramForbiddenError as exc:
            await self._unreachable(row, exc.message)
        except TelegramBadRequest as exc:
            if any(word.lower() in exc.message.lower() for word in GONE):
                await self._unreachable(row, exc.message)
            else:
                log.error("Telegram refused message %s (%s): %s", row.id, row.template, exc.message)
                await outbox.mark_failed(db, row.id, exc.message, permanent=True, token=token)
        except (TelegramNetworkError, TelegramServerError, TimeoutError, OSError) as exc:
            log.warning("Telegram send of message %s failed: %s", row.id, exc)
            await outbox.mark_failed(db, row.id, str(exc) or type(exc).__name__, token=token)
            return False
        except Exception as exc:
            log.exception("sending message %s (%s) failed", row.id, row.template)
            await outbox.mark_failed(db, row.id, f"{type(exc).__name__}: {exc}", token=token)
            return False
        else:
            if not await outbox.mark_sent(db, row.id, token=token):
                log.warning("message %s was sent after another sender took it over", row.id)
        return True

    async def _send(self, chat_id: int, rendered: Rendered, row: OutboxMessage) -> None:
        if row.template == outbox.REPLY:  # a direct reply handed over: as it was
            extra = row.params.get("extra") or {}
            await self.bot(SendMessage(chat_id=chat_id, text=rendered.text, **extra))
            return
        reply = notice_reply(rendered)
        files = self.services.files
        file = reply.file
        photo_gone = file is not None and file.kind == "photo" and file.file_ref is None
        if photo_gone and (file.path is None or not await files.exists(str(file.path))):  # type: ignore[union-attr]
            reply = replace(reply, file=None)  # the photo is gone: the words still go
        await show(self.bot, chat_id, reply, rendered.language, files, None)

    async def _unreachable(self, row: OutboxMessage, reason: str) -> None:
        assert row.id is not None
        log.info("member %s cannot be reached on Telegram: %s", row.recipient_member_id, reason)
        await outbox.mark_failed(
            self.services.db,
            row.id,
            f"undeliverable: {reason}",
            permanent=True,
            token=row.lease_token,
        )
        await chat_unreachable(
            self.services.db, row.recipient_member_id, reason=reason, order_id=row.order_id
        )
