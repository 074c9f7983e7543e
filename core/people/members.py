"""Who is talking: chat identities, roles, joining by invite, customers subscribing to an order.

The conversation core calls `core.people.identities.identify` for each incoming event and gets
an `Identity` it can check roles against; nothing is created for a stranger until they open an
invite or a subscribe link.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.errors import DomainError
from core.models import (
    Channel,
    Customer,
    Driver,
    Invite,
    Member,
    MemberRole,
    Order,
    OutboxMessage,
    OutboxStatus,
    Role,
)
from core.notify import outbox
from core.notify.rules import Notice, dispatcher_members
from core.people import identities
from core.people.identities import ChatRef, Identity, Person
from core.people.invites import token_hash
from core.texts import t

log = logging.getLogger(__name__)


def help_text(who: Identity) -> str:
    """What this person can do here, for each of their roles."""
    lang = who.language
    if not who.known:
        return t("help.stranger", lang)
    parts = []
    if who.has(Role.OWNER, Role.DISPATCHER):
        invite = "help.invite_owner" if who.has(Role.OWNER) else "help.invite"
        parts.append(t("help.dispatcher", lang, invite=t(invite, lang)))
    if who.has(Role.DRIVER):
        parts.append(t("help.driver", lang))
    if who.has(Role.CUSTOMER) or not parts:
        parts.append(t("help.customer", lang))
    return "\n\n".join(parts)


async def grant(session: AsyncSession, member: Member, role: Role, by: int | None = None) -> None:
    assert member.id is not None
    if await session.get(MemberRole, (member.id, role)) is None:
        session.add(MemberRole(member_id=member.id, role=role, granted_by=by))
    if role is Role.DRIVER:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).first()
        if driver is None:
            session.add(Driver(member_id=member.id))
    await session.flush()


async def redeem_invite(
    db: Database, token: str, chat: ChatRef, person: Person, *, now: datetime | None = None
) -> Role | None:
    """Give the role of invite `token` to this user. None when `token` is not an invite;
    a DomainError when it is one that cannot be used (expired or used already)."""
    now = now or db.now()
    async with db.transaction() as session:
        invite = (
            await session.exec(
                select(Invite).where(Invite.token_hash == token_hash(token)).with_for_update()
            )
        ).first()
        if invite is None:
            return None
        if invite.used_at is not None:
            raise DomainError("invite.used")
        if invite.expires_at <= now:
            raise DomainError("invite.expired")
        member = await identities.member_for(session, chat, person)
        await grant(session, member, invite.role, invite.created_by)
        invite.used_at = now
        invite.used_by = member.id
        session.add(invite)
        log.info("member %s joined as %s by invite %s", member.id, invite.role, invite.id)
        return invite.role


async def subscribe(
    db: Database, tracking_token: str, chat: ChatRef, person: Person
) -> Order | None:
    """Link this chat to the customer of the order with `tracking_token`; None if no such order.

    Whoever opens the link receives the order's updates (the link is the secret)."""
    async with db.transaction() as session:
        order = (
            await session.exec(select(Order).where(Order.tracking_token == tracking_token))
        ).first()
        if order is None:
            return None
        member = await identities.member_for(session, chat, person)
        await grant(session, member, Role.CUSTOMER)
        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        if customer.member_id not in (None, member.id):
            log.info("customer %s: chat moves to member %s", customer.id, member.id)
        customer.member_id = member.id
        customer.language = customer.language or member.language
        session.add(customer)
        return order


CHANNEL_NAMES = {Channel.WHATSAPP: "WhatsApp", Channel.SANDBOX: "the sandbox"}


async def chat_unreachable(
    db: Database,
    member_id: int,
    *,
    reason: str,
    order_id: int | None = None,
    channel: Channel = Channel.TELEGRAM,
) -> None:
    """A member's chat on `channel` refuses our messages (they blocked the bot; WhatsApp cannot
    deliver to the number): stop using it, give up their other waiting messages there, and tell
    the dispatchers once. Writing to us again makes the chat usable again."""
    async with db.transaction() as session:
        member = await session.get(Member, member_id, with_for_update=True)
        if member is None:
            return
        blocked_at = db.now()
        if channel is Channel.TELEGRAM:
            if member.telegram_blocked_at is not None:
                return
            member.telegram_blocked_at = blocked_at
            session.add(member)
        elif not await identities.block_all(session, member_id, channel, blocked_at):
            return  # blocked already (or no chat there): told already
        await session.exec(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.recipient_member_id == member_id,  # type: ignore[arg-type]
                OutboxMessage.channel == channel,  # type: ignore[arg-type]
                OutboxMessage.status == OutboxStatus.PENDING,  # type: ignore[arg-type]
            )
            .values(status=OutboxStatus.DEAD, last_error=f"undeliverable: {reason}"[:1000])
        )
        params = {"name": member.name, "reason": reason, "order_id": order_id}
        template = "dispatcher.chat_undeliverable"  # Telegram: they blocked the bot
        if channel is not Channel.TELEGRAM:
            template = "dispatcher.chat_unreachable"
            params["channel"] = CHANNEL_NAMES.get(channel, channel.value)
        actions = ({"action": "order.open", "order_id": order_id},) if order_id else ()
        for recipient in await dispatcher_members(session):
            if recipient == member_id:
                continue
            notice = Notice(recipient, template, params, actions)
            key = f"undeliverable:{member_id}:{blocked_at.isoformat()}:{recipient}"
            await outbox.add(session, notice, key, order_id)


async def chat_changed(db: Database, chat: ChatRef, *, blocked: bool) -> None:
    """A channel says a person blocked (or unblocked) us in this chat."""
    if blocked and chat.channel is Channel.TELEGRAM:
        async with db.reads() as session:
            member_id = await identities.member_id_of(session, chat)
        if member_id is not None:
            await chat_unreachable(db, member_id, reason="blocked the bot")
        return
    async with db.transaction() as session:
        await identities.set_blocked(session, chat, blocked, db.now())
