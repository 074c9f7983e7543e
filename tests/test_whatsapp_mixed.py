"""Mixed channels in one running service: a driver on Telegram delivers two orders with a proof
photo, one to a customer who follows hers on WhatsApp and one to a customer on Telegram. Both
follow their order from "confirmed" to "delivered", get the photo and rate it from their own
chat (WhatsApp: signed webhooks in, the fake Graph API out; Telegram: the fake Bot API)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from core.db import Database
from core.models import Channel, Customer, Driver, Order, OrderStatus, ProofKind, Role
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.people import identities
from core.people.identities import ChatRef, attach
from tests.factories import new_order
from tests.fakes.graph_api import FakeGraph
from tests.telegram_harness import add_person, jpeg, running_bot
from tests.test_scenario_channels import TelegramChats, WhatsAppChats, new_member
from tests.test_whatsapp_webhook import graph_settings

S = OrderStatus
LENA = "4915111112222"


async def customer(db: Database, member_id: int, name: str, phone: str) -> None:
    """She follows the shop in chat already: her phone number is known as hers."""
    async with db.transaction() as session:
        session.add(Customer(name=name, phone=phone, member_id=member_id))


async def test_a_whatsapp_and_a_telegram_customer_follow_one_telegram_driver(
    db: Database, tmp_path: Path
) -> None:
    async with FakeGraph() as graph:
        whatsapp = graph_settings(graph)
        async with running_bot(db, tmp_path, dispatch={"mode": "manual"}, whatsapp=whatsapp) as bot:
            graph.webhook_url = f"{bot.base_url}/webhooks/whatsapp"
            ana_user, _ = await add_person(db, 951, "Ana Driver", [Role.DRIVER])
            tom_user, tom = await add_person(db, 952, "Tom Kunde", [Role.CUSTOMER])
            lena = await new_member(db, "Lena Meyer", Role.CUSTOMER)
            chat = ChatRef(Channel.WHATSAPP, LENA, LENA)
            async with db.transaction() as session:
                await attach(session, lena.id, chat)  # type: ignore[arg-type]
            await identities.wrote(db, chat, db.now())  # she wrote to the shop lately
            graph.wrote(LENA)
            assert lena.id is not None and tom.id is not None
            await customer(db, lena.id, "Lena Meyer", "+4915111112222")
            await customer(db, tom.id, "Tom Kunde", "+4915133334444")
            telegram = TelegramChats(bot, {"ana": ana_user, "tom": tom_user})
            wa = WhatsAppChats(bot, graph, {"lena": LENA})
            async with db.reads() as session:
                (driver,) = (await session.exec(select(Driver))).all()
            assert driver.id is not None

            orders: list[Order] = []
            for phone in ("+4915111112222", "+4915133334444"):
                orders.append(await new_order(db, phone=phone, proof=ProofKind.PHOTO))
            await bot.outbox_settled()
            assert any("is confirmed" in text for text in wa.texts("lena"))
            assert any("is confirmed" in text for text in telegram.texts("tom"))

            await telegram.say("ana", "/shift")
            await telegram.location("ana", 52.52, 13.40)
            for order in orders:
                assert order.id is not None
                change = Change(driver_id=driver.id)
                await order_service.change_status(db, order.id, S.ASSIGNED, SYSTEM, change)
                await bot.outbox_settled()
                await telegram.say("ana", "/route")
                await telegram.tap("ana", "Arrived")
                await telegram.tap("ana", "Delivered")
                assert "photo" in telegram.texts("ana")[-1]
                await telegram.photo("ana", jpeg())
                await bot.outbox_settled()
            await bot.outbox_settled()

            # Lena (WhatsApp): on the way, delivered with the photo, then she rates it
            texts = wa.texts("lena")
            assert any("on the way" in text for text in texts)
            images = [s for s in graph.sent_to(LENA) if s.type == "image"]
            assert len(images) == 1
            await wa.tap("lena", "5★")
            # Tom (Telegram): the same, in his own chat
            photos = [c for c in bot.fake.sent_to(952) if c.method == "sendPhoto"]
            assert len(photos) == 1
            await telegram.tap("tom", "4★")
            await bot.outbox_settled()
    async with db.reads() as session:
        done = [await session.get(Order, order.id) for order in orders]
    assert [(o.status, o.rating) for o in done if o is not None] == [
        (S.DELIVERED, 5),
        (S.DELIVERED, 4),
    ]
