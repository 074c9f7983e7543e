"""Delivers the outbox rows of sandbox chats: claimed, leased and marked exactly as the Telegram
sender does (core.notify.outbox, core.leases), rendered once by the core (`render_notice`) and
added to the recipient's chat. No rate limits: the chats are in this process.

A row whose recipient has no sandbox chat in this process (the service restarted since she
joined: chats live in memory) is marked failed for good, with that reason."""

from __future__ import annotations

import logging

from bot.delivery import SenderLoop
from bot.sandbox.chats import Chats
from core.bootstrap import Services
from core.conversations import render_notice
from core.leases import Leases
from core.models import Channel, OutboxMessage
from core.notify import outbox

log = logging.getLogger(__name__)
IDLE_S = 0.2
BATCH = 100
NO_CHAT = "no sandbox chat in this process"


class SandboxSender(SenderLoop):
    name = "sandbox sender"
    idle_s = IDLE_S

    def __init__(self, services: Services, chats: Chats) -> None:
        super().__init__()
        self.services = services
        self.chats = chats
        self.leases = Leases(services.db, OutboxMessage, services.settings.outbox.lease)
        self.sent = 0

    async def drain_once(self) -> bool:
        """Claim one batch and deliver it, in order; False when nothing was due."""
        db, lease = self.services.db, self.leases.length
        rows = await outbox.claim(
            db, Channel.SANDBOX, limit=BATCH, lease=lease, now=self.services.clock()
        )
        if not rows:
            return False
        token = rows[0].lease_token
        assert token is not None
        async with self.leases.kept(token):
            for index, row in enumerate(rows):
                if self._stopping.is_set():
                    await outbox.release(db, [r.id for r in rows[index:] if r.id], token=token)
                    break
                await self._deliver(row)
        return True

    async def _deliver(self, row: OutboxMessage) -> None:
        assert row.id is not None and row.lease_token is not None
        db, token = self.services.db, row.lease_token
        participant = self.chats.of_member(row.recipient_member_id)
        if participant is None:
            await outbox.mark_failed(db, row.id, NO_CHAT, permanent=True, token=token)
            return
        try:
            reply = await render_notice(db, row, self.services.settings)
            if await self.leases.hold(row.id, token) is None:
                log.warning("message %s was taken over by another sender: not sending it", row.id)
                return
        except Exception as exc:
            log.exception("sandbox: rendering message %s (%s) failed", row.id, row.template)
            await outbox.mark_failed(db, row.id, f"{type(exc).__name__}: {exc}", token=token)
            return
        from bot.sandbox.channel import as_shown  # the one way a reply is shown

        shown = await as_shown(reply, self.services.files)
        self.chats.add(participant.key, False, reply.text, self.services.clock(), **shown)
        if await outbox.mark_sent(db, row.id, token=token):
            self.sent += 1
