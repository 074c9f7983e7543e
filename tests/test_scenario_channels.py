"""One scenario, written once, played through each chat channel: a dispatcher creates an order
with /neworder and assigns it, a driver starts her shift, shares her location and delivers it
with a photo, the customer rates it. Telegram runs against the fake Bot API
(tests/telegram_harness.py), the sandbox through its own channel (bot/sandbox), WhatsApp against
the fake Graph API (signed webhooks in, the Graph API out), all in the same running service."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlmodel import select

from bot.sandbox.channel import photo_upload
from core.conversations.events import Command, Location, Press, Text
from core.db import Database
from core.models import Channel, Customer, Member, Order, OrderStatus, Proof, Role
from core.people import identities
from core.people.identities import ChatRef, attach
from core.people.members import grant
from tests.fakes import telegram_updates as tu
from tests.fakes.graph_api import FakeGraph
from tests.telegram_harness import Bot, add_person, jpeg, running_bot
from tests.test_whatsapp_webhook import graph_settings

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


async def new_member(db: Database, name: str, role: Role) -> Member:
    async with db.transaction() as session:
        member = Member(name=name)
        session.add(member)
        await session.flush()
        await grant(session, member, role)
    return member


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


class WhatsAppChats:
    """People writing from WhatsApp: each message a signed webhook the fake Graph API posts."""

    def __init__(self, bot: Bot, fake: FakeGraph, numbers: dict[str, str]) -> None:
        self.bot, self.fake, self.numbers = bot, fake, numbers
        self.count = 0

    async def _post(self, who: str, kind: str, part: dict[str, Any]) -> None:
        self.count += 1
        wamid = f"wamid.scenario.{self.count}"
        number = self.numbers[who]
        message = {"from": number, "id": wamid, "type": kind, kind: part,
                   "timestamp": str(int(self.fake.clock().timestamp()))}  # fmt: skip
        contacts = [{"profile": {"name": who}, "wa_id": number}]
        self.fake.wrote(number)
        body = self.fake._envelope({"contacts": contacts, "messages": [message]})
        assert await self.fake.post_webhook(body) == 200
        for _ in range(400):  # at most 20 s: answered and marked read
            if wamid in self.fake.reads:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{who}'s message {kind} was not processed")

    async def say(self, who: str, text: str) -> None:
        await self._post(who, "text", {"body": text})

    async def tap(self, who: str, label: str) -> None:
        for sent in reversed(self.fake.sent_to(self.numbers[who])):
            action = sent.body.get("interactive", {}).get("action", {})
            for button in action.get("buttons", []):
                if label in button["reply"]["title"]:
                    reply = {"id": button["reply"]["id"], "title": button["reply"]["title"]}
                    await self._post(who, "interactive", {"type": "button_reply",
                                                          "button_reply": reply})  # fmt: skip
                    return
            for section in action.get("sections", []):
                for row in section["rows"]:
                    if label in row["title"]:
                        reply = {"id": row["id"], "title": row["title"]}
                        await self._post(who, "interactive", {"type": "list_reply",
                                                              "list_reply": reply})  # fmt: skip
                        return
        raise AssertionError(f"no {label!r} button in {who}'s chat: {self.texts(who)}")

    async def photo(self, who: str, content: bytes) -> None:
        media_id = self.fake.add_media(content, "image/jpeg")
        await self._post(who, "image", {"id": media_id, "mime_type": "image/jpeg"})

    async def location(self, who: str, lat: float, lon: float) -> None:
        await self._post(who, "location", {"latitude": lat, "longitude": lon})

    def texts(self, who: str) -> list[str]:
        return [sent.text for sent in self.fake.sent_to(self.numbers[who])]

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


@pytest.mark.parametrize("channel", ["telegram", "sandbox", "whatsapp"])
async def test_one_scenario_through_every_channel(db: Database, tmp_path: Path, channel: str):
    async with (
        FakeGraph() as graph,
        running_bot(
            db,
            tmp_path,
            sandbox=True,
            dispatch={"mode": "manual"},
            whatsapp=graph_settings(graph),
        ) as bot,
    ):
        graph.webhook_url = f"{bot.base_url}/webhooks/whatsapp"
        bot.nominatim.add("Hauptstr 5", ("Hauptstraße 5, Berlin, Germany", 52.521, 13.401))
        chats: Chats
        if channel == "telegram":
            users = {}
            for k, (who, (name, role)) in enumerate(PEOPLE.items()):
                users[who], member = await add_person(db, 900 + k, name, [role])
                if role is Role.CUSTOMER:
                    await customer_with_phone(db, member)
            chats = TelegramChats(bot, users)
        elif channel == "whatsapp":
            numbers = {who: f"49151000000{k}" for k, who in enumerate(PEOPLE)}
            for who, (name, role) in PEOPLE.items():
                member = await new_member(db, name, role)
                chat = ChatRef(Channel.WHATSAPP, numbers[who], numbers[who])
                async with db.transaction() as session:
                    await attach(session, member.id, chat)  # type: ignore[arg-type]
                await identities.wrote(db, chat, db.now())  # each has written to us lately
                graph.wrote(numbers[who])
                if role is Role.CUSTOMER:
                    await customer_with_phone(db, member)
            chats = WhatsAppChats(bot, graph, numbers)
        else:
            for who, (name, role) in PEOPLE.items():
                member = await new_member(db, name, role)
                if role is Role.CUSTOMER:
                    await customer_with_phone(db, member)
                await bot.app.state.sandbox.join(who, member.id, name, role.value)
            chats = SandboxChats(bot)
        await scenario(chats, db)
