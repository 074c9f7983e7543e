"""Drivers in chat: shift, live location (start, updates, stop, expiry), the route, stop buttons,
proof photos, failures with a new slot for the customer, undo, and other drivers' stops."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.models import (
    Driver,
    LocationPing,
    Order,
    OrderStatus,
    OrderWindow,
    OutboxStatus,
    Proof,
    Role,
    ShiftState,
)
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Actor, Change
from core.orders.service import OrderDraft, create_order
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, jpeg, running_bot

S = OrderStatus
BERLIN = (52.5200, 13.4050)


async def new_order(db: Database, name: str, lat: float, lon: float, **fields) -> Order:
    draft = OrderDraft(customer_name=name, address=f"{name} street 1", lat=lat, lon=lon, **fields)
    return await create_order(db, draft, SYSTEM, source="test")


async def link(db: Database, order: Order, member_id: int) -> None:
    from core.models import Customer

    async with db.transaction() as session:
        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        customer.member_id = member_id
        session.add(customer)


async def driver_of(db: Database, member_id: int) -> Driver:
    async with db.sessions() as session:
        return (await session.exec(select(Driver).where(Driver.member_id == member_id))).one()


async def status(db: Database, order_id: int) -> OrderStatus:
    async with db.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.status


async def assign(db: Database, order_id: int, driver_id: int) -> None:
    await order_service.change_status(db, order_id, S.ASSIGNED, SYSTEM, Change(driver_id=driver_id))


async def test_live_location_session_start_updates_stop_and_expiry(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 601, "Ana Driver", [Role.DRIVER])
    await add_person(db, 602, "Bo Boss", [Role.DISPATCHER])
    now = [system_clock()]
    async with running_bot(db, tmp_path, clock=lambda: now[0]) as bot:
        await bot.send(tu.command(ana, "/shift"))
        assert "share your live location" in bot.texts(601)[0]
        assert bot.last(601).params["reply_markup"]["keyboard"][0][0]["request_location"] is True

        start = int(time.time())
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=40, date=start))
        assert bot.texts(601)[-1].startswith("Thanks, I can see you.")
        for step in range(1, 4):
            await bot.send(
                tu.location(ana, BERLIN[0] + step * 0.001, BERLIN[1], live_period=3600,
                            edit=True, message_id=40, date=start, edit_date=start + step * 10)
            )  # fmt: skip
        driver = await driver_of(db, member.id)
        assert driver.shift_state is ShiftState.ON
        assert driver.last_lat == BERLIN[0] + 0.003
        assert driver.live_until == datetime.fromtimestamp(start + 3600, UTC)
        async with db.sessions() as session:
            pings = list(await session.exec(select(LocationPing).order_by(col(LocationPing.id))))
        assert [p.live for p in pings] == [True] * 4

        # she stops sharing: the final edit has no live_period
        await bot.send(
            tu.location(ana, BERLIN[0] + 0.003, BERLIN[1], edit=True, message_id=40, date=start,
                        edit_date=start + 60)
        )  # fmt: skip
        assert bot.texts(601)[-1].startswith("You stopped sharing your location.")
        driver = await driver_of(db, member.id)
        assert driver.live_until == datetime.fromtimestamp(start + 60, UTC)

        # Telegram sends nothing when sharing ends: the stale check notices, once
        now[0] = system_clock() + timedelta(minutes=2)
        assert await bot.app.state.services.positions.check_stale() == [driver.id]
        assert await bot.app.state.services.positions.check_stale() == []
        await bot.outbox_settled()
        assert "share your live location again" in bot.texts(601)[-1]
        alert = bot.last(602)
        assert "Ana Driver's location is" in (alert.text or "")
        assert [text for text, _ in bot.buttons(alert)] == ["Ask again"]
        await bot.tap(tu.user(602, "Bo"), 602, alert, "Ask again")
        await bot.outbox_settled()
        assert len([t for t in bot.texts(601) if "share your live location again" in t]) == 2


async def test_delivery_with_proof_photo_and_a_rating(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 611, "Ana", [Role.DRIVER])
    cara, cara_member = await add_person(db, 612, "Cara", [Role.CUSTOMER])
    dora, _ = await add_person(db, 613, "Dora", [Role.DISPATCHER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41)
    await link(db, order, cara_member.id)
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=41))
        assert await status(db, order.id) is S.OUT_FOR_DELIVERY  # her first stop starts
        await bot.outbox_settled()
        assert any("on the way with your order" in t for t in bot.texts(612))
        assert any("New stop: order" in t and "stop 1 of your route" in t for t in bot.texts(611))

        await bot.send(tu.command(ana, "/route"))
        stop_message = bot.last(611)
        assert "Cara street 1" in (stop_message.text or "")
        labels = [text for text, _ in bot.buttons(stop_message)]
        assert labels[:3] == ["📍 Arrived", "✅ Delivered", "✖️ Failed"] and "🧭 Navigate" in labels

        await bot.tap(ana, 611, stop_message, "Arrived")
        assert await status(db, order.id) is S.ARRIVED
        await bot.tap(ana, 611, stop_message, "Delivered")
        assert bot.texts(611)[-1].startswith("Send a photo of the delivered parcel")

        # a "photo" that is not an image is refused and changes nothing
        junk_id, junk_unique = bot.fake.add_file(b"%PDF-1.4 not an image", file_path="photos/x.jpg")
        await bot.send(tu.photo(ana, junk_id, junk_unique))
        assert (
            bot.texts(611)[-1] == "That is not a photo I can read. Send a JPEG, PNG or WebP photo."
        )
        assert await status(db, order.id) is S.ARRIVED

        picture = jpeg()
        file_id, unique = bot.fake.add_file(picture, file_path="photos/file_9.jpg")
        await bot.send(tu.photo(ana, file_id, unique, file_size=len(picture)))
        assert bot.texts(611)[-1].startswith(f"Order #{order.id} delivered.")
        assert await status(db, order.id) is S.DELIVERED
        async with db.sessions() as session:
            [proof] = list(await session.exec(select(Proof)))
        import hashlib

        assert proof.sha256 == hashlib.sha256(picture).hexdigest()
        assert (tmp_path / proof.stored_path).read_bytes() == picture

        await bot.outbox_settled()
        delivered = [c for c in bot.fake.sent_to(612) if c.method == "sendPhoto"]
        assert len(delivered) == 1 and delivered[0].params["photo"] == file_id
        assert [text for text, _ in bot.buttons(delivered[0])] == ["1★", "2★", "3★", "4★", "5★"]
        await bot.tap(cara, 612, delivered[0], "5★")
        assert bot.texts(612)[-1] == "Thank you for rating 5★!"
        async with db.sessions() as session:
            rated = await session.get(Order, order.id)
        assert rated is not None and rated.rating == 5

        # the dispatcher's order card links the photo through a signed, expiring URL
        await bot.send(tu.command(dora, f"/order {order.id}"))
        card = bot.texts(613)[-1]
        url = re.search(r"Proof photo \(link valid until [^)]+\): (\S+)", card).group(1)
        assert url.startswith(f"{bot.base_url}/proofs/{proof.id}?expires=")
        async with httpx.AsyncClient() as client:
            fetched = await client.get(url)
            assert fetched.status_code == 200 and fetched.content == picture
            assert fetched.headers["content-type"] == "image/jpeg"
            forged = await client.get(url[:-1] + ("0" if url[-1] != "0" else "1"))
            assert forged.status_code == 403 and "not valid" in forged.json()["detail"]


async def test_failed_stop_then_the_customer_picks_a_new_slot(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 621, "Ana", [Role.DRIVER])
    dora, dora_member = await add_person(db, 622, "Dora", [Role.CUSTOMER])
    _, _boss = await add_person(db, 623, "Bo", [Role.DISPATCHER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Dora", 52.51, 13.39)
    await link(db, order, dora_member.id)
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.outbox_settled()  # her "New stop" notice, before her taps (it came late once)
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=42))
        await bot.send(tu.command(ana, "/route"))
        await bot.tap(ana, 621, bot.last(621), "Failed")
        reasons = bot.last(621)
        assert [t for t, _ in bot.buttons(reasons)][:2] == ["nobody home", "wrong address"]
        await bot.tap(ana, 621, reasons, "nobody home")
        assert await status(db, order.id) is S.FAILED
        assert "marked failed: nobody home" in bot.texts(621)[-1]

        await bot.outbox_settled()
        alert = bot.last(623)
        assert "failed (attempt 1): nobody home" in (alert.text or "")
        assert [t for t, _ in bot.buttons(alert)] == ["Reschedule", "Return", "Open"]
        failed = bot.last(622)
        assert "could not deliver your order" in (failed.text or "")
        await bot.tap(dora, 622, failed, "Pick a new time")
        slots = bot.last(622)
        assert len(bot.buttons(slots)) == 3
        await bot.tap(dora, 622, slots, bot.buttons(slots)[0][0])
        assert await status(db, order.id) is S.RESCHEDULED
        assert bot.texts(622)[-1].startswith(f"Done: order #{order.id} will come")
        async with db.sessions() as session:
            [window] = list(
                await session.exec(select(OrderWindow).where(OrderWindow.order_id == order.id))
            )
        assert window.starts_at > system_clock() and window.starts_at.hour == 9

        await bot.tap(dora, 622, failed, "Leave instructions")
        assert bot.texts(622)[-1].startswith("Type your instructions for the driver")
        await bot.send(tu.message(dora, "x"))  # too short: asked again, nothing saved
        assert bot.texts(622)[-1] == "Instructions should be 2 to 500 characters."
        await bot.send(tu.message(dora, "Code 1234 at the gate"))
        assert bot.texts(622)[-1] == "Thanks, the driver will see your note."
        async with db.sessions() as session:
            saved = await session.get(Order, order.id)
        assert saved is not None and saved.notes.endswith("Code 1234 at the gate")


async def test_undo_a_mistap_and_no_acting_on_other_drivers_stops(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 631, "Ana", [Role.DRIVER])
    ben, _ = await add_person(db, 632, "Ben", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Eli", 52.50, 13.40, proof_required="none")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.outbox_settled()  # her "New stop" notice, before her taps (it came late once)
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=43))
        await bot.send(tu.command(ana, "/route"))
        stop_message = bot.last(631)

        # Ben presses Ana's buttons (e.g. a forwarded message): refused, nothing changes
        await bot.tap(ben, 632, stop_message, "Delivered")
        assert bot.texts(632)[-1] == f"Order #{order.id} is not on your route."
        assert await status(db, order.id) is S.OUT_FOR_DELIVERY

        await bot.tap(ana, 631, stop_message, "Delivered")  # no proof needed: delivered at once
        assert await status(db, order.id) is S.DELIVERED
        done = bot.last(631)
        await bot.tap(ana, 631, done, "Undo")
        assert await status(db, order.id) is S.ARRIVED
        assert bot.texts(631)[-1] == f"Undone: order #{order.id} is at the door again."
        await bot.tap(ana, 631, done, "Undo")  # once only: the arrival was not hers to undo now
        assert await status(db, order.id) is S.ARRIVED


async def test_customer_messages_are_held_back_when_the_driver_undoes(db: Database, tmp_path: Path):
    """A status change undone before its messages went out never reaches the customer."""
    _, member = await add_person(db, 641, "Ana", [Role.DRIVER])
    _, fay = await add_person(db, 642, "Fay", [Role.CUSTOMER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Fay", 52.50, 13.40, proof_required="none")
    await link(db, order, fay.id)
    await assign(db, order.id, driver.id)
    services_actor = Actor.member(member.id)
    from core.drivers.stops import Stops

    stops = Stops(db)
    await stops.arrive(driver.id, order.id, services_actor)
    await stops.deliver(driver.id, order.id, services_actor)
    await stops.undo(driver.id, order.id, services_actor, within=timedelta(minutes=5))
    from core.models import OutboxMessage

    async with db.sessions() as session:
        rows = list(
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.template == "customer.order_delivered")
            )
        )
    assert [(r.status, r.last_error) for r in rows] == [
        (OutboxStatus.SKIPPED, "undone by the driver")
    ]


OOPS = "Something went wrong"
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def on_a_route(db: Database, bot, ana, member_id: int, chat: int, message_id: int):  # type: ignore[no-untyped-def]
    """Ana on shift, sharing her location, with one order; her /route stop message."""
    order = await new_order(db, "Gus", 52.53, 13.41)
    await bot.send(tu.command(ana, "/shift"))
    await assign(db, order.id, (await driver_of(db, member_id)).id)
    await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=message_id))
    await bot.send(tu.command(ana, "/route"))
    await bot.outbox_settled()  # its notifications are out: faults injected next hit replies
    stops = [c for c in bot.fake.sent_to(chat) if "📍 Arrived" in str(c.params)]
    return order, stops[-1]


async def test_the_photo_prompt_survives_a_429_and_a_502(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 651, "Ana", [Role.DRIVER])
    async with running_bot(db, tmp_path) as bot:
        order, stop_message = await on_a_route(db, bot, ana, member.id, 651, 44)
        await bot.tap(ana, 651, stop_message, "Arrived")
        await bot.outbox_settled()
        bot.fake.fail_next("sendMessage", chat_id=651, code=429, retry_after=1)
        bot.fake.fail_next("sendMessage", chat_id=651, code=502)
        await bot.tap(ana, 651, stop_message, "Delivered")
        assert bot.texts(651)[-1].startswith("Send a photo of the delivered parcel")
        assert not [text for text in bot.texts(651) if OOPS in text]
        tries = bot.fake.calls_to("sendMessage", 651)[-3:]
        assert [c.error_code for c in tries] == [429, 502, None]
        assert tries[1].at - tries[0].at >= 0.95  # it waited the retry_after Telegram asked for
        assert await status(db, order.id) is S.ARRIVED  # the photo is still to come


async def test_a_reply_that_cannot_wait_goes_out_through_the_outbox_in_order(
    db: Database, tmp_path: Path
):
    ana, member = await add_person(db, 652, "Ana", [Role.DRIVER])
    async with running_bot(db, tmp_path, telegram={"reply_retry_s": 1}) as bot:
        order, _ = await on_a_route(db, bot, ana, member.id, 652, 45)
        before = len(bot.texts(652))
        bot.fake.fail_next("sendMessage", chat_id=652, code=429, retry_after=3)
        await bot.send(tu.command(ana, "/route"))  # longer than TELEGRAM_REPLY_RETRY_S to wait
        assert len(bot.texts(652)) == before  # nothing yet, and no apology
        rows = await bot.outbox_settled()
        handed = [r for r in rows if r.template == "chat.reply"]
        assert [r.status for r in handed] == [OutboxStatus.SENT] * 2
        header, stop = bot.fake.sent_to(652)[before:]
        assert (header.text or "").startswith("Your route") and f"#{order.id}" in (stop.text or "")
        assert [text for text, _ in bot.buttons(stop)][:3] == [
            "📍 Arrived",
            "✅ Delivered",
            "✖️ Failed",
        ]
        refused = bot.fake.calls_to("sendMessage", 652)[-3]
        assert refused.error_code == 429 and header.at - refused.at >= 2.9  # the hold was kept
        assert not [text for text in bot.texts(652) if OOPS in text]


async def test_a_button_answered_too_late_still_acts(db: Database, tmp_path: Path):
    """After an outage a press comes again long after it was made: too old to answer (Telegram
    refuses), but what it asked for is done."""
    ana, member = await add_person(db, 653, "Ana", [Role.DRIVER])
    async with running_bot(db, tmp_path) as bot:
        order, stop_message = await on_a_route(db, bot, ana, member.id, 653, 46)
        bot.fake.fail_next("answerCallbackQuery", code=400, description=TOO_OLD)
        await bot.tap(ana, 653, stop_message, "Arrived")
        assert await status(db, order.id) is S.ARRIVED
        assert bot.texts(653)[-1].startswith("Arrived at")
        assert not [text for text in bot.texts(653) if OOPS in text]


async def test_loaded_puts_her_route_on_board(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 621, "Ana", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    first = await new_order(db, "Hal", 52.53, 13.41)
    second = await new_order(db, "Ida", 52.54, 13.42)
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        for order in (first, second):
            await assign(db, order.id, driver.id)
        await bot.send(tu.command(ana, "/route"))
        header = next(c for c in bot.fake.sent_to(621) if "Your route (2 stops)" in str(c.params))
        await bot.tap(ana, 621, header, "Loaded")
        assert bot.texts(621)[-1] == "📦 2 parcels are on board: they stay on your route."
        async with db.sessions() as session:
            rows = [await session.get(Order, o.id) for o in (first, second)]
        assert all(row is not None and row.loaded_at is not None for row in rows)
        await bot.tap(ana, 621, header, "Loaded")  # a second tap changes nothing
        assert bot.texts(621)[-1] == "Nothing to load: your parcels are on board already."
