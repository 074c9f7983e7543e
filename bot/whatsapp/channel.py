"""The WhatsApp channel: inbound webhook bodies in, the conversation core's answers out.

The webhook (web/routes/webhooks.py) checks a body's signature and hands it to `accept`, which
stores it (bot.whatsapp.inbox) before the 200. A worker started with the channel processes the
stored bodies under a lease: each message is translated into a core event (bot.whatsapp.inbound)
and answered through the Graph API (render.messages + GraphClient.send), then marked read; each
delivery status is recorded on its outbox row (sender.apply_status). Notifications the core
queues for WhatsApp chats are sent by the outbox sender (bot.whatsapp.sender), started here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import httpx

from bot.whatsapp import inbox, render
from bot.whatsapp.client import GraphClient, GraphError
from bot.whatsapp.inbound import event_of, quiet, whatsapp_chat
from bot.whatsapp.payloads import Message, Status, parse
from bot.whatsapp.sender import WhatsAppSender, apply_status
from core.bootstrap import Services
from core.conversations.replies import Reply
from core.db import unavailable
from core.leases import Leases
from core.models import Channel, InboundBody
from core.notify import outbox
from core.people import identities, invites
from core.people.identities import ChatRef, Identity, Person
from core.people.members import help_text
from core.texts import t

log = logging.getLogger(__name__)
IDLE_S = 0.5
BATCH = 20
REPLY_TRIES = 4  # a reply is sent again after a throttle / 5xx / network error, this often
REPLY_PAUSE_MAX_S = 8.0
KEEP = timedelta(days=8)  # processed bodies are kept this long (a repeat within it is dropped)
PRUNE_EVERY_S = 3600.0


class WhatsAppInfo:
    """What the conversations need to know about WhatsApp: links open a chat with our number,
    the code typed in already (`start <token>`). WhatsApp gives businesses no live locations:
    drivers send a pin (asked for by location request messages)."""

    live_location = False

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    async def display_name(self) -> str:
        return "Lastmile"

    async def start_link(self, token: str) -> str | None:
        number = self.svc.settings.whatsapp.phone_number
        return invites.whatsapp_link(number, token) if number else None

    async def roles_changed(self, chat: ChatRef, who: Identity) -> None:
        return None  # WhatsApp has no command menus


class WhatsAppChannel:
    def __init__(self, services: Services, *, http: httpx.AsyncClient | None = None) -> None:
        self.services = services
        self.settings = services.settings.whatsapp
        self.client = GraphClient(self.settings, http)
        self.leases = Leases(services.db, InboundBody, services.settings.outbox.lease)
        self.files = services.files
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._working: asyncio.Task[None] | None = None
        self.sender = WhatsAppSender(services, self.client)  # the outbox's WhatsApp rows
        self._sending: asyncio.Task[None] | None = None
        self.processed = 0  # bodies processed by this process
        self._prune_at = 0.0  # time.monotonic() of the next pruning
        services.conversations.register(Channel.WHATSAPP, WhatsAppInfo(services))

    async def accept(self, body: bytes) -> bool:
        """Keep a signed body to process; False when it is a repeat (already kept)."""
        stored = await inbox.store(self.services.db, Channel.WHATSAPP, body)
        if stored:
            self._wake.set()
        return stored

    def start(self) -> None:
        self._stopping.clear()
        self._working = asyncio.create_task(
            outbox.keep_delivering(
                "WhatsApp inbound", self.drain_once, self._stopping, IDLE_S, self._wake
            )
        )
        self._sending = asyncio.create_task(self.sender.run())

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.sender.stop()
        if self._working is not None:
            await self._working
            self._working = None
        if self._sending is not None:
            await self._sending
            self._sending = None
        await self.client.aclose()

    async def drain_once(self) -> bool:
        """Claim stored bodies and process them, in order; False when none was due. Now and
        then, bodies processed long ago are deleted (Meta stops sending a body again after a
        week)."""
        db = self.services.db
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + PRUNE_EVERY_S
            await inbox.prune(db, Channel.WHATSAPP, db.now() - KEEP)
        rows = await inbox.claim(db, Channel.WHATSAPP, limit=BATCH, lease=self.leases.length)
        if not rows:
            return False
        token = rows[0].lease_token
        assert token is not None
        async with self.leases.kept(token):
            for index, row in enumerate(rows):
                if self._stopping.is_set():
                    ids = [r.id for r in rows[index:] if r.id is not None]
                    await inbox.hand_back(db, ids, token)
                    break
                await self._process_body(row, token)
        return True

    async def _process_body(self, row: InboundBody, token: str) -> None:
        assert row.id is not None
        db = self.services.db
        try:
            batch = parse(row.body)
            if batch.skipped or not batch.readable:
                log.info("WhatsApp body %s: %s parts not about messages", row.id, batch.skipped)
            for message in batch.messages:
                await self._message(row.id, message)
            for status in batch.statuses:
                await self._status(status)
        except Exception as exc:
            if not unavailable(exc):
                log.exception("WhatsApp body %s could not be processed", row.id)
            await inbox.failed(db, row, token, f"{type(exc).__name__}: {exc}")
            return
        if await inbox.finish(db, row.id, token, db.now()):
            self.processed += 1

    async def _status(self, status: Status) -> None:
        at = status.at or self.services.clock()
        known = await apply_status(
            self.services.db, status.id, status.status, at, status.error_code, status.error_title
        )
        if not known:
            log.info("WhatsApp status %s for an unknown message %s", status.status, status.id)
        elif status.status == "failed":
            self.sender.wake()  # a closed window: the message goes again as its template

    async def _message(self, body_id: int, message: Message) -> None:
        key = f"{Channel.WHATSAPP.value}:{message.id}"
        if not await inbox.take(self.services.db, key, body_id):
            log.info("WhatsApp message %s processed already: skipped", message.id)
            return
        replies, who = await self.answer(message)
        await inbox.done(self.services.db, key)  # the core has acted: never again
        chat = whatsapp_chat(message)
        member = who.member_id if who is not None else None
        db = self.services.db
        queued = member is not None and await outbox.replies_waiting_for(
            db, member, Channel.WHATSAPP
        )
        for reply in replies:
            try:
                queued = await self.reply(chat.chat_id, reply, who, queued=queued)
            except Exception as exc:  # the core has acted; a reply that cannot go is logged
                if unavailable(exc):
                    raise
                log.exception("WhatsApp reply to %s failed", chat.chat_id)
        try:
            await self.client.mark_read(message.id)
        except GraphError as exc:
            log.info("could not mark WhatsApp message %s read: %s", message.id, exc)

    async def answer(self, message: Message) -> tuple[list[Reply], Identity | None]:
        """What the core answers to one message, and who it answers (None: a message answered
        with nothing); the person's window is noted first."""
        svc = self.services
        chat = whatsapp_chat(message)
        person = Person(message.name)
        now = svc.clock()
        at = min(message.at, now) if message.at is not None else now
        await identities.wrote(svc.db, chat, at)
        if message.kind == "system" and message.data == "user_changed_number":
            new = ChatRef(Channel.WHATSAPP, message.new_wa_id, message.new_wa_id)
            if message.new_wa_id and await identities.moved(svc.db, chat, new):
                svc.conversations.forget(chat)
                log.info("WhatsApp user %s changed number to %s", chat.external_id, new.external_id)
        if message.kind in quiet:
            log.info("WhatsApp %s message %s from %s: nothing to answer", message.type,
                     message.id, chat.external_id)  # fmt: skip
            return [], None
        who = await svc.conversations.identify(chat, person)
        event = event_of(message, who, self.client)
        if event is None:
            log.info("WhatsApp %s message %s: answered with help", message.type, message.id)
            help_reply = f"{t('fallback.unsupported', who.language)}\n\n{help_text(who)}"
            return [Reply(help_reply)], who
        replies = await svc.conversations.handle(chat, person, event, who=who)
        if not who.known:  # a stranger who joined now: her window starts with this message
            await identities.wrote(svc.db, chat, at)
            who = await svc.conversations.identify(chat, person)
        return replies, who

    async def reply(
        self, to: str, reply: Reply, who: Identity | None, *, queued: bool = False
    ) -> bool:
        """Send one reply now (the person just wrote: inside her 24-hour window); a throttle,
        5xx or network error is tried again a few times. What still could not go is handed to
        the outbox, whose sender delivers it later, in order (`queued`: earlier replies wait
        there, so this one waits behind them). Returns whether later replies must queue."""
        lang = who.language if who is not None else "en"
        bodies = await render.messages(reply, to, self.client, self.files, lang)
        for index, body in enumerate(bodies):
            if not queued:
                try:
                    await self._send_now(body)
                    continue
                except GraphError as exc:
                    if exc.outcome != "retry":
                        log.error("WhatsApp reply to %s refused: %s", to, exc)
                        continue
                    log.warning("WhatsApp reply to %s not sent now: %s", to, exc)
            if who is None or who.member_id is None:  # a stranger's reply cannot wait
                log.error("WhatsApp reply to %s lost (no member to queue it for)", to)
                return False
            rest = {"whatsapp": bodies[index:]}
            await outbox.hand_over_to(
                self.services.db, who.member_id, Channel.WHATSAPP, reply.text, rest
            )
            self.sender.wake()
            return True
        return queued

    async def _send_now(self, body: dict[str, object]) -> None:
        """Send one message body, again after a throttle, 5xx or network error (a few times);
        the last error is raised."""
        for attempt in range(REPLY_TRIES):
            try:
                await self.client.send(body)
                return
            except GraphError as exc:
                if exc.outcome != "retry" or attempt == REPLY_TRIES - 1:
                    raise
                pause = exc.retry_after or min(2.0**attempt, REPLY_PAUSE_MAX_S)
                await asyncio.sleep(min(pause, REPLY_PAUSE_MAX_S))
