"""The driver's page from the chat: on Telegram `/stops` opens it as a Mini App; in headless
Chromium it shares her position (which starts her route), she taps Arrived, is refused
Delivered without the photo, uploads one from a file and delivers — the customer hears it on
the fake Bot API, once. On WhatsApp the link comes with `stops` and when a pin starts her route."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlmodel import select

from core.db import Database
from core.models import Channel, Driver, LocationPing, Order, OrderStatus, Proof, ProofKind, Role
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft, create_order
from core.people.identities import ChatRef, attach
from core.webviews import driver as driver_page
from tests.factories import add_member
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, jpeg, running_bot
from tests.test_driver_page import HERE, chromium, fits
from tests.test_signature_pad_telegram import init_data
from tests.test_telegram_driver import assign, driver_of, link, new_order, status
from tests.test_whatsapp_driver import ANA, post_message
from tests.test_whatsapp_webhook import until, whatsapp_site

S = OrderStatus


async def test_a_telegram_driver_delivers_from_the_mini_app_page(db: Database, tmp_path: Path):
    ana, member = await add_person(db, 631, "Ana", [Role.DRIVER])
    _cara, cara_member = await add_person(db, 632, "Cara", [Role.CUSTOMER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41, proof_required="photo")
    await link(db, order, cara_member.id)
    junk = tmp_path / "scan.jpg"
    junk.write_bytes(b"%PDF-1.4 not an image")
    picture = tmp_path / "door.jpg"
    picture.write_bytes(jpeg())
    async with running_bot(db, tmp_path, telegram={"mini_apps": True}) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.send(tu.command(ana, "/stops"))
        offer = bot.last(631)
        assert (offer.text or "").startswith("Your stops on one page")
        [[button]] = offer.params["reply_markup"]["inline_keyboard"]
        url = button["web_app"]["url"]
        assert url.startswith(f"{bot.base_url}/driver/")
        assert await status(db, order.id) is S.ASSIGNED  # no position yet: not started

        launch = init_data(bot.settings.telegram.bot_token.get_secret_value(), 631, "Ana")
        async with chromium(390, 844, geolocation=HERE) as page:
            await page.goto(f"{url}#tgWebAppData={quote(launch)}&tgWebAppVersion=8.0")
            await page.wait_for_function("document.getElementById('where').dataset.sent")
            async with db.reads() as session:
                row = await session.get(Driver, driver.id)
                pings = (await session.exec(select(LocationPing))).all()
            assert (row.last_lat, row.last_lon) == (HERE["latitude"], HERE["longitude"])
            assert [(p.lat, p.lon, p.accuracy_m, p.live) for p in pings] == [
                (HERE["latitude"], HERE["longitude"], HERE["accuracy"], True)
            ]
            await until(
                lambda: _status_is(db, order.id, S.OUT_FOR_DELIVERY)
            )  # it started her route
            card = page.locator(f"section.stop[data-order='{order.id}']")
            await page.reload()
            await page.wait_for_selector(
                f"section.stop[data-order='{order.id}'] >> text=out for delivery"
            )
            await fits(page, "telegram-started-390")

            await card.locator("[data-op=arrive]").click()
            await page.wait_for_selector("#message:has-text('Arrived at')")
            assert await status(db, order.id) is S.ARRIVED
            await card.locator("[data-op=deliver]").click()
            await page.wait_for_selector("#message.error:has-text('needs a photo')")
            await card.locator("input.photo").set_input_files(str(junk))
            await page.wait_for_selector("#message.error:has-text('not a photo I can read')")
            async with db.reads() as session:
                assert not (await session.exec(select(Proof))).all()
            assert await status(db, order.id) is S.ARRIVED
            await card.locator("input.photo").set_input_files(str(picture))
            await page.wait_for_selector("#message:has-text('Photo saved')")
            assert await card.locator("label.file.done").count() == 1
            await fits(page, "telegram-photo-390")
            await card.locator("[data-op=deliver]").click()
            await page.wait_for_selector("#message:has-text('delivered')")
            assert await page.locator("section.stop").count() == 0
            await fits(page, "telegram-delivered-390")
        assert await status(db, order.id) is S.DELIVERED

        # the same Delivered sent again (a page submitted twice): answered, nothing changes
        svc = bot.app.state.services
        token = url.rsplit("/driver/", 1)[1]
        headers = {"Origin": bot.base_url, "X-Page-Key": driver_page.form_key(svc, token),
                   "X-Telegram-Init-Data": launch}  # fmt: skip
        async with httpx.AsyncClient(headers=headers) as http:
            again = await http.post(f"{url}/stops/{order.id}/deliver", json={})
        assert again.status_code == 200 and "delivered already" in again.json()["message"]
        await bot.outbox_settled()
        delivered = [c for c in bot.fake.sent_to(632) if c.method == "sendPhoto"]
        assert len(delivered) == 1 and delivered[0].files  # the photo taken on the page
        assert "was delivered" in (delivered[0].params.get("caption") or "")
        assert delivered[0].files[next(iter(delivered[0].files))] == picture.read_bytes()
        arrived = [t for t in bot.texts(632) if "at your door" in t]
        assert len(arrived) == 1
    async with db.reads() as session:
        [proof] = (await session.exec(select(Proof))).all()
    assert (
        proof.kind is ProofKind.PHOTO
        and (tmp_path / proof.stored_path).read_bytes() == picture.read_bytes()
    )


async def _status_is(db: Database, order_id: int, wanted: OrderStatus) -> bool:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        return order is not None and order.status is wanted


async def test_a_whatsapp_driver_gets_the_link(db: Database, tmp_path: Path):
    member = await add_member(db, "Ana", [Role.DRIVER])
    async with db.transaction() as session:
        driver = Driver(member_id=member.id)
        session.add(driver)
        await attach(session, member.id, ChatRef(Channel.WHATSAPP, ANA, ANA))
    draft = OrderDraft(customer_name="Cara", address="Cara street 1", lat=52.53, lon=13.41)
    order = await create_order(db, draft, SYSTEM, source="test")
    async with whatsapp_site(db, tmp_path) as (base, fake, app):
        seen = 0

        async def said(wamid: str, kind: str, part: Any) -> str:
            nonlocal seen
            await post_message(fake, ANA, kind, part, wamid)
            await until(lambda: wamid in fake.reads)
            new = fake.sent_to(ANA)[seen:]
            seen = len(fake.sent_to(ANA))
            return "\n".join(s.text for s in new)

        await said("wamid.p1", "text", {"body": "shift"})
        await order_service.change_status(
            db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=driver.id)
        )
        started = await said("wamid.p2", "location", {"latitude": 52.52, "longitude": 13.405})
        assert await _status_is(db, order.id, S.OUT_FOR_DELIVERY)  # the pin started her route
        svc = app.state.services
        prefix = f"{svc.signer.base_url}/driver/"
        assert "Your stops on one page" in started and prefix in started
        asked = await said("wamid.p3", "text", {"body": "stops"})  # a bare command word
        assert prefix in asked
        url = asked.split(prefix, 1)[1].split()[0]
        async with httpx.AsyncClient() as http:
            page = await http.get(f"{base}/driver/{url}")
        assert page.status_code == 200 and "Cara street 1" in page.text
        again = await said("wamid.p4", "location", {"latitude": 52.521, "longitude": 13.405})
        assert prefix not in again  # a pin at a stop: under way already, no new link
