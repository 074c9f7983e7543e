"""Delivers the outbox to WhatsApp (the Cloud API, through `GraphClient`): paced, retried, the
24-hour window kept, and nothing sent twice.

- claimed, leased and marked like the Telegram sender (core.notify.outbox, core.leases); a
  person's messages go in order, several people's side by side;
- at most WHATSAPP_RATE_PER_S messages a second for the business number and
  WHATSAPP_CHAT_RATE_PER_S to one person, across all instances when REDIS_URL is set
  (bot.send_limits);
- the window: a notice goes free-form (text, buttons, a list, a file) only while the person
  wrote to us within the last 24 hours (`chat_identities.last_inbound_at`, less a 5-minute
  margin); otherwise as its approved template (bot.whatsapp.templates). A `failed` status with
  131047 (the window had closed after all) sends the row again as its template, once, and so
  does the same error answered at once;
- a row may be several messages (a long text, then its buttons): each accepted one is recorded
  with its wamid together with the row's progress, and the last one marks the row sent in the
  same transaction (core.notify.receipts), so a retry or a restart sends only the rest. A send
  whose answer is lost (the process killed between Meta's 200 and our commit) is the one case
  sent again: Graph takes no idempotency key;
- Graph errors by outcome (bot.whatsapp.client): throttling waits (`retry_after`, else 5 s;
  everything for the number's limits, that person only for 131056) and is not a failed
  attempt; 5xx and network errors are retried with backoff; anything else fails the row for good;
- `apply_status` records the status webhooks (sent, delivered, read, failed) on the row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot.delivery import SenderLoop, fenced_turn, in_order
from bot.send_limits import SendLimits
from bot.whatsapp import render as whatsapp
from bot.whatsapp.client import WINDOW_CLOSED, GraphClient, GraphError
from bot.whatsapp.templates import template_message
from core.bootstrap import Services
from core.conversations.notices import notice_reply
from core.db import Database
from core.leases import Leases
from core.models import Channel, ChatIdentity, Member, OutboxMessage
from core.notify import outbox, receipts
from core.notify.messages import Rendered, render
from core.people.members import chat_unreachable

log = logging.getLogger(__name__)
IDLE_S = 0.5
BATCH = 100
WINDOW = timedelta(hours=24)
WINDOW_MARGIN = timedelta(minutes=5)  # a message takes a moment to arrive: don't cut it close
THROTTLE_WAIT_S = 5.0  # when Graph asks us to slow down without saying for how long
PAIR_LIMITED = 131056  # too many messages to one person: only her messages wait
TEMPLATE_CODES = frozenset({WINDOW_CLOSED})
UNDELIVERABLE = frozenset({131026})  # not on WhatsApp (or her app cannot take it): tell staff
KEEP_UNMATCHED = timedelta(days=2)  # receipts of messages no outbox row sent (direct replies)
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Chat:
    to: str  # the person's WhatsApp id
    last_inbound_at: datetime | None

    def open(self, now: datetime) -> bool:
        """Whether free-form messages may go: she wrote within the last 24 hours."""
        return self.last_inbound_at is not None and now - self.last_inbound_at < (
            WINDOW - WINDOW_MARGIN
        )


async def apply_status(
    db: Database,
    message_id: str,
    status: str,
    at: datetime,
    error_code: int | None = None,
    error_title: str | None = None,
) -> bool:
    """A status webhook on the outbox row whose send returned `message_id` (core.notify.receipts:
    once per (message_id, status), never backwards, a failed 131047 re-sends the row as its
    template once; one with 131026 stops using her chat and tells the dispatchers). False when
    no send returned that id (yet: the status is kept for it)."""
    known = await receipts.apply(
        db,
        Channel.WHATSAPP,
        message_id,
        status,
        at,
        error_code=error_code,
        error_title=error_title,
        template_codes=TEMPLATE_CODES,
    )
    if known and status == "failed" and error_code in UNDELIVERABLE:
        row = await receipts.row_of(db, Channel.WHATSAPP, message_id)
        if row is not None:
            await unreachable(db, row, error_title or str(error_code))
    return known


async def unreachable(db: Database, row: OutboxMessage, reason: str) -> None:
    log.info("member %s cannot be reached on WhatsApp: %s", row.recipient_member_id, reason)
    await chat_unreachable(
        db, row.recipient_member_id, reason=reason, order_id=row.order_id, channel=Channel.WHATSAPP
    )


async def chats_of(db: Database, member_ids: set[int]) -> dict[int, Chat]:
    """Each member's WhatsApp chat: her chat identity there (the one she wrote from last), else
    the WhatsApp id or number on her member record (a window never opened)."""
    found: dict[int, Chat] = {}
    async with db.reads() as session:
        statement = (
            select(ChatIdentity)
            .where(
                col(ChatIdentity.member_id).in_(member_ids),
                ChatIdentity.channel == Channel.WHATSAPP,
                col(ChatIdentity.blocked_at).is_(None),
            )
            .order_by(col(ChatIdentity.id))
        )
        for chat in await session.exec(statement):
            known = found.get(chat.member_id)
            if known is None or _later(chat.last_inbound_at, known.last_inbound_at):
                found[chat.member_id] = Chat(chat.chat_id, chat.last_inbound_at)
        for member_id in member_ids - found.keys():
            member = await session.get(Member, member_id)
            number = member and (member.whatsapp_wa_id or member.whatsapp_phone)
            if number:
                found[member_id] = Chat("".join(c for c in number if c.isdigit()), None)
    return found


def _later(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and (b is None or a > b)


class WhatsAppSender(SenderLoop):
    name = "WhatsApp sender"
    idle_s = IDLE_S

    def __init__(self, services: Services, client: GraphClient) -> None:
        super().__init__()
        self.services = services
        self.client = client
        settings = services.settings.whatsapp
        self.limits = SendLimits(
            f"whatsapp:{settings.phone_number_id}",
            settings.rate_per_s,
            settings.chat_rate_per_s,
            services.settings.redis.url,
        )
        self.leases = Leases(services.db, OutboxMessage, services.settings.outbox.lease)
        self.sent = 0  # messages Graph accepted
        self._prune_at = 0.0  # time.monotonic() of the next pruning

    async def drain_once(self) -> bool:
        """Claim one batch and deliver it; False when nothing was due. Now and then, receipts
        kept for messages no outbox row sent are forgotten."""
        db, lease = self.services.db, self.leases.length
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + PRUNE_EVERY_S
            await receipts.prune(db, Channel.WHATSAPP, self.services.clock() - KEEP_UNMATCHED)
        rows = await outbox.claim(db, Channel.WHATSAPP, limit=BATCH, lease=lease)
        if not rows:
            return False
        chats = await chats_of(db, {row.recipient_member_id for row in rows})
        by_chat: dict[int, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_chat[row.recipient_member_id].append(row)
        assert rows[0].lease_token is not None
        async with self.leases.kept(rows[0].lease_token):
            await asyncio.gather(
                *(self._deliver_chat(chats.get(m), items) for m, items in by_chat.items())
            )
        self.limits.forget_idle()  # idle chats: nothing to remember
        return True

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.limits.close()

    async def _deliver_chat(self, chat: Chat | None, rows: list[OutboxMessage]) -> None:
        """A person's messages in order; when one must wait, the later ones wait behind it."""

        async def deliver(row: OutboxMessage) -> bool:
            assert chat is not None
            return await self._deliver(chat, row)

        no_chat = "no WhatsApp chat" if chat is None else None
        await in_order(self.services.db, rows, self._stopping, deliver, no_chat=no_chat)

    async def _bodies(
        self, chat: Chat, row: OutboxMessage, rendered: Rendered
    ) -> list[dict[str, Any]]:
        settings = self.services.settings
        if row.as_template or not chat.open(self.services.clock()):
            return [template_message(rendered, row, chat.to, settings)]
        if row.template == outbox.REPLY:  # a direct reply handed over: its bodies as they were
            saved = (row.params.get("extra") or {}).get("whatsapp") or []
            return [{**body, "to": chat.to} for body in saved]
        reply = notice_reply(rendered)
        files = self.services.files
        file = reply.file
        if file is not None and file.kind == "photo" and file.content is None:
            there = file.path is not None and await files.exists(str(file.path))
            if not there:  # the photo is gone (or only Telegram has it): the words still go
                reply = replace(reply, file=None)
        return await whatsapp.messages(reply, chat.to, self.client, files, rendered.language)

    async def _deliver(self, chat: Chat, row: OutboxMessage) -> bool:
        """Send one row's messages; False when it has to be tried again later, or another sender
        has taken it over (then the person's later messages wait behind it)."""
        assert row.id is not None and row.lease_token is not None
        db, token = self.services.db, row.lease_token
        try:
            rendered = await render(db, row, self.services.settings)
            bodies = await self._bodies(chat, row, rendered)
            if row.parts_sent >= len(bodies):  # all accepted before (or nothing to send)
                await outbox.mark_sent(db, row.id, token=token)
                return True
            for part in range(row.parts_sent, len(bodies)):
                deadline = await fenced_turn(self.leases, row.id, token, self.limits, chat.to)
                if deadline is None:
                    log.warning(
                        "message %s was taken over by another sender: not sending it", row.id
                    )
                    return False
                async with asyncio.timeout_at(deadline):
                    wamid = await self.client.send(bodies[part])
                self.sent += 1
                recorded = await receipts.record_part(
                    db,
                    row.id,
                    token=token,
                    channel=Channel.WHATSAPP,
                    external_id=wamid,
                    part=part,
                    last=part == len(bodies) - 1,
                    template_codes=TEMPLATE_CODES,
                )
                if recorded is not receipts.Recorded.RECORDED:
                    log.info("message %s: %s after part %s", row.id, recorded.value, part)
                    return False
        except GraphError as exc:
            return await self._refused(chat, row, exc)
        except whatsapp.MissingFile as exc:  # nothing to send, now or later
            log.error("message %s (%s): %s", row.id, row.template, exc)
            await outbox.mark_failed(db, row.id, str(exc), permanent=True, token=token)
        except (TimeoutError, OSError) as exc:
            error = str(exc) or type(exc).__name__
            log.warning("WhatsApp send of message %s failed: %s", row.id, error)
            await outbox.mark_failed(db, row.id, error, token=token)
            return False
        except Exception as exc:
            log.exception("sending message %s (%s) failed", row.id, row.template)
            await outbox.mark_failed(db, row.id, f"{type(exc).__name__}: {exc}", token=token)
            return False
        return True

    async def _refused(self, chat: Chat, row: OutboxMessage, exc: GraphError) -> bool:
        """Graph said no: wait, retry, switch to the template, or give up, by its code."""
        assert row.id is not None
        db, token = self.services.db, row.lease_token
        if exc.outcome == "retry" and exc.throttled:
            wait = exc.retry_after or THROTTLE_WAIT_S
            log.info("Graph asks to slow down (%s): waiting %s s (message %s)", exc, wait, row.id)
            if exc.code == PAIR_LIMITED:  # (every instance waits, with Redis)
                await self.limits.hold(chat.to, wait)
            else:
                await self.limits.pause(wait)
            await outbox.retry_later(db, row.id, wait, str(exc), token=token)
            return False
        if exc.outcome == "retry":
            log.warning("WhatsApp send of message %s failed: %s", row.id, exc)
            await outbox.mark_failed(db, row.id, str(exc), retry_after=exc.retry_after, token=token)
            return False
        if exc.outcome == "template" and not row.as_template:
            log.info("message %s: %s; sending its template", row.id, exc)
            await receipts.send_as_template(db, row.id, token=token)
            return False
        log.error("Graph refused message %s (%s): %s", row.id, row.template, exc)
        await outbox.mark_failed(db, row.id, f"refused: {exc}", permanent=True, token=token)
        if exc.code in UNDELIVERABLE:
            await unreachable(db, row, exc.title)
        return True
