"""The driver's page: her stops in route order with navigation links, Arrived / Delivered /
Failed through the chat's services, the proof photo, her position from the browser, in
headless Chromium at phone and desktop sizes; another driver's stops, bad tokens, forged posts
and unreadable photos refused with a message and nothing changed."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.bootstrap import Services
from core.db import Database
from core.drivers import stops as driver_stops
from core.models import (
    Driver,
    LocationPing,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    Proof,
    Role,
    Route,
    RouteStop,
    ShiftState,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change, Window
from core.orders.service import OrderDraft
from core.people.members import grant
from core.webviews import driver, links
from tests.telegram_harness import jpeg
from tests.test_signature_pad import NOW, VECTOR, Day, day, site
from tests.test_tracking_page import CHROMIUM, HAVE_CHROMIUM, chromium_args

S = OrderStatus
HERE = {"latitude": 52.5205, "longitude": 13.4095, "accuracy": 8}
SHOTS = Path(tempfile.gettempdir()) / "lastmile-driver-page"
TELEGRAM_USER = 111222333  # the test vector's user


@asynccontextmanager
async def chromium(
    width: int, height: int, *, geolocation: dict[str, float] | None = None
) -> AsyncIterator[Any]:
    """A page in headless Chromium at this size (with a position to give, when asked)."""
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=chromium_args(), timeout=30_000
        )
        try:
            options: dict[str, Any] = {"viewport": {"width": width, "height": height}}
            if geolocation is not None:
                options |= {"geolocation": geolocation, "permissions": ["geolocation"]}
            context = await browser.new_context(timezone_id="UTC", **options)
            yield await context.new_page()
        finally:
            await browser.close()


async def page_url(svc: Services, base: str, member_id: int, telegram_user: int | None = None):
    url = await driver.link(svc, member_id, telegram_user)
    assert url.startswith(f"{svc.signer.base_url}/driver/")
    return base + url.removeprefix(svc.signer.base_url)


async def second_stop(db: Database, today: Day, proof: str = "none", name: str = "Di Other"):
    window = Window(NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    draft = OrderDraft(customer_name=name, address=f"{name} street 2", lat=52.521, lon=13.406,
                       proof_required=proof, windows=(window,))  # fmt: skip
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=today.driver.id))
    async with db.transaction() as session:
        route = Route(driver_id=today.driver.id, service_date=NOW.date())
        session.add(route)
        await session.flush()
        eta = NOW + timedelta(minutes=30)
        session.add(RouteStop(route_id=route.id, order_id=order.id, sequence=0, eta=eta))
    return order


async def other_driver(db: Database) -> tuple[int, Order]:
    """Eve, another driver, with a stop of her own."""
    async with db.transaction() as session:
        member = Member(name="Eve Driver")
        session.add(member)
        await session.flush()
        await grant(session, member, Role.DRIVER)
        statement = select(Driver).where(Driver.member_id == member.id)
        eve = (await session.exec(statement)).one()
        eve.shift_state = ShiftState.ON
        session.add(eve)
        member_id = member.id
    draft = OrderDraft(customer_name="Fay Far", address="Far 9", lat=52.6, lon=13.5)
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=eve.id))
    return member_id, order


async def state(db: Database, order_id: int) -> tuple[OrderStatus, int, int]:
    """The order's status, how many status changes it had and how many proofs it has."""
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        changes = await session.exec(
            select(OrderEvent).where(
                OrderEvent.order_id == order_id, OrderEvent.kind == "status_changed"
            )
        )
        kept = await session.exec(select(Proof).where(Proof.order_id == order_id))
        assert order is not None
        return order.status, len(changes.all()), len(kept.all())


FITS = """() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"""


async def fits(page, name: str) -> None:
    """No horizontal overflow; a screenshot kept to look at."""
    sizes = await page.evaluate(FITS)
    assert sizes["scroll"] <= sizes["inner"], (name, sizes)
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# --- in the browser ---


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
async def test_the_page_shows_her_stops_in_route_order_and_fits(
    db: Database, tmp_path: Path, width: int, height: int
):
    today = await day(db, proof="photo+signature", photo=False)
    await second_stop(db, today, proof="pin", name="Di Other Withaverylongnamethatgoesonandon")
    async with site(db, tmp_path) as (base, svc), chromium(width, height) as page:
        url = await page_url(svc, base, today.member_id)
        answer = await page.goto(url)
        assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
        route = await driver_stops.route_of(svc.db, today.driver.id)
        cards = page.locator("section.stop")
        assert await cards.count() == 2
        shown = [await cards.nth(i).get_attribute("data-order") for i in range(2)]
        assert shown == [str(stop.order_id) for stop in route]  # the chat's order
        first = cards.nth(0)
        said = await first.inner_text()
        assert "Door 1" in said and "out for delivery" in said and "For Cy" in said
        later = await cards.nth(1).inner_text()
        assert "ETA 00:31" in later and "01:01–02:01" in later and "PIN" in later
        maps = await first.locator("a.maps").get_attribute("href")
        assert maps == "https://www.google.com/maps/dir/?api=1&destination=52.52,13.405"
        assert (
            await first.locator("a.geo").get_attribute("href") == "geo:52.52,13.405?q=52.52,13.405"
        )
        assert await first.locator("input.photo").get_attribute("capture") == "environment"
        assert await first.locator("input.photo").get_attribute("accept") == "image/*"
        assert await first.locator("[data-op=sign]").count() == 1
        await fits(page, f"stops-{width}")
        await first.locator("[data-op=fail]").click()
        await page.wait_for_selector("section.stop >> nth=0 >> .reasons:not([hidden])")
        await fits(page, f"reasons-{width}")
        await cards.nth(1).locator("[data-op=deliver]").click()  # a PIN order asks for it
        await page.wait_for_selector("section.stop >> nth=1 >> .pinrow:not([hidden])")
        await fits(page, f"pin-{width}")
        bad = await page.goto(url.replace("/driver/", "/driver/9") + "0")
        assert bad.status == 403 and "not valid" in await page.inner_text("#message")
        await fits(page, f"bad-link-{width}")


async def test_failed_with_a_reason_from_the_page(db: Database, tmp_path: Path):
    today = await day(db, proof="photo")
    async with site(db, tmp_path) as (base, svc), chromium(390, 844) as page:
        await page.goto(await page_url(svc, base, today.member_id))
        card = page.locator(f"section.stop[data-order='{today.order.id}']")
        await card.locator("[data-op=fail]").click()
        await card.locator("input.other").fill("x")  # her own words, too short
        await card.locator("[data-reason=other]").click()
        await page.wait_for_selector("#message.error")
        assert "Type what happened" in await page.inner_text("#message")
        assert await state(db, today.order.id) == (S.OUT_FOR_DELIVERY, 2, 0)
        await card.locator("[data-reason=not_home]").click()
        await page.wait_for_selector("#message:has-text('marked failed')")
        assert "nobody home" in await page.inner_text("#message")
        assert await page.locator("section.stop").count() == 0  # off her list
    status, changes, _ = await state(db, today.order.id)
    assert (status, changes) == (S.FAILED, 3)
    async with db.reads() as session:
        failed = (
            await session.exec(
                select(OrderEvent).where(
                    OrderEvent.order_id == today.order.id, OrderEvent.to_status == S.FAILED
                )
            )
        ).one()
    assert failed.data["reason_code"] == "not_home" and failed.actor_member_id == today.member_id


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
async def test_a_photo_that_is_not_an_image_is_refused_on_the_page(
    db: Database, tmp_path: Path, width: int, height: int
):
    today = await day(db, proof="photo")
    junk = tmp_path / "note.jpg"
    junk.write_bytes(b"%PDF-1.4 not an image")
    (tmp_path / "door.png").write_bytes(jpeg())
    async with site(db, tmp_path) as (base, svc), chromium(width, height) as page:
        await page.goto(await page_url(svc, base, today.member_id))
        card = page.locator(f"section.stop[data-order='{today.order.id}']")
        await card.locator("[data-op=deliver]").click()  # no photo yet
        await page.wait_for_selector("#message.error:has-text('needs a photo')")
        await card.locator("input.photo").set_input_files(str(junk))
        await page.wait_for_selector("#message.error:has-text('not a photo I can read')")
        await fits(page, f"not-an-image-{width}")
        assert await state(db, today.order.id) == (S.OUT_FOR_DELIVERY, 2, 0)
        await card.locator("input.photo").set_input_files(str(tmp_path / "door.png"))
        await page.wait_for_selector("#message:has-text('Photo saved')")
        await fits(page, f"photo-saved-{width}")
        await card.locator("[data-op=deliver]").click()
        await page.wait_for_selector("#message:has-text('delivered')")
        await fits(page, f"delivered-{width}")
    assert await state(db, today.order.id) == (S.DELIVERED, 4, 1)


# --- posts, checked on the server ---


def action_headers(svc: Services, base: str, token: str, init_data: str = "") -> dict[str, str]:
    return {"Origin": base, "X-Page-Key": driver.form_key(svc, token),
            "X-Telegram-Init-Data": init_data}  # fmt: skip


def token_of(url: str) -> str:
    return url.rsplit("/driver/", 1)[1]


async def test_another_drivers_stop_is_refused(db: Database, tmp_path: Path):
    today = await day(db)
    _, theirs = await other_driver(db)
    async with site(db, tmp_path) as (base, svc):
        url = await page_url(svc, base, today.member_id)
        headers = action_headers(svc, base, token_of(url))
        async with httpx.AsyncClient(headers=headers) as http:
            for op in ("arrive", "deliver", "fail", "pickup"):
                answer = await http.post(
                    f"{url}/stops/{theirs.id}/{op}", json={"reason": "refused"}
                )
                assert answer.status_code == 422 and "not on your route" in answer.json()["error"]
            photo = await http.post(f"{url}/stops/{theirs.id}/photo", content=jpeg(),
                                    headers={"Content-Type": "image/jpeg"})  # fmt: skip
            assert photo.status_code == 422 and "not on your route" in photo.json()["error"]
            sign = await http.post(f"{url}/stops/{theirs.id}/sign", json={})
            assert sign.status_code == 422
            page = await http.get(url)
            assert "Far 9" not in page.text and "Door 1" in page.text
    assert await state(db, theirs.id) == (S.ASSIGNED, 1, 0)


async def test_bad_tokens_and_forged_posts_are_refused(db: Database, tmp_path: Path):
    today = await day(db)
    before = await state(db, today.order.id)
    async with site(db, tmp_path) as (base, svc):
        url = await page_url(svc, base, today.member_id)
        token = token_of(url)
        link_id, expires, mac = token.split(".")
        key = svc.signer.key
        old = await links.issue(db, key, "driver", today.member_id, NOW - 2 * timedelta(days=1),
                                timedelta(hours=1))  # fmt: skip
        sign = await links.issue(db, key, "sign", today.member_id, NOW, timedelta(hours=1),
                                 order_id=today.order.id)  # fmt: skip
        withdrawn = await links.issue(db, key, "driver", today.member_id, NOW, timedelta(hours=1))
        await links.revoke(db, NOW, link_id=int(withdrawn.split(".")[0]))
        cases = [
            (f"{link_id}.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}", 403, "not valid"),
            (f"{link_id}.{int(expires) + 3600}.{mac}", 403, "not valid"),
            ("nonsense", 403, "not valid"),
            (sign, 403, "not valid"),  # a pad's link is for the pad only
            (old, 410, "expired"),
            (withdrawn, 410, "withdrawn"),
        ]
        async with httpx.AsyncClient() as http:
            for bad, code, words in cases:
                page = await http.get(f"{base}/driver/{bad}")
                assert page.status_code == code and words in page.text, bad
                listed = await http.get(f"{base}/driver/{bad}/stops")
                assert listed.status_code == code and words in listed.json()["error"]
                headers = action_headers(svc, base, bad)
                posted = await http.post(f"{base}/driver/{bad}/stops/{today.order.id}/arrive",
                                         json={}, headers=headers)  # fmt: skip
                assert posted.status_code == code and words in posted.json()["error"]
            good = action_headers(svc, base, token)
            target = f"{url}/stops/{today.order.id}/arrive"
            forged = [
                {**good, "Origin": "https://evil.example"},
                {**good, "X-Page-Key": driver.form_key(svc, withdrawn)},  # another link's key
                {k: v for k, v in good.items() if k != "X-Page-Key"},
            ]
            for headers in forged:
                answer = await http.post(target, json={}, headers=headers)
                assert answer.status_code == 403 and answer.json()["error"]
            plain = await http.post(
                target, content=b"{}", headers={**good, "Content-Type": "text/plain"}
            )
            assert plain.status_code == 422 and plain.json()["error"]
            garbled = await http.post(target, content=b"{not json", headers={
                **good, "Content-Type": "application/json"})  # fmt: skip
            assert garbled.status_code == 422
            unknown = await http.post(f"{url}/stops/{today.order.id}/undo", json={}, headers=good)
            assert unknown.status_code == 404
    assert await state(db, today.order.id) == before


async def test_a_mini_app_page_needs_initdata_of_its_own_user(db: Database, tmp_path: Path):
    today = await day(db)
    async with site(db, tmp_path, bot_token=VECTOR["bot_token"]) as (base, svc):
        url = await page_url(svc, base, today.member_id, TELEGRAM_USER)
        other = await page_url(svc, base, today.member_id, TELEGRAM_USER + 1)
        async with httpx.AsyncClient() as http:
            target = f"{url}/stops/{today.order.id}/arrive"
            for init_data in ("", VECTOR["init_data"].replace("Dana", "Dina")):
                headers = action_headers(svc, base, token_of(url), init_data)
                assert (await http.post(target, json={}, headers=headers)).status_code == 403
            headers = action_headers(svc, base, token_of(other), VECTOR["init_data"])
            foreign = await http.post(f"{other}/stops/{today.order.id}/arrive", json={},
                                      headers=headers)  # fmt: skip
            assert foreign.status_code == 403
            assert (await state(db, today.order.id))[0] is S.OUT_FOR_DELIVERY
            headers = action_headers(svc, base, token_of(url), VECTOR["init_data"])
            first = await http.post(target, json={}, headers=headers)
            assert first.status_code == 200 and first.json()["message"].startswith("Arrived")
            again = await http.post(target, json={}, headers=headers)  # a double tap
            assert again.status_code == 200 and "at the door already" in again.json()["message"]
    assert await state(db, today.order.id) == (S.ARRIVED, 3, 0)


async def test_bad_photos_and_positions_change_nothing(db: Database, tmp_path: Path):
    today = await day(db, proof="photo")
    async with site(db, tmp_path, max_photo_mb=0.01) as (base, svc):
        url = await page_url(svc, base, today.member_id)
        headers = action_headers(svc, base, token_of(url))
        async with httpx.AsyncClient(headers=headers) as http:
            target = f"{url}/stops/{today.order.id}/photo"
            for content, kind, code, words in (
                (b"%PDF-1.4 not an image", "image/jpeg", 422, "not a photo"),
                (b"GIF89a" + b"\0" * 30, "image/gif", 422, "not a photo"),
                (jpeg(), "text/plain", 422, "not a photo"),
                (b"\xff\xd8" + b"x" * 20_000, "image/jpeg", 413, "too large"),
            ):
                answer = await http.post(target, content=content, headers={"Content-Type": kind})
                assert answer.status_code == code and words in answer.json()["error"], answer.text
            for fix in ({"lat": 91, "lon": 13}, {"lat": "52", "lon": 13}, {"lat": 52},
                        b'{"lat": NaN, "lon": 1}', {"lat": True, "lon": 1}):  # fmt: skip
                raw = fix if isinstance(fix, bytes) else json.dumps(fix).encode()
                answer = await http.post(f"{url}/position", content=raw, headers={
                    "Content-Type": "application/json"})  # fmt: skip
                assert answer.status_code == 422 and "not kept" in answer.json()["error"]
    assert await state(db, today.order.id) == (S.OUT_FOR_DELIVERY, 2, 0)
    async with db.reads() as session:
        assert not (await session.exec(select(LocationPing))).all()
        driver_row = await session.get(Driver, today.driver.id)
        assert (driver_row.last_lat, driver_row.last_lon) == (52.52, 13.405)


async def test_delivered_sent_three_times_at_once_delivers_once(db: Database, tmp_path: Path):
    import asyncio

    today = await day(db, proof="none")
    async with site(db, tmp_path) as (base, svc):
        url = await page_url(svc, base, today.member_id)
        async with httpx.AsyncClient(headers=action_headers(svc, base, token_of(url))) as http:
            target = f"{url}/stops/{today.order.id}/deliver"
            sent = await asyncio.gather(*(http.post(target, json={}) for _ in range(3)))
    assert {a.status_code for a in sent} == {200}, [a.text for a in sent]
    assert sum("already" in a.json()["message"] for a in sent) == 2, [a.text[:300] for a in sent]
    assert (await state(db, today.order.id))[:2] == (S.DELIVERED, 4)  # one way there, once


async def test_photo_then_signature_on_the_pad_from_the_page(db: Database, tmp_path: Path):
    from tests.test_signature_pad import draw_with_mouse

    today = await day(db, proof="photo+signature")
    picture = tmp_path / "door.png"
    picture.write_bytes(jpeg())
    async with site(db, tmp_path) as (base, svc), chromium(390, 844) as page:
        await page.goto(await page_url(svc, base, today.member_id))
        card = page.locator(f"section.stop[data-order='{today.order.id}']")
        await card.locator("[data-op=sign]").click()  # the photo comes first
        await page.wait_for_selector("#message.error:has-text('needs a photo')")
        assert "/driver/" in page.url
        await card.locator("input.photo").set_input_files(str(picture))
        await page.wait_for_selector("#message:has-text('Photo saved')")
        await card.locator("[data-op=deliver]").click()  # the signature still missing
        await page.wait_for_selector("#message.error:has-text('signature first')")
        assert await state(db, today.order.id) == (S.OUT_FOR_DELIVERY, 2, 1)
        await card.locator("[data-op=sign]").click()
        await page.wait_for_url("**/sign/**")
        await draw_with_mouse(page)
        await page.fill("#name", "Cy Young")
        await page.click("#submit")
        await page.wait_for_function("document.getElementById('status').dataset.proof")
        await page.go_back()
        await page.wait_for_selector("#stops .empty")  # delivered: off her list
    status, _, kept = await state(db, today.order.id)
    assert (status, kept) == (S.DELIVERED, 2)


async def test_a_pin_order_is_delivered_with_the_right_pin_only(db: Database, tmp_path: Path):
    today = await day(db, proof="pin")
    async with db.reads() as session:
        pin = (await session.get(Order, today.order.id)).delivery_pin
    assert pin
    async with site(db, tmp_path) as (base, svc):
        url = await page_url(svc, base, today.member_id)
        async with httpx.AsyncClient(headers=action_headers(svc, base, token_of(url))) as http:
            target = f"{url}/stops/{today.order.id}/deliver"
            for wrong in ("", "0000000", pin + "1"):
                answer = await http.post(target, json={"pin": wrong})
                assert answer.status_code == 422 and "PIN is not right" in answer.json()["error"]
            assert await state(db, today.order.id) == (S.OUT_FOR_DELIVERY, 2, 0)
            right = await http.post(target, json={"pin": pin})
            assert right.status_code == 200 and "delivered" in right.json()["message"]
    assert await state(db, today.order.id) == (S.DELIVERED, 4, 1)
