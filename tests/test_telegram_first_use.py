"""What a new user runs into in the first minutes, through the real Telegram adapter: the
"Open stop" button of a new stop, orders looked up by the reference /orders shows, a German
customer asking where her order is, and staff who read one language throughout."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from core.clock import system_clock
from core.conversations.buttons import Act
from core.db import Database
from core.drivers.stops import Stops
from core.models import Customer, Driver, Member, Order, OrderStatus, Role
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Actor, Change, Window
from core.orders.service import OrderDraft, create_order
from core.texts import CATALOGS
from tests.conftest import ROOT
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus


async def new_order(db: Database, name: str, ref: str | None = None, **fields) -> Order:
    draft = OrderDraft(
        customer_name=name, address=f"{name}str. 1", lat=52.52, lon=13.40, external_ref=ref,
        **fields,
    )  # fmt: skip
    return await create_order(db, draft, SYSTEM, source="test")


async def driver_id(db: Database, member: Member) -> int:
    async with db.sessions() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
    assert driver.id is not None
    return driver.id


async def link_customer(db: Database, order: Order, member: Member) -> None:
    async with db.transaction() as session:
        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        customer.member_id = member.id
        session.add(customer)


async def speaks(db: Database, member: Member, language: str) -> None:
    async with db.transaction() as session:
        row = await session.get(Member, member.id)
        assert row is not None
        row.language = language
        session.add(row)


async def test_open_stop_on_a_new_stop_message_shows_the_stop(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 901, "Ana", [Role.DRIVER])
    ben, _ = await add_person(db, 902, "Ben", [Role.DRIVER])
    order = await new_order(db, "Cora", "A-1001")
    async with running_bot(db, tmp_path) as bot:
        await order_service.change_status(
            db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=await driver_id(db, member))
        )
        await bot.outbox_settled()
        notice = bot.last(901)
        assert (notice.text or "").startswith("New stop: order A-1001, Corastr. 1.")
        assert [text for text, _ in bot.buttons(notice)] == ["Open stop"]

        await bot.tap(ana, 901, notice, "Open stop")
        alerts = [c.params.get("text") for c in bot.fake.calls_to("answerCallbackQuery")]
        assert [text for text in alerts if text] == []
        stop = bot.last(901)
        assert (stop.text or "").startswith("1. A-1001 · assigned\nCorastr. 1")
        labels = [text for text, _ in bot.buttons(stop)]
        assert labels[:3] == ["📍 Arrived", "✅ Delivered", "✖️ Failed"]

        # the buttons of the opened stop work
        await bot.tap(ana, 901, stop, "Arrived")
        async with db.sessions() as session:
            saved = await session.get(Order, order.id)
        assert saved is not None and saved.status is S.ARRIVED

        # another driver pressing it (a forwarded message) learns it is not hers, by the
        # reference she would know it by; nothing changes
        await bot.tap(ben, 902, notice, "Open stop")
        assert bot.texts(902)[-1] == "Order A-1001 is not on your route."

        # once the order left her route, the old button says so instead of failing
        await order_service.change_status(db, order.id, S.CANCELLED, SYSTEM)
        await bot.tap(ana, 901, notice, "Open stop")
        assert bot.texts(901)[-1] == "Order A-1001 is not on your route."


def notification_actions() -> set[str]:
    """Every action name the core puts on a notification (a literal with a button label)."""
    found = set()
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and f"action.{node.value}" in CATALOGS["en"]:
                found.add(node.value)
    return found


async def test_every_button_a_notification_carries_has_a_handler(db: Database, tmp_path: Path):
    """Pressed by someone who holds every role, no notification button is "not for you"."""
    names = sorted(notification_actions() - {"customer.rate"})  # rating: five star buttons
    assert "driver.open_order" in names and "driver.ask_location" in names and len(names) >= 8
    everyone, member = await add_person(db, 908, "Eve", list(Role))
    order = await new_order(db, "Eve", "E-1")
    await link_customer(db, order, member)
    await order_service.change_status(
        db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=await driver_id(db, member))
    )
    async with running_bot(db, tmp_path) as bot:
        for name in names:
            data = Act(name=name, id=order.id).pack()
            await bot.send(tu.callback(everyone, data, message_id=1))
        alerts = [c.params.get("text") for c in bot.fake.calls_to("answerCallbackQuery")]
        assert len(alerts) >= len(names)
        assert "This button is not for you, or it has expired." not in alerts


async def test_orders_are_found_by_the_reference_the_list_shows(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, 903, "Bo", [Role.DISPATCHER])
    _, ana = await add_person(db, 904, "Ana Lopez", [Role.DRIVER])
    shop = await new_order(db, "Ola", "A-1001")
    typed = await new_order(db, "Pia")  # made in chat: no reference of its own
    numeric = await new_order(db, "Quin", str(typed.id))  # a shop whose references are numbers
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(boss, "/orders"))
        listing = bot.texts(903)[-1]
        assert "A-1001 · new · Olastr. 1" in listing
        assert f"#{typed.id} · new · Piastr. 1" in listing
        assert f"\n{typed.id} · new · Quinstr. 1" in listing

        async def card(arg: str) -> str:
            await bot.send(tu.command(boss, "/order", arg))
            return bot.texts(903)[-1]

        shop_card = await card("A-1001")
        assert shop_card.startswith("Order A-1001 · new\nCustomer: Ola")
        assert (
            f"{bot.base_url}/t/{shop.tracking_token}\nCustomer's link for chat updates: "
            f"https://t.me/lastmile_test_bot?start={shop.tracking_token}" in shop_card
        )
        assert (await card("a-1001")).startswith("Order A-1001 · new")  # case does not matter
        assert (await card(f"#{typed.id}")).startswith(f"Order #{typed.id} · new\nCustomer: Pia")
        # a bare number is the reference when an order has it, else the internal number
        assert (await card(str(typed.id))).startswith(f"Order {typed.id} · new\nCustomer: Quin")
        assert (await card(str(shop.id))).startswith("Order A-1001 · new")
        assert await card("A-9999") == "There is no order A-9999."
        assert await card("#99999999999999999999") == "There is no order #99999999999999999999."
        assert await card("#" + "9" * 5000) == f"There is no order #{'9' * 99}…."
        assert await card("A-1001'; DROP TABLE orders; --") == (
            "There is no order A-1001'; DROP TABLE orders; --."
        )
        assert await card("") == (
            "Write /order and the order's reference, like /order A-1001 (or #12 for its number)."
        )

        await bot.send(tu.command(boss, "/assign", "A-1001 ana"))
        assert bot.texts(903)[-1] == "Order A-1001 → Ana Lopez."
        await bot.send(tu.command(boss, "/assign", "B-7 ana"))
        assert bot.texts(903)[-1] == "There is no order B-7."
    async with db.sessions() as session:
        assigned = await session.get(Order, shop.id)
    assert assigned is not None and assigned.driver_id is not None
    assert numeric.id and ana.id


async def test_a_german_customer_asks_where_her_order_is(db: Database, tmp_path: Path):
    greta, member = await add_person(db, 905, "Greta", [Role.CUSTOMER])
    await speaks(db, member, "de")
    order = await new_order(db, "Greta", "B-77")
    await link_customer(db, order, member)
    async with running_bot(db, tmp_path) as bot:
        for question in ("Wo ist meine Bestellung?", "Wann kommt mein Paket?", "where is it?"):
            await bot.send(tu.message(greta, question))
            answer = bot.texts(905)[-1]
            assert answer.startswith("B-77: neu."), (question, answer)
            assert f"Verfolgen: {bot.base_url}/t/{order.tracking_token}" in answer
        await bot.send(tu.message(greta, "Danke schön"))
        assert bot.texts(905)[-1].startswith("Das habe ich nicht verstanden.")


async def test_staff_with_german_telegram_read_english_throughout(db: Database, tmp_path: Path):
    """German covers what customers see; staff get English everywhere, not a mix."""
    dora = tu.user(906, "Dora", language_code="de")
    _, member = await add_person(db, 906, "Dora", [Role.DISPATCHER])
    await speaks(db, member, "de")
    dan = tu.user(907, "Dan", language_code="de")
    _, driver_member = await add_person(db, 907, "Dan", [Role.DRIVER])
    await speaks(db, driver_member, "de")
    tomorrow = system_clock().replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)
    order = await new_order(
        db, "Rosa", "C-5", windows=(Window(tomorrow, tomorrow + timedelta(hours=3)),)
    )
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(dora, "/neworder"))
        await bot.send(tu.command(dora, "/cancel"))
        await bot.send(tu.message(dora, "hallo"))
        await bot.send(tu.command(dora, "/order", "C-5"))
        assert bot.texts(906)[:3] == [
            "New order. Customer's name?",
            "OK, cancelled. Nothing was changed.",
            bot.texts(906)[2],
        ]
        assert bot.texts(906)[2].startswith("I did not understand that.")
        assert bot.texts(906)[3].startswith("Order C-5 · new\n")

        dan_driver = await driver_id(db, driver_member)
        await order_service.change_status(
            db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=dan_driver)
        )
        await bot.outbox_settled()  # worded when sent: while it is still on her route
        await Stops(db).arrive(dan_driver, order.id, Actor.member(driver_member.id))
        await Stops(db).fail(dan_driver, order.id, "not_home", Actor.member(driver_member.id))
        await bot.outbox_settled()
        assigned = next(t for t in bot.texts(907) if t.startswith("New stop: order C-5"))
        assert " Time: " in assigned and "It is stop 1 of your route." in assigned
        assert bot.texts(906)[-1] == "⚠️ Order C-5 failed (attempt 1): nobody home."
        await bot.send(tu.command(dan, "/route"))
        assert bot.texts(907)[-1] == "You have no stops right now."
