"""Scenario: an order needing `photo+signature` delivered through the Telegram adapter (the
fake Bot API): Delivered, the photo in chat, then the signature pad opened as a Mini App from
the web_app button and signed in headless Chromium; the customer hears it was delivered."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from sqlmodel import select

from core.db import Database
from core.models import OrderStatus, Proof, ProofKind, Role
from core.webviews import initdata
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, jpeg, running_bot
from tests.test_signature_pad import draw_with_mouse, sign_on_page
from tests.test_telegram_driver import BERLIN, assign, driver_of, link, new_order, status
from tests.test_tracking_page import browser_page

S = OrderStatus


def init_data(bot_token: str, user_id: int, first_name: str) -> str:
    """initData as Telegram makes it for a Mini App opened now by this user."""
    user = json.dumps({"id": user_id, "first_name": first_name}, separators=(",", ":"))
    fields = {"auth_date": str(int(time.time())), "query_id": "AAH-scenario", "user": user}
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    digest = hmac.new(initdata.secret(bot_token), check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest})


async def test_photo_and_signature_delivered_through_telegram_and_the_mini_app(
    db: Database, tmp_path: Path
):
    ana, member = await add_person(db, 621, "Ana", [Role.DRIVER])
    _cara, cara_member = await add_person(db, 622, "Cara", [Role.CUSTOMER])
    dora, _ = await add_person(db, 623, "Dora", [Role.DISPATCHER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41, proof_required="photo+signature")
    await link(db, order, cara_member.id)
    async with running_bot(db, tmp_path, telegram={"mini_apps": True}) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await assign(db, order.id, driver.id)
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=41))
        await bot.send(tu.command(ana, "/route"))
        stop_message = bot.last(621)
        await bot.tap(ana, 621, stop_message, "Arrived")
        await bot.tap(ana, 621, stop_message, "Delivered")
        assert bot.texts(621)[-1].startswith("Send a photo of the delivered parcel")
        picture = jpeg()
        file_id, unique = bot.fake.add_file(picture, file_path="photos/file_7.jpg")
        await bot.send(tu.photo(ana, file_id, unique, file_size=len(picture)))
        assert await status(db, order.id) is S.ARRIVED  # the photo alone is not enough

        prompt = bot.last(621)
        assert (prompt.text or "").startswith("Photo saved.")
        [[button]] = prompt.params["reply_markup"]["inline_keyboard"]
        assert button["text"] == "Signature pad" and "callback_data" not in button
        url = button["web_app"]["url"]
        assert url.startswith(f"{bot.base_url}/sign/")

        # a text now does not deliver: the pad is offered again
        await bot.send(tu.message(ana, "Cara"))
        assert "waits for the recipient's signature" in bot.texts(621)[-1]
        assert await status(db, order.id) is S.ARRIVED

        launch = quote(init_data(bot.settings.telegram.bot_token.get_secret_value(), 621, "Ana"))
        async with browser_page() as page:
            await page.set_viewport_size({"width": 390, "height": 844})
            drawn = await sign_on_page(page, f"{url}#tgWebAppData={launch}", draw_with_mouse)
            assert drawn["overflow"] <= 0
            assert await status(db, order.id) is S.DELIVERED
            async with db.sessions() as session:
                kept = list(await session.exec(select(Proof).where(Proof.order_id == order.id)))
            assert sorted(p.kind for p in kept) == [ProofKind.PHOTO, ProofKind.SIGNATURE]
            [drawn_proof] = [p for p in kept if p.kind is ProofKind.SIGNATURE]
            png = (tmp_path / drawn_proof.stored_path).read_bytes()

            # the customer's tracking page shows the signature once delivered
            await page.goto(f"{bot.base_url}/t/{order.tracking_token}")
            await page.wait_for_selector("#signature-card:not([hidden])", timeout=10_000)
            assert await page.evaluate(
                "document.getElementById('signature').naturalWidth > 0"
                " || new Promise(r => document.getElementById('signature').onload = () => r(true))"
            )
        await bot.outbox_settled()
        assert f"Order #{order.id} signed for by Cy Young on the pad: delivered." in bot.texts(621)
        async with httpx.AsyncClient() as http:
            shown = await http.get(f"{bot.base_url}/t/{order.tracking_token}/signature.png")
            assert shown.status_code == 200 and shown.content == png

            # the dispatcher's order card links it, signed
            await bot.send(tu.command(dora, f"/order {order.id}"))
            card = bot.texts(623)[-1]
            found = re.search(r"Signed by Cy Young \(link valid until [^)]+\): (\S+)", card)
            assert found, card
            fetched = await http.get(found.group(1))
            assert fetched.status_code == 200 and fetched.content == png
        await bot.outbox_settled()
        delivered = [c for c in bot.fake.sent_to(622) if c.method == "sendPhoto"]
        assert len(delivered) == 1 and delivered[0].params["photo"] == file_id
