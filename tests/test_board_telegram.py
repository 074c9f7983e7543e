"""Scenario (issue 15's "done when"): a dispatcher opens the live board from Telegram (`/board`,
a Mini App button) in headless Chromium, assigns a waiting order to a driver there — the
driver's chat hears of it — and the driver delivers it with `photo+signature` through the
Telegram adapter and the signature pad; the open board shows it delivered, without a reload."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlmodel import select

from core.db import Database
from core.models import Order, OrderStatus, Role
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, jpeg, running_bot
from tests.test_board import SHOTS
from tests.test_signature_pad import draw_with_mouse, sign_on_page
from tests.test_signature_pad_telegram import init_data
from tests.test_telegram_driver import BERLIN, driver_of, new_order, status
from tests.test_tracking_page import browser_page

S = OrderStatus


async def test_assigned_on_the_board_then_delivered_with_photo_and_signature(
    db: Database, tmp_path: Path
):
    ana, member = await add_person(db, 631, "Ana", [Role.DRIVER])
    dora, _ = await add_person(db, 633, "Dora", [Role.DISPATCHER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41, proof_required="photo+signature")
    settings = {"telegram": {"mini_apps": True}, "dispatch": {"mode": "manual"},
                "tracking": {"tiles_url": ""}}  # fmt: skip
    async with running_bot(db, tmp_path, **settings) as bot:  # type: ignore[arg-type]
        await bot.send(tu.command(ana, "/shift"))
        await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=41))
        await bot.send(tu.command(dora, "/board"))
        [[button]] = bot.last(633).params["reply_markup"]["inline_keyboard"]
        assert "callback_data" not in button
        url = button["web_app"]["url"]
        assert url.startswith(f"{bot.base_url}/board/")
        bot_token = bot.settings.telegram.bot_token.get_secret_value()

        async with browser_page() as page:
            await page.set_viewport_size({"width": 390, "height": 844})
            # initData of another Telegram user does not act
            stranger = quote(init_data(bot_token, 999, "Eve"))
            await page.goto(f"{url}#tgWebAppData={stranger}")
            await page.wait_for_function("window.board && window.board.updates > 0")
            await page.click(f"#waiting li[data-order='{order.id}']")
            await page.select_option("#card-pick", str(driver.id))
            await page.click("#card-assign")
            await page.wait_for_selector("#note[data-ok='no']", timeout=5000)
            assert "could not prove it came from the bot" in await page.text_content("#note")
            assert await status(db, order.id) is S.NEW

            launch = quote(init_data(bot_token, 633, "Dora"))
            await page.goto(f"{url}#tgWebAppData={launch}")
            await page.wait_for_function("window.board && window.board.updates > 0")
            await page.click(f"#waiting li[data-order='{order.id}']")
            await page.select_option("#card-pick", str(driver.id))
            await page.click("#card-assign")
            await page.wait_for_selector("#note[data-ok='yes']", timeout=10_000)
            await bot.outbox_settled()
            assert any(f"#{order.id}" in text for text in bot.texts(631)), bot.texts(631)
            async with db.reads() as session:
                row = await session.get(Order, order.id)
                assert row is not None and row.driver_id == driver.id and row.driver_locked
            # the board shows the stop on her route, live
            on_route = f"window.board.state.orders.get({order.id})?.driver === {driver.id}"
            await page.wait_for_function(on_route, timeout=5000)

            # she delivers: Arrived, Delivered, the photo in chat, the pad as a Mini App
            await bot.send(tu.command(ana, "/route"))
            stop_message = bot.last(631)
            await bot.tap(ana, 631, stop_message, "Arrived")
            await bot.tap(ana, 631, stop_message, "Delivered")
            picture = jpeg()
            file_id, unique = bot.fake.add_file(picture, file_path="photos/file_8.jpg")
            await bot.send(tu.photo(ana, file_id, unique, file_size=len(picture)))
            [[pad_button]] = bot.last(631).params["reply_markup"]["inline_keyboard"]
            pad_url = pad_button["web_app"]["url"]
            pad_page = await page.context.new_page()
            await pad_page.set_viewport_size({"width": 390, "height": 844})
            ana_launch = quote(init_data(bot_token, 631, "Ana"))
            await sign_on_page(pad_page, f"{pad_url}#tgWebAppData={ana_launch}", draw_with_mouse)
            assert await status(db, order.id) is S.DELIVERED

            # the dispatcher's board, open all along, shows it delivered
            delivered = f"window.board.state.orders.get({order.id})?.status === 'delivered'"
            await page.wait_for_function(delivered, timeout=5000)
            await page.bring_to_front()
            await page.click("#drivers li[data-driver]")
            assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            await page.screenshot(path=str(SHOTS / "board-delivered.png"))
    async with db.reads() as session:
        kept = (await session.exec(select(Order).where(Order.id == order.id))).one()
        assert kept.status is S.DELIVERED
