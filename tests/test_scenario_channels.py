"""One scenario, written once, played through each chat channel: a dispatcher creates an order
with /neworder and assigns it, a driver starts her shift, shares her location and delivers it
with a photo, the customer rates it. Telegram runs against the fake Bot API
(tests/telegram_harness.py), the sandbox through its own channel (bot/sandbox), both in the same
running service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlmodel import select

from bot.sandbox.channel import photo_upload
from core.conversations.events import Command, Location, Press, Text
from core.db import Database
from core.models import Customer, Member, Order, OrderStatus, Proof, Role
from core.people.members import grant
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import Bot, add_person, jpeg, running_bot

PEOPLE = {"boss": ("Bo Boss", Role.DISPATCHER), "ana": ("Ana Driver", Role.DRIVER),
          "lena": ("Lena Meyer", Role.CUSTOMER)}  # fmt: skip
PHONE = "+49 151 23456789"


class Chats(Protocol):
    """What a person can do in a chat, whatever the channel."""

    async def say(self, who: str, text: str) -> None: ...
    async def tap(self, who: str, label: str) -> None: ...
    async def photo(self, who: str, content: bytes) -> None: ...
    async def location(self, who: str, lat: float, lon: float) -> None: ...
    def texts(self, who: str) -> list[str]: ...
    async def settled(self) -> None: ...


async def scenario(chats: Chats, db: Database) -> None:
    """The scenario itself: the same steps and checks on every channel."""
    await chats.say("boss", "/neworder")
    for answer in ("Lena Meyer", PHONE, "Hauptstr 5"):
        await chats.say("boss", answer)
    for answer in ("tomorrow 14:00-16:00", "3.5 kg", "Ring twice"):
        await chats.say("boss", answer)
    await chats.tap("boss", "Create")
    async with db.reads() as session:
        [order] = list(await session.exec(select(Order)))
        customer = await session.get(Customer, order.customer_id)
    assert customer is not None and customer.phone == "+4915123456789"  # Lena's
    await chats.settled()
    assert any("Lena" in text or order.address in text for text in chats.texts("lena"))

    await chats.say("ana", "/shift")
    await chats.location("ana", 52.52, 13.40)
    await chats.say("boss", f"/assign #{order.id} Ana")
    await chats.settled()
    await chats.say("ana", "/route")
    await chats.tap("ana", "Arrived")
    await chats.tap("ana", "Delivered")
    assert "photo" in chats.texts("ana")[-1]
    await chats.photo("ana", jpeg())
    await chats.settled()
    await chats.tap("lena", "5★")
    async with db.reads() as session:
        done = await session.get(Order, order.id)
        proofs = list(await session.exec(select(Proof).where(Proof.order_id == order.id)))
    assert done is not None and done.status is OrderStatus.DELIVERED and done.rating == 5
    assert proofs and proofs[0].stored_path


async def customer_with_phone(db: Database, member: Member) -> None:
    """Lena follows the shop in chat already: her phone number is known as hers."""
    async with db.transaction() as session:
        session.add(Customer(name="Lena Meyer", phone="+4915123456789", member_id=member.id))


class TelegramChats:
    def __init__(self, bot: Bot, users: dict[str, dict[str, Any]]) -> None:
        self.bot, self.users = bot, users

    def chat(self, who: str) -> int:
        return int(self.users[who]["id"])

    async def say(self, who: str, text: str) -> None:
        await self.bot.send(tu.message(self.users[who], text))

    async def tap(self, who: str, label: str) -> None:
        for call in reversed(self.bot.fake.sent_to(self.chat(who))):
            if any(label in text for text, _ in self.bot.buttons(call)):
                await self.bot.tap(self.users[who], self.chat(who), call, label)
                return
        raise AssertionError(f"no {label!r} button in {who}'s chat: {self.texts(who)}")

    async def photo(self, who: str, content: bytes) -> None:
        file_id, unique = self.bot.fake.add_file(content)
        await self.bot.send(tu.photo(self.users[who], file_id, unique))

    async def location(self, who: str, lat: float, lon: float) -> None:
        await self.bot.send(tu.location(self.users[who], lat, lon, live_period=8 * 3600))

    def texts(self, who: str) -> list[str]:
        return self.bot.texts(self.chat(who))

    async def settled(self) -> None:
        await self.bot.outbox_settled()


class SandboxChats:
    def __init__(self, bot: Bot) -> None:
        self.bot, self.sandbox = bot, bot.app.state.sandbox

    async def say(self, who: str, text: str) -> None:
        if text.startswith("/"):
            name, _, args = text[1:].partition(" ")
            await self.sandbox.send(who, Command(name, args))
        else:
            await self.sandbox.send(who, Text(text))

    async def tap(self, who: str, label: str) -> None:
        for shown in reversed(self.sandbox.chats.messages(who)):
            for text, data in (*shown.buttons, *shown.choices):
                if label in text:
                    await self.sandbox.send(who, Press(data))
                    return
        raise AssertionError(f"no {label!r} button in {who}'s chat: {self.texts(who)}")

    async def photo(self, who: str, content: bytes) -> None:
        await self.sandbox.send(who, photo_upload(content, "proof.jpg"))

    async def location(self, who: str, lat: float, lon: float) -> None:
        until = self.bot.app.state.services.clock() + timedelta(hours=8)
        await self.sandbox.send(who, Location(lat, lon, live=True, live_until=until))

    def texts(self, who: str) -> list[str]:
        return [m.text for m in self.sandbox.chats.messages(who) if not m.mine]

    async def settled(self) -> None:
        await self.bot.outbox_settled()


@pytest.mark.parametrize("channel", ["telegram", "sandbox"])
async def test_one_scenario_through_every_channel(db: Database, tmp_path: Path, channel: str):
    async with running_bot(db, tmp_path, sandbox=True, dispatch={"mode": "manual"}) as bot:
        bot.nominatim.add("Hauptstr 5", ("Hauptstraße 5, Berlin, Germany", 52.521, 13.401))
        chats: Chats
        if channel == "telegram":
            users = {}
            for k, (who, (name, role)) in enumerate(PEOPLE.items()):
                users[who], member = await add_person(db, 900 + k, name, [role])
                if role is Role.CUSTOMER:
                    await customer_with_phone(db, member)
            chats = TelegramChats(bot, users)
        else:
            for who, (name, role) in PEOPLE.items():
                async with db.transaction() as session:
                    member = Member(name=name)
                    session.add(member)
                    await session.flush()
                    await grant(session, member, role)
                if role is Role.CUSTOMER:
                    await customer_with_phone(db, member)
                await bot.app.state.sandbox.join(who, member.id, name, role.value)
            chats = SandboxChats(bot)
        await scenario(chats, db)
