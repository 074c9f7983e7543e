"""The transactional outbox: notifications are rows written with the change that caused them.

Senders claim due rows, deliver them, and mark them sent or failed. A claim is a lease
(`core.leases`): only its holder sends a row and records how it went; a sender that dies mid-send
leaves the row to be claimed again when the lease runs out, so delivery is at least once, and the
idempotency key lets the receiving side drop a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import leases
from core.db import Database
from core.errors import DomainError
from core.leases import LEASE
from core.models import (
    Channel,
    ChatIdentity,
    Member,
    OrderEvent,
    OutboxMessage,
    OutboxStatus,
    session_time,
)
from core.notify.rules import MAX_ACTIONS, Notice
from core.policy import policy_of

log = logging.getLogger(__name__)
CLAIM_LOCK = 0x6C6D6F62  # the advisory lock claims take turns on (PostgreSQL)
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 5
BACKOFF_MAX_S = 3600
REPLY = "chat.reply"  # a direct reply handed over: its text as it is, and the channel's extras


async def preferred_channel(session: AsyncSession, member: Member) -> Channel | None:
    """The channel she chose (`reach_channel`) while she has a usable chat there; else
    Telegram, else WhatsApp, else another channel's chat (the sandbox), else none."""
    chosen = member.reach_channel
    if chosen is not None and chosen is not Channel.TELEGRAM:
        usable = select(ChatIdentity.id).where(
            ChatIdentity.member_id == member.id,
            ChatIdentity.channel == chosen,
            col(ChatIdentity.blocked_at).is_(None),
        )
        if (await session.exec(usable)).first() is not None:
            return chosen
    if member.telegram_chat_id is not None and member.telegram_blocked_at is None:
        return Channel.TELEGRAM
    if member.whatsapp_wa_id or member.whatsapp_user_id or member.whatsapp_phone:
        return Channel.WHATSAPP
    other = (
        select(ChatIdentity.channel)
        .where(ChatIdentity.member_id == member.id, col(ChatIdentity.blocked_at).is_(None))
        .order_by(col(ChatIdentity.id))
        .limit(1)
    )
    found = (await session.exec(other)).first()
    return Channel(found) if found is not None else None


def idempotency_key(event: OrderEvent, notice: Notice) -> str:
    return f"order-event:{event.id}:{notice.template}:{notice.recipient_member_id}"


async def enqueue(session: AsyncSession, event: OrderEvent, notices: Sequence[Notice]) -> None:
    """Write one outbox row per notice of an order event, in the caller's transaction."""
    for notice in notices:
        await add(session, notice, idempotency_key(event, notice), event.order_id, event.created_at)


async def add(
    session: AsyncSession,
    notice: Notice,
    key: str,
    order_id: int | None = None,
    now: datetime | None = None,
    *,
    channel: Channel | None = None,
) -> OutboxMessage | None:
    """Write one outbox row unless one with this idempotency key exists already; to the
    member's preferred chat, or on `channel` (a direct reply goes where it was asked)."""
    if len(notice.actions) > MAX_ACTIONS:
        raise DomainError("error.too_many_actions", count=len(notice.actions))
    existing = await session.exec(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
    )
    if existing.first() is not None:
        return None
    now = now or session_time(session)
    quiet = policy_of(session).quiet  # quiet hours hold what is not urgent
    due = quiet.not_before(notice.template, now) if quiet else now
    member = await session.get(Member, notice.recipient_member_id)
    if member is None or not member.active:
        channel = None
    elif channel is None:
        channel = await preferred_channel(session, member)
    why_not = "recipient is deactivated" if member and not member.active else "no chat channel"
    row = OutboxMessage(
        recipient_member_id=notice.recipient_member_id,
        channel=channel,
        template=notice.template,
        params=notice.params,
        actions=list(notice.actions),
        idempotency_key=key,
        order_id=order_id,
        status=OutboxStatus.PENDING if channel else OutboxStatus.SKIPPED,
        last_error=None if channel else why_not,
        created_at=now,
        next_attempt_at=due,
    )
    session.add(row)
    await session.flush()
    return row


async def hand_over(db: Database, telegram_chat_id: int, text: str, extra: dict[str, Any]) -> bool:
    """A Telegram reply the chat could not take now (`hand_over_to`). False when no member has
    that chat (a stranger's reply cannot wait here)."""
    async with db.reads() as session:
        statement = select(Member.id).where(Member.telegram_chat_id == telegram_chat_id)
        member_id = (await session.exec(statement)).first()
    if member_id is None:
        return False
    await hand_over_to(db, member_id, Channel.TELEGRAM, text, extra)
    return True


async def hand_over_to(
    db: Database, member_id: int, channel: Channel, text: str, extra: dict[str, Any]
) -> None:
    """A direct reply the member's chat on `channel` could not take now, for that channel's
    sender to deliver later as it is, in order with her other messages (`extra`: the channel's
    own parameters, such as its keyboard or its message bodies)."""
    async with db.transaction() as session:
        notice = Notice(member_id, REPLY, {"text": text, "extra": extra})
        await add(
            session, notice, f"reply:{channel.value}:{member_id}:{uuid4().hex}", channel=channel
        )


async def replies_waiting(db: Database, telegram_chat_id: int) -> bool:
    """Whether a reply handed over for this Telegram chat is still to be sent (later replies
    queue behind it, so that they arrive in order)."""
    return await _replies_waiting(db, Member.telegram_chat_id == telegram_chat_id)


async def replies_waiting_for(db: Database, member_id: int, channel: Channel) -> bool:
    """Whether a reply handed over for the member's chat on `channel` is still to be sent."""
    return await _replies_waiting(
        db, (col(Member.id) == member_id) & (col(OutboxMessage.channel) == channel)
    )


async def _replies_waiting(db: Database, which: Any) -> bool:
    async with db.reads() as session:
        statement = (
            select(OutboxMessage.id)
            .join(Member, col(Member.id) == OutboxMessage.recipient_member_id)
            .where(
                which,
                OutboxMessage.template == REPLY,
                col(OutboxMessage.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
            )
            .limit(1)
        )
        return (await session.exec(statement)).first() is not None


async def claim(
    db: Database,
    channel: Channel,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> list[OutboxMessage]:
    """Lease up to `limit` due messages for `channel`, oldest first, all under one new token
    (`lease_token`). A recipient's messages go out in order: a message waits while an older one
    to the same person is being sent or is waiting for its retry (the sender delivers a
    recipient's claimed messages one by one)."""
    async with db.transaction() as session:
        return await claim_in(session, channel, limit=limit, now=now, lease=lease)


async def claim_in(
    session: AsyncSession,
    channel: Channel,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> list[OutboxMessage]:
    """`claim` in the caller's transaction. On PostgreSQL claims take turns (a transaction-level
    advisory lock): otherwise two senders claiming at once would not see each other's leases,
    and each could take messages of the same recipient, who would get them out of order."""
    now = now or session_time(session)
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK)))
    older = sa.orm.aliased(OutboxMessage)
    waiting = [OutboxStatus.PENDING, OutboxStatus.SENDING]
    statement = (
        select(OutboxMessage)
        .where(
            col(OutboxMessage.channel) == channel,
            col(OutboxMessage.status).in_(waiting),
            col(OutboxMessage.next_attempt_at) <= now,
            ~sa.exists().where(
                col(older.recipient_member_id) == OutboxMessage.recipient_member_id,
                col(older.channel) == channel,
                col(older.id) < OutboxMessage.id,
                sa.or_(  # (one held back by quiet hours, never tried, blocks nothing)
                    col(older.status) == OutboxStatus.SENDING,
                    sa.and_(
                        col(older.status) == OutboxStatus.PENDING,
                        col(older.next_attempt_at) > now,
                        sa.or_(col(older.attempts) > 0, col(older.last_error).is_not(None)),
                    ),
                ),
            ),
        )
        .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list((await session.exec(statement)).all())
    leases.take_all(session, rows, now, lease)
    await session.flush()
    return rows


async def mark_sent(
    db: Database, message_id: int, *, token: str | None = None, now: datetime | None = None
) -> bool:
    """Record a delivery; with `token`, only while it holds the message. Whether it was saved."""
    where = [col(OutboxMessage.id) == message_id]
    if token is not None:
        where.append(leases.held(OutboxMessage, token))
    async with db.transaction() as session:
        result = await session.exec(
            sa.update(OutboxMessage)
            .where(*where)
            .values(status=OutboxStatus.SENT, sent_at=now or db.now(), last_error=None)
        )
        return bool(result.rowcount)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


async def mark_failed(
    db: Database,
    message_id: int,
    error: str,
    *,
    retry_after: float | None = None,
    permanent: bool = False,
    token: str | None = None,
    now: datetime | None = None,
) -> OutboxStatus:
    """Record a failed attempt: retry later with backoff, or give up (`dead`). With `token`,
    only while it holds the message."""
    now = now or db.now()
    async with db.transaction() as session:
        row = await session.get(OutboxMessage, message_id, with_for_update=True)
        if row is None or row.status is OutboxStatus.SENT or leases.lost(row, token):
            return row.status if row else OutboxStatus.DEAD
        row.last_error = error[:1000]
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.status = OutboxStatus.DEAD
        else:
            row.status = OutboxStatus.PENDING
            delay = timedelta(seconds=retry_after) if retry_after else backoff(row.attempts)
            row.next_attempt_at = now + delay
        session.add(row)
        return row.status


async def retry_later(
    db: Database,
    message_id: int,
    seconds: float,
    error: str,
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> None:
    """The channel asked us to slow down (HTTP 429): try again then; it is not a failed attempt.
    With `token`, only while it holds the message."""
    now = now or db.now()
    async with db.transaction() as session:
        row = await session.get(OutboxMessage, message_id, with_for_update=True)
        if row is None or row.status is not OutboxStatus.SENDING or leases.lost(row, token):
            return
        row.status = OutboxStatus.PENDING
        row.attempts = max(row.attempts - 1, 0)
        row.next_attempt_at = now + timedelta(seconds=seconds)
        row.last_error = error[:1000]
        session.add(row)


async def release(
    db: Database,
    message_ids: Sequence[int],
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> None:
    """Give back claimed messages that were not tried (a sender stopping), due at once; with
    `token`, only those it still holds."""
    await leases.hand_back(db, OutboxMessage, message_ids, token=token, now=now)


async def keep_delivering(
    name: str,
    drain_once: Callable[[], Awaitable[bool]],
    stopping: asyncio.Event,
    idle_s: float,
    wake: asyncio.Event | None = None,
) -> None:
    """A sender's loop: deliver batch after batch (`drain_once`: False when nothing was due),
    pausing `idle_s` (or until `wake` is set) when idle, until `stopping` is set. A batch that
    fails is logged and the loop goes on."""
    while not stopping.is_set():
        try:
            busy = await drain_once()
        except Exception:
            log.exception("%s: could not read the outbox", name)
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((wake or stopping).wait(), idle_s)
            if wake is not None:
                wake.clear()
