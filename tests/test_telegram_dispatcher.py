"""Dispatchers in chat: /neworder with geocoding, /orders, /order, /assign, /dispatch, /optimize,
/import, /invite, /report, /drivers — and the wrong inputs a person can type."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.models import (
    Driver,
    Invite,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    Role,
    Route,
    RouteStop,
    ShiftState,
    open_stop,
)
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft, create_order
from tests.conftest import FIXTURES
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
BOSS = 801


async def orders_in(db: Database) -> list[Order]:
    async with db.sessions() as session:
        return list(await session.exec(select(Order).order_by(col(Order.id))))


async def test_neworder_conversation_with_mistakes_and_a_choice_of_places(
    db: Database, tmp_path: Path
):
    boss, _ = await add_person(db, BOSS, "Bo Boss", [Role.DISPATCHER])
    async with running_bot(db, tmp_path) as bot:
        bot.nominatim.add(
            "Hauptstr 5",
            ("Hauptstraße 5, Berlin, Germany", 52.48, 13.35),
            ("Hauptstraße 5, Potsdam, Germany", 52.39, 13.06),
            ("Hauptstraße 5, Leipzig, Germany", 51.34, 12.37),
        )

        async def say(text: str) -> str:
            await bot.send(tu.message(boss, text))
            return bot.texts(BOSS)[-1]

        await bot.send(tu.command(boss, "/neworder"))
        assert bot.texts(BOSS)[-1] == "New order. Customer's name?"
        assert "phone" in await say("Lena Meyer")
        assert "not a phone number" in await say("12345")
        assert "Delivery address?" in await say("+49 151 23456789")
        assert await say("Hauptstr 5") == "Which one is it?"
        choice = bot.last(BOSS)
        assert len(bot.buttons(choice)) == 3
        await bot.tap(boss, BOSS, choice, "Potsdam")
        assert bot.texts(BOSS)[-1].startswith("Time window")
        assert "is not a time window" in await say("9am")
        assert "Size" in await say("tomorrow 14:00-16:00")
        assert "is not a weight" in await say("heavy")
        assert "Notes" in await say("3.5 kg")
        assert "First finish what we started" in await say("/orders")
        summary = await say("Ring twice")
        assert "Lena Meyer · +4915123456789" in summary and "3.5 kg" in summary
        await bot.tap(boss, BOSS, bot.last(BOSS), "Create")

        created = bot.last(BOSS)
        assert created.method == "sendPhoto" and created.files["photo"][:4] == b"\x89PNG"
        [order] = await orders_in(db)
        caption = created.text or ""
        assert f"Order #{order.id} created." in caption
        assert f"/t/{order.tracking_token}" in caption
        assert f"https://t.me/lastmile_test_bot?start={order.tracking_token}" in caption
        assert (order.lat, order.lon, order.weight_kg) == (52.39, 13.06, 3.5)
        # the typed text was ambiguous, so the chosen place's name is kept as the address
        assert order.address == "Hauptstraße 5, Potsdam, Germany" and order.notes == "Ring twice"
        async with db.sessions() as session:
            [window] = list(await session.exec(select(OrderWindow)))
        assert (window.starts_at.hour, window.ends_at.hour) == (14, 16)


async def test_a_geocoding_miss_asks_for_a_pin(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, BOSS, "Bo Boss", [Role.DISPATCHER])
    async with running_bot(db, tmp_path) as bot:
        for text in ("/neworder", "Max", "/skip", "Nowhere Lane 99"):
            await bot.send(
                tu.message(boss, text) if not text.startswith("/n") else tu.command(boss, text)
            )
        assert bot.texts(BOSS)[-1] == (
            "I found no place for 'Nowhere Lane 99'. Check it, or send a location pin."
        )
        await bot.send(tu.location(boss, 52.5, 13.4))
        assert bot.texts(BOSS)[-1].startswith("Time window")
        for text in ("/skip", "/skip", "/skip"):
            await bot.send(tu.message(boss, text))
        await bot.tap(boss, BOSS, bot.last(BOSS), "Create")
        [order] = await orders_in(db)
        assert (order.lat, order.lon, order.address) == (52.5, 13.4, "📍 Dropped pin")
        assert bot.nominatim.queries == ["Nowhere Lane 99"]


async def test_orders_card_assign_cancel_and_drivers(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, BOSS, "Bo Boss", [Role.DISPATCHER])
    _, ana = await add_person(db, 802, "Ana Lopez", [Role.DRIVER])
    await add_person(db, 803, "Andre Smith", [Role.DRIVER])
    one = await create_order(db, OrderDraft(customer_name="Ola", address="A 1", lat=52.5, lon=13.4),
                             SYSTEM, source="test")  # fmt: skip
    two = await create_order(db, OrderDraft(customer_name="Pia", address="B 2"), SYSTEM, source="t")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(boss, "/orders"))
        listing = bot.texts(BOSS)[-1]
        assert listing.startswith("2 orders:") and f"#{two.id} · new · B 2" in listing
        await bot.send(tu.command(boss, "/orders", "lost"))
        assert bot.texts(BOSS)[-1].startswith("'lost' is not a status.")
        await bot.send(tu.command(boss, "/order", "abc"))  # could be a reference: there is none
        assert bot.texts(BOSS)[-1] == "There is no order abc."
        await bot.send(tu.command(boss, "/order", "999"))
        assert bot.texts(BOSS)[-1] == "There is no order 999."

        await bot.send(tu.command(boss, "/assign", f"{one.id} An"))  # two drivers start with An
        assert "matches several drivers (Ana Lopez, Andre Smith)" in bot.texts(BOSS)[-1]
        await bot.send(tu.command(boss, "/assign", f"{one.id} Zed"))
        assert bot.texts(BOSS)[-1].startswith("There is no driver called 'Zed'.")
        await bot.send(tu.command(boss, "/assign", f"{one.id} ana"))
        assert bot.texts(BOSS)[-1] == f"Order #{one.id} → Ana Lopez."
        async with db.sessions() as session:
            saved = await session.get(Order, one.id)
            assert saved is not None and saved.driver_locked and saved.status is S.ASSIGNED

        await bot.send(tu.command(boss, "/order", str(two.id)))
        card = bot.last(BOSS)
        assert "(no map point yet)" in (card.text or "")
        assert [t for t, _ in bot.buttons(card)] == ["Assign", "Cancel order"]
        await bot.tap(boss, BOSS, card, "Cancel order")
        await bot.tap(boss, BOSS, bot.last(BOSS), "Yes, cancel it")
        assert bot.texts(BOSS)[-1] == f"Order #{two.id} is cancelled."

        await bot.send(tu.command(boss, "/drivers"))
        board = bot.texts(BOSS)[-1]
        assert "Ana Lopez · 1 stop\n" in board and "Andre Smith · 0 stops" in board
    assert ana.id is not None


async def test_dispatch_and_optimize_report_back(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, BOSS, "Bo Boss", [Role.DISPATCHER])
    _, ana = await add_person(db, 811, "Ana", [Role.DRIVER])
    async with db.transaction() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == ana.id))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
        driver.last_lat, driver.last_lon, driver.last_seen_at = 52.52, 13.40, system_clock()
        session.add(driver)
    made = []
    for i in range(4):
        draft = OrderDraft(customer_name=f"C{i}", address=f"S {i}", lat=52.50 + i / 100, lon=13.41)
        made.append(await create_order(db, draft, SYSTEM, source="test"))
    nowhere = await create_order(db, OrderDraft(customer_name="N", address="?"), SYSTEM, source="t")
    # the dispatcher plans by hand: no autopilot placing the orders first
    async with running_bot(db, tmp_path, dispatch={"mode": "manual"}) as bot:
        await bot.send(tu.command(boss, "/dispatch"))
        summary = bot.last(BOSS).text or ""
        assert summary.startswith("Dispatched: 4 assigned, 1 left waiting.")
        assert f"#{nowhere.id}: its address has no map point yet" in summary
        # what the plan costs, at the default rates (the figures are checked in
        # tests/test_plan_figures.py)
        figures = summary.splitlines()[-1]
        assert figures.startswith("Plan from now — drivers 1, stops 4: paid ")
        assert figures.endswith(" (at 20/h, 0.3/km)")
        assert all(o.status is S.ASSIGNED for o in (await orders_in(db))[:4])

        await bot.send(tu.command(boss, "/optimize"))
        edits = bot.fake.calls_to("editMessageText")
        assert any("Re-planning all routes… 1 s" in (c.text or "") for c in edits)
        final = edits[-1].text or ""
        assert final.startswith(("Routes re-planned:", "The current plan is already"))
        assert final.splitlines()[-1].startswith("Plan from now — drivers 1, stops 4: paid ")
    assert made


async def on_shift_at(db: Database, member_id: int, lat: float, lon: float) -> Driver:
    async with db.transaction() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member_id))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
        driver.last_lat, driver.last_lon, driver.last_seen_at = lat, lon, system_clock()
        session.add(driver)
        return driver


async def test_two_dispatchers_assign_one_order_at_once(db: Database, tmp_path: Path):
    """Bo and Cy /assign the same order to different drivers at the same moment. Each is told
    what happened to her choice: "→ the driver she chose" only when it was saved, a refusal
    naming the winner otherwise; the order ends on one route, its driver's."""
    bo, bo_member = await add_person(db, BOSS, "Bo Boss", [Role.DISPATCHER])
    cy, cy_member = await add_person(db, 804, "Cy Boss", [Role.DISPATCHER])
    _, ana = await add_person(db, 802, "Ana Lopez", [Role.DRIVER])
    _, ben = await add_person(db, 803, "Ben Okafor", [Role.DRIVER])
    drivers = {
        (await on_shift_at(db, ana.id, 52.52, 13.30)).id: "Ana Lopez",
        (await on_shift_at(db, ben.id, 52.52, 13.50)).id: "Ben Okafor",
    }
    wrong = []
    # manual dispatch is what this is about: the autopilot would place the order first
    async with running_bot(db, tmp_path, dispatch={"mode": "manual"}) as bot:
        for round_ in range(8):
            draft = OrderDraft(customer_name=f"C{round_}", address="A 1", lat=52.52, lon=13.40)
            order = await create_order(db, draft, SYSTEM, source="test")
            await asyncio.gather(
                bot.send(tu.command(bo, "/assign", f"{order.id} ana")),
                bot.send(tu.command(cy, "/assign", f"{order.id} ben")),
            )
            async with db.sessions() as session:
                saved = await session.get(Order, order.id)
                assigners = [
                    e.actor_member_id
                    for e in await session.exec(
                        select(OrderEvent)
                        .where(OrderEvent.order_id == order.id, OrderEvent.to_status == S.ASSIGNED)
                        .order_by(col(OrderEvent.id))
                    )
                ]
                stops = list(
                    await session.exec(
                        select(Route.driver_id)
                        .join(RouteStop, col(RouteStop.route_id) == Route.id)
                        .where(RouteStop.order_id == order.id, open_stop())
                    )
                )
            assert saved is not None
            winner = drivers[saved.driver_id]
            for chat, member_id, chosen in (
                (BOSS, bo_member.id, "Ana Lopez"),
                (804, cy_member.id, "Ben Okafor"),
            ):
                reply = bot.texts(chat)[-1]
                if reply == f"Order #{order.id} → {chosen}.":
                    if member_id not in assigners:
                        wrong.append(f"round {round_}: {chat} told {reply!r}, nothing saved")
                elif reply == (
                    f"Order #{order.id} was just assigned to {winner.split()[0]} by someone "
                    "else, so your choice was not saved. Assign it again to change that."
                ):
                    if member_id in assigners:
                        wrong.append(f"round {round_}: {chat} refused, but her choice was saved")
                else:
                    wrong.append(f"round {round_}: {chat} got {reply!r}")
            if stops != [saved.driver_id]:
                wrong.append(f"round {round_}: order of {winner} on the routes of {stops}")
    assert wrong == [], "\n".join(wrong)


async def test_import_invite_and_report(db: Database, tmp_path: Path):
    owner, _ = await add_person(db, BOSS, "Olga Owner", [Role.OWNER])
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(owner, "/import"))
        assert bot.texts(BOSS)[-1] == "Send the CSV file of orders as a document."
        await bot.send(tu.message(owner, "here it comes"))
        assert bot.texts(BOSS)[-1] == "Please send a .csv file (as a document)."
        data = (FIXTURES / "orders_mixed.csv").read_bytes()
        file_id, unique = bot.fake.add_file(data, file_path="documents/orders.csv")
        await bot.send(tu.document(owner, file_id, unique, "orders.csv", "text/csv"))
        result = bot.texts(BOSS)[-1]
        assert result.startswith("Imported ") and "rows have problems:" in result
        assert "row " in result
        # the autopilot places the imported orders after the import: its alerts for those it
        # cannot place (no map point) reach the owner now, not between the replies below
        await bot.placements_settled()

        await bot.send(tu.command(owner, "/invite", "wizard"))  # an owner may invite owners
        assert bot.texts(BOSS)[-1] == "Write /invite driver, /invite dispatcher or /invite owner."
        await bot.send(tu.command(owner, "/invite", "driver"))
        invite = bot.last(BOSS)
        assert invite.method == "sendPhoto"
        assert "https://t.me/lastmile_test_bot?start=" in (invite.text or "")
        async with db.sessions() as session:
            [row] = list(await session.exec(select(Invite)))
        assert row.role is Role.DRIVER and row.used_at is None

        made = await orders_in(db)
        await order_service.change_status(db, made[0].id, S.CANCELLED, SYSTEM, Change())
        await bot.send(tu.command(owner, "/report", "today"))
        text, chart, table = bot.fake.sent_to(BOSS)[-3:]
        assert (text.text or "").startswith("📊 Report for ")
        assert f"📦 Still open: {len(made) - 1}" in (text.text or "")  # the cancelled one not
        assert (chart.method, table.method) == ("sendPhoto", "sendDocument")
        assert table.files["document"].decode().count("\n") == 1 + len(made)
        await bot.send(tu.command(owner, "/report", "lastyear"))
        assert bot.texts(BOSS)[-1] == (
            "'lastyear' is not a period: use today, yesterday, 7d, a date like 2026-12-07 or a "
            "week like 2026-W49."
        )
