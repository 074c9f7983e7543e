"""What the chat says, read as a new user would: counts with the right plural, articles, prompts
that name buttons which exist, addresses for dropped pins, the report's period, an example date
that is not in the past, the owner's help, and a driver's own words about a failed delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.models import Driver, Member, Order, OrderStatus, Role
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft, create_order
from core.people import invites
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
BOSS = 951
CSV = (
    "external_ref,customer_name,address,lat,lon\n"
    "W-1,Wanda,Weg 1,52.5,13.4\n"
    "W-2,Xaver,Weg 2,95,13.4\n"
)


async def orders_in(db: Database) -> list[Order]:
    async with db.sessions() as session:
        return list(await session.exec(select(Order).order_by(col(Order.id))))


async def driver_of(db: Database, member: Member) -> int:
    async with db.sessions() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
    assert driver.id is not None
    return driver.id


async def test_joining_as_an_owner_and_the_owners_help(db: Database, tmp_path: Path):
    _, token = await invites.create_invite(db, Role.OWNER, timedelta(days=1))
    olga = tu.user(950, "Olga")
    boss, _ = await add_person(db, BOSS, "Bo", [Role.DISPATCHER])
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(olga, "/start", token))
        assert bot.texts(950)[0] == "Welcome, Olga! You are now an owner."
        assert "/invite driver|dispatcher|owner – an invite link" in bot.texts(950)[1]
        await bot.send(tu.command(olga, "/invite", "wizard"))
        assert bot.texts(950)[-1] == ("Write /invite driver, /invite dispatcher or /invite owner.")
        await bot.send(tu.command(boss, "/help"))
        assert "/invite driver|dispatcher – an invite link" in bot.texts(BOSS)[-1]
        assert "owner" not in bot.texts(BOSS)[-1]
        await bot.send(tu.command(boss, "/invite", "owner"))
        assert bot.texts(BOSS)[-1] == "Write /invite driver or /invite dispatcher."


async def test_counts_of_one_and_of_many(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, BOSS, "Bo", [Role.DISPATCHER])
    ana, member = await add_person(db, 952, "Ana", [Role.DRIVER])
    draft = OrderDraft(customer_name="Ola", address="A 1", lat=52.5, lon=13.4)
    first = await create_order(db, draft, SYSTEM, source="test")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(boss, "/orders"))
        assert bot.texts(BOSS)[-1].startswith("1 order:\n")
        await order_service.change_status(
            db, first.id, S.ASSIGNED, SYSTEM, Change(driver_id=await driver_of(db, member))
        )
        await bot.send(tu.command(ana, "/route"))
        assert "Your route (1 stop):" in bot.texts(952)
        await bot.send(tu.command(boss, "/drivers"))
        assert bot.texts(BOSS)[-1].startswith("⚪ Ana · 1 stop\n")

        await bot.send(tu.command(boss, "/import"))
        file_id, unique = bot.fake.add_file(CSV.encode(), file_path="documents/one.csv")
        await bot.send(tu.document(boss, file_id, unique, "one.csv", "text/csv"))
        lines = bot.texts(BOSS)[-1].split("\n")
        assert lines[:2] == ["Imported 1 order.", "1 row has a problem:"]
        assert lines[2].startswith("row 3: ")
        await bot.send(tu.command(boss, "/import"))
        await bot.send(tu.document(boss, file_id, unique, "one.csv", "text/csv"))
        lines = bot.texts(BOSS)[-1].split("\n")
        assert lines[:2] == [
            "Imported 0 orders. 1 was imported before and left as it is.",
            "1 row has a problem:",
        ]
        await bot.send(tu.command(boss, "/orders"))
        assert bot.texts(BOSS)[-1].startswith("2 orders:\n")

        await bot.send(tu.command(ana, "/shift"))
        await bot.send(tu.command(ana, "/shift"))
        await bot.tap(ana, 952, bot.last(952), "End shift")
        assert bot.texts(952)[-1] == (
            "Your shift has ended. Thank you! 1 stop goes back to dispatch."
        )


async def test_the_photo_prompts_name_what_is_there(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 953, "Ana", [Role.DRIVER])
    draft = OrderDraft(customer_name="Ola", address="A 1", lat=52.5, lon=13.4, external_ref="P-1")
    order = await create_order(db, draft, SYSTEM, source="test")
    await order_service.change_status(
        db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=await driver_of(db, member))
    )
    async with running_bot(db, tmp_path) as bot:
        await bot.outbox_settled()  # her "New stop" notice first, so it cannot land after /route
        await bot.send(tu.command(ana, "/route"))
        await bot.tap(ana, 953, bot.last(953), "Delivered")
        await bot.send(tu.message(ana, "here you go"))
        prompt = bot.texts(953)[-1]
        assert prompt == "Please send a photo of order P-1, or /cancel."
        for button in bot.buttons(bot.last(953)):
            assert "Cancel" not in button[0]
        junk_id, junk_unique = bot.fake.add_file(b"not an image", file_path="photos/x.jpg")
        await bot.send(tu.photo(ana, junk_id, junk_unique))
        assert bot.texts(953)[-1] == (
            "That is not a photo I can read. Send a JPEG, PNG or WebP photo."
        )
        await bot.send(tu.command(ana, "/cancel"))  # what the prompt says works
        assert bot.texts(953)[-1] == "OK, cancelled. Nothing was changed."


async def test_a_dropped_pin_gets_a_readable_address(db: Database, tmp_path: Path):
    boss, _ = await add_person(db, BOSS, "Bo", [Role.DISPATCHER])
    async with running_bot(db, tmp_path) as bot:
        bot.nominatim.add_point(
            "10, Unter den Linden, Mitte, Berlin, 10117, Deutschland", 52.5170, 13.3889
        )

        async def new_order_at(address: dict | str) -> Order:
            await bot.send(tu.command(boss, "/neworder"))
            await bot.send(tu.message(boss, "Max"))
            await bot.send(tu.message(boss, "/skip"))
            if isinstance(address, dict):
                await bot.send(address)
            else:
                await bot.send(tu.message(boss, address))
            for _ in range(3):
                await bot.send(tu.message(boss, "/skip"))
            assert "Create it?" in bot.texts(BOSS)[-1]
            await bot.tap(boss, BOSS, bot.last(BOSS), "Create")
            return (await orders_in(db))[-1]

        pinned = await new_order_at(tu.location(boss, 52.51702, 13.38891))
        assert pinned.address == "10, Unter den Linden, Mitte, Berlin, 10117, Deutschland"
        assert (pinned.lat, pinned.lon) == (52.51702, 13.38891)
        typed = await new_order_at("52.51702, 13.38891")  # the same point, typed: from the cache
        assert typed.address == "10, Unter den Linden, Mitte, Berlin, 10117, Deutschland"

        nowhere = await new_order_at(tu.location(boss, 10.0, -30.0))  # the open sea
        assert nowhere.address == "📍 Dropped pin"
        bot.nominatim.fail_next(1)
        offline = await new_order_at(tu.location(boss, 52.40, 13.06))
        assert offline.address == "📍 Dropped pin" and (offline.lat, offline.lon) == (52.4, 13.06)
        asked = [(float(r.params["lat"]), float(r.params["lon"])) for r in bot.nominatim.requests]
        assert asked == [(52.51702, 13.38891), (10.0, -30.0), (52.4, 13.06)]


async def test_the_report_period_and_the_window_example(db: Database, tmp_path: Path):
    owner, _ = await add_person(db, BOSS, "Olga", [Role.OWNER])
    now = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    async with running_bot(db, tmp_path, clock=lambda: now) as bot:
        for period in ("today", "yesterday", "7d"):
            await bot.send(tu.command(owner, "/report", period))
        sent = bot.fake.sent_to(BOSS)
        assert [call.method for call in sent] == ["sendMessage", "sendPhoto", "sendDocument"] * 3
        assert [(c.text or "").split("\n")[0] for c in sent if c.method == "sendMessage"] == [
            "📊 Report for Wed 25 Nov",
            "📊 Report for Tue 24 Nov",
            "📊 Report for Thu 19 Nov\u2009–\u2009Wed 25 Nov",  # CLDR's thin spaces
        ]
    later = system_clock() + timedelta(days=40)
    async with running_bot(db, tmp_path, clock=lambda: later) as bot:
        await bot.send(tu.command(owner, "/neworder"))
        for text in ("Max", "/skip", "52.5, 13.4"):
            await bot.send(tu.message(owner, text))
        tomorrow = (later + timedelta(days=1)).date().isoformat()
        assert bot.texts(BOSS)[-1] == (
            f"Time window, like 14:00-16:00 (today) or {tomorrow} 9-12, or /skip."
        )
        await bot.send(tu.message(owner, "soon"))
        assert bot.texts(BOSS)[-1] == (
            f"'soon' is not a time window. Write it like 14:00-16:00 or {tomorrow} 9-12."
        )


async def test_a_drivers_own_words_go_to_dispatch_not_to_the_customer(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 954, "Ana", [Role.DRIVER])
    _, cara = await add_person(db, 955, "Cara", [Role.CUSTOMER])
    await add_person(db, 956, "Bo", [Role.DISPATCHER])
    draft = OrderDraft(customer_name="Cara", address="A 1", lat=52.5, lon=13.4, external_ref="F-1")
    order = await create_order(db, draft, SYSTEM, source="test")
    async with db.transaction() as session:
        from core.models import Customer

        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        customer.member_id = cara.id
        session.add(customer)
    await order_service.change_status(
        db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=await driver_of(db, member))
    )
    async with running_bot(db, tmp_path) as bot:
        await bot.outbox_settled()  # her "New stop" notice first: it must not land between taps
        await bot.send(tu.command(ana, "/route"))
        await bot.tap(ana, 954, bot.last(954), "Failed")
        await bot.tap(ana, 954, bot.last(954), "other reason")
        assert bot.texts(954)[-1] == (
            "Type what happened with order F-1. Dispatch reads it; the customer is only told "
            "that the delivery could not be made."
        )
        words = "Customer was drunk and rude, threw the parcel"
        await bot.send(tu.message(ana, words))
        assert bot.texts(954)[-1] == (
            "Order F-1 marked failed. Your note went to dispatch; the customer is offered "
            "a new time."
        )
        await bot.outbox_settled()
        failed = [t for t in bot.texts(955) if "could not deliver" in t]
        assert failed == [
            "We could not deliver your order F-1 this time. Pick a new time, or tell us how "
            "to reach you."
        ]
        assert words not in "".join(bot.texts(955))
        assert bot.texts(956)[-1] == f"⚠️ Order F-1 failed (attempt 1): {words}."
