"""Who is talking, on any channel: one chat identity type (`ChatRef`), and the member behind it.

A Telegram chat is kept on `members.telegram_*` (as before); every other channel keeps its chats
in `chat_identities`. Nothing is created for a stranger until they open an invite or a subscribe
link (or the sandbox `attach`es its participants)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.models import Channel, ChatIdentity, Driver, Member, MemberRole, Role
from core.texts import DEFAULT_LANGUAGE, catalog_language, staff_language
from core.validation import kept_as_text

STAFF = frozenset({Role.OWNER, Role.DISPATCHER, Role.DRIVER})


@dataclass(frozen=True)
class ChatRef:
    """A chat on a channel: who writes there (`external_id`: a Telegram user id, a WhatsApp id,
    a sandbox participant) and where to answer (`chat_id`)."""

    channel: Channel
    external_id: str
    chat_id: str


@dataclass(frozen=True)
class Person:
    """Who is writing, as their channel names them."""

    name: str
    language_code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", kept_as_text(self.name))  # a name is not refused


@dataclass(frozen=True)
class Identity:
    member_id: int | None
    name: str
    language: str
    roles: frozenset[Role] = frozenset()
    driver_id: int | None = None

    @property
    def known(self) -> bool:
        return self.member_id is not None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


def language_of(code: str | None) -> str:
    """The catalog language for a client's language code ("de-AT" → "de" when we have it)."""
    return catalog_language(code) or DEFAULT_LANGUAGE


def chat_language(language: str, roles: frozenset[Role]) -> str:
    """Customers read their own language; staff one that words everything they see."""
    return staff_language(language) if roles & STAFF else language


def telegram_chat(user_id: int, chat_id: int) -> ChatRef:
    return ChatRef(Channel.TELEGRAM, str(user_id), str(chat_id))


def _telegram_ids(chat: ChatRef) -> tuple[int, int]:
    return int(chat.external_id), int(chat.chat_id)


async def _find(session: AsyncSession, chat: ChatRef) -> Member | None:
    if chat.channel is Channel.TELEGRAM:
        user_id, _ = _telegram_ids(chat)
        query = select(Member).where(Member.telegram_user_id == user_id)
    else:
        query = (
            select(Member)
            .join(ChatIdentity, ChatIdentity.member_id == Member.id)  # type: ignore[arg-type]
            .where(
                ChatIdentity.channel == chat.channel, ChatIdentity.external_id == chat.external_id
            )
        )
    return (await session.exec(query)).first()


async def _current(session: AsyncSession, member: Member, chat: ChatRef) -> bool:
    """True when the stored chat is `chat` and not blocked."""
    if chat.channel is Channel.TELEGRAM:
        _, chat_id = _telegram_ids(chat)
        return member.telegram_chat_id == chat_id and member.telegram_blocked_at is None
    row = await _identity_row(session, chat)
    return row is not None and row.chat_id == chat.chat_id and row.blocked_at is None


async def _identity_row(session: AsyncSession, chat: ChatRef) -> ChatIdentity | None:
    query = select(ChatIdentity).where(
        ChatIdentity.channel == chat.channel, ChatIdentity.external_id == chat.external_id
    )
    return (await session.exec(query)).first()


async def attach(session: AsyncSession, member_id: int, chat: ChatRef) -> None:
    """This chat is member `member_id`'s (now reachable there): created, moved or unblocked."""
    if chat.channel is Channel.TELEGRAM:
        user_id, chat_id = _telegram_ids(chat)
        member = await session.get(Member, member_id)
        assert member is not None
        member.telegram_user_id = user_id
        member.telegram_chat_id = chat_id
        member.telegram_blocked_at = None
        session.add(member)
    else:
        row = await _identity_row(session, chat)
        if row is None:
            row = ChatIdentity(
                channel=chat.channel,
                external_id=chat.external_id,
                chat_id=chat.chat_id,
                member_id=member_id,
            )
        row.member_id, row.chat_id, row.blocked_at = member_id, chat.chat_id, None
        session.add(row)
    await session.flush()


async def wrote(db: Database, chat: ChatRef, at: datetime) -> None:
    """The person wrote to us in `chat` at `at` (kept as `last_inbound_at`, never moved back:
    WhatsApp allows free-form messages only within 24 hours of it). Nothing for a chat no member
    has (a stranger) or a Telegram chat."""
    if chat.channel is Channel.TELEGRAM:
        return
    async with db.transaction() as session:
        row = await _identity_row(session, chat)
        if row is not None and (row.last_inbound_at is None or row.last_inbound_at < at):
            row.last_inbound_at = at
            row.blocked_at = None  # she wrote: the chat reaches her again
            session.add(row)


async def moved(db: Database, old: ChatRef, new: ChatRef) -> bool:
    """The person of chat `old` is now reached at `new` (a WhatsApp user changed number): her
    chat identity moves, unless `new` belongs to someone already. Whether it moved."""
    async with db.transaction() as session:
        row = await _identity_row(session, old)
        if row is None or await _identity_row(session, new) is not None:
            return False
        row.external_id, row.chat_id = new.external_id, new.chat_id
        session.add(row)
    return True


async def reach_here(db: Database, chat: ChatRef) -> bool:
    """The member behind `chat` wants to be reached in it (where she has several chats);
    False for a stranger."""
    async with db.transaction() as session:
        member = await _find(session, chat)
        if member is None:
            return False
        member.reach_channel = chat.channel
        session.add(member)
    return True


async def member_id_of(session: AsyncSession, chat: ChatRef) -> int | None:
    member = await _find(session, chat)
    return member.id if member is not None else None


async def block_all(session: AsyncSession, member_id: int, channel: Channel, now: datetime) -> int:
    """Mark the member's usable chats on `channel` (not Telegram) blocked; how many were."""
    result = await session.exec(
        sa.update(ChatIdentity)
        .where(
            col(ChatIdentity.member_id) == member_id,
            col(ChatIdentity.channel) == channel,
            col(ChatIdentity.blocked_at).is_(None),
        )
        .values(blocked_at=now)
    )
    return int(result.rowcount)


async def set_blocked(
    session: AsyncSession, chat: ChatRef, blocked: bool, now: datetime
) -> int | None:
    """Mark the chat blocked (or usable again); the member it belongs to, if any."""
    member = await _find(session, chat)
    if member is None or member.id is None:
        return None
    if chat.channel is Channel.TELEGRAM:
        member.telegram_blocked_at = now if blocked else None
        session.add(member)
    else:
        row = await _identity_row(session, chat)
        if row is not None:
            row.blocked_at = now if blocked else None
            session.add(row)
    return member.id


async def member_for(session: AsyncSession, chat: ChatRef, person: Person) -> Member:
    """The member behind this chat, created (with the person's name and language) if new."""
    found = await _find(session, chat)
    if found is None:
        found = Member(name=person.name[:200] or "?", language=language_of(person.language_code))
        session.add(found)
        await session.flush()
    assert found.id is not None
    await attach(session, found.id, chat)
    return found


async def identify(db: Database, chat: ChatRef, person: Person) -> Identity:
    """The member behind a chat, keeping their chat current; a stranger otherwise."""
    async with db.reads() as session:
        member = await _find(session, chat)
        if member is None:
            return Identity(None, person.name, language_of(person.language_code))
        driver_id = (
            await session.exec(select(Driver.id).where(Driver.member_id == member.id))
        ).first()
        roles = frozenset(
            Role(role)
            for role in await session.exec(
                select(MemberRole.role).where(MemberRole.member_id == member.id)
            )
        )
        current = await _current(session, member, chat)
    if not current:  # they wrote to us, so the chat works (again)
        async with db.transaction() as session:
            assert member.id is not None
            await attach(session, member.id, chat)
    if not member.active:
        return Identity(None, member.name, member.language)
    return Identity(member.id, member.name, chat_language(member.language, roles), roles, driver_id)


async def chat_of(session: AsyncSession, member_id: int, channel: Channel) -> ChatRef | None:
    """Where to write to a member on a channel (None: no usable chat there)."""
    if channel is Channel.TELEGRAM:
        member = await session.get(Member, member_id)
        if member is None or member.telegram_chat_id is None or member.telegram_user_id is None:
            return None
        return telegram_chat(member.telegram_user_id, member.telegram_chat_id)
    query = select(ChatIdentity).where(
        ChatIdentity.member_id == member_id,
        ChatIdentity.channel == channel,
        ChatIdentity.blocked_at.is_(None),  # type: ignore[union-attr]
    )
    row = (await session.exec(query)).first()
    return ChatRef(channel, row.external_id, row.chat_id) if row else None
