"""Bad bytes where a person types: a NUL character (PostgreSQL cannot store one), a lone
surrogate, a forged button whose id no database integer can hold. Each gets a clear message in
the same chat or row, nothing is saved, and the bot goes on working."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.db import Database
from core.models import Customer, Member, Order, OrderEvent, OrderStatus, Role
from core.orders import imports
from core.orders.lifecycle import SYSTEM
from core.orders.service import OrderDraft
from core.people import invites
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot
from tests.test_telegram_driver import assign, driver_of, new_order, status

S = OrderStatus
APOLOGY = "Something went wrong"
BAD = ["Ana\x00Lima", "Ana \ud800 Lima"]


async def count(db: Database, table: type) -> int:
    async with db.sessions() as session:
        return len(list(await session.exec(select(table))))


@pytest.mark.parametrize("bad", BAD)
def test_an_order_draft_refuses_text_no_database_can_keep(bad: str):
    with pytest.raises(ValueError, match="customer_name"):
        OrderDraft(customer_name=bad, address="Hauptstr. 5")
    with pytest.raises(ValueError, match="notes"):
        OrderDraft(customer_name="Ana", address="Hauptstr. 5", notes=bad)


async def test_a_csv_row_with_a_nul_is_refused_and_the_others_saved(db: Database):
    text = (
        "external_ref,customer_name,address\n"
        "B-1,Ana\x00Lima,Hauptstr. 5\n"
        "B-2,Ben,Hauptstr. 6\n"
        "B-3\x00,Cem,Hauptstr. 7\n"
    )
    report = await imports.import_orders(db, text, SYSTEM, timezone="UTC")
    assert [line for line, _ in report.errors] == [2, 4], report.errors
    assert all("NUL" in why for _, why in report.errors), report.errors
    async with db.sessions() as session:
        refs = list(await session.exec(select(Order.external_ref)))
    assert refs == ["B-2"]


async def test_bad_bytes_in_chat_get_a_clear_answer_and_change_nothing(
    db: Database, tmp_path: Path
):
    boss, _ = await add_person(db, 901, "Bo Boss", [Role.DISPATCHER])
    ana, member = await add_person(db, 902, "Ana", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Dora", 52.51, 13.39)
    _, token = await invites.create_invite(db, Role.DRIVER, timedelta(days=1))
    async with running_bot(db, tmp_path) as bot:
        # a dispatcher types a name with a NUL in /neworder: asked again, the draft goes on
        await bot.send(tu.command(boss, "/neworder"))
        for bad in BAD:
            await bot.send(tu.message(boss, bad))
            reply = bot.texts(901)[-1]
            assert APOLOGY not in reply and "characters" in reply, reply
        await bot.send(tu.message(boss, "Lena Meyer"))
        assert "phone" in bot.texts(901)[-1]
        await bot.send(tu.command(boss, "/cancel"))

        # a driver gives her own failure reason with a NUL: asked again, nothing failed
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.send(tu.command(ana, "/route"))
        await bot.tap(ana, 902, bot.last(902), "Failed")
        await bot.tap(ana, 902, bot.last(902), "other")
        await bot.send(tu.message(ana, "gate\x00locked"))
        assert APOLOGY not in bot.texts(902)[-1] and "characters" in bot.texts(902)[-1]
        assert await status(db, order.id) is S.ASSIGNED
        await bot.send(tu.message(ana, "gate locked"))
        assert await status(db, order.id) is S.FAILED

        # a forged button whose order id no database integer can hold
        events = await count(db, OrderEvent)
        for data in ("s:arrive:99999999999999999999", "o:cancel:-99999999999999999999"):
            person, chat = (ana, 902) if data[0] == "s" else (boss, 901)
            await bot.send(tu.callback(person, data, message_id=1, chat_id=chat))
        assert await count(db, OrderEvent) == events
        assert not any(APOLOGY in text for text in bot.texts(902) + bot.texts(901))

        # someone whose Telegram name carries a NUL joins and talks to us
        odd = tu.user(903, "Ze\x00ro")
        await bot.send(tu.command(odd, f"/start {token}"))
        await bot.send(tu.command(odd, "/route"))
        assert bot.texts(903)[0].startswith("Welcome, Ze\ufffdro!"), bot.texts(903)
        assert bot.texts(903)[-1] == "You have no stops right now."
        assert not any(APOLOGY in text for text in bot.texts(903)), bot.texts(903)
    async with db.sessions() as session:
        names = list(await session.exec(select(Customer.name)))
        members = list(await session.exec(select(Member.name).order_by(col(Member.id))))
    assert "Lena Meyer" not in names and not any("\x00" in n for n in names + members)
    assert "Ze\ufffdro" in members
