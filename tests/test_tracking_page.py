"""The customer's tracking page: privacy of the JSON, expiry, QR code, and the live page in
headless Chromium (Debian's, driven by Playwright) with and without the map library."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.drivers import positions
from core.errors import NotFound
from core.models import Customer, Driver, Member, Order, OrderStatus, Role, ShiftState
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft
from core.people.members import grant
from core.tracking.live import Views
from core.tracking.public import Expired
from tests.conftest import serve
from tests.factories import local_files

S = OrderStatus
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
FAKE_LEAFLET = """
window.L = {
  map: el => { el.dataset.ready = "map"; return {fitBounds() {}}; },
  tileLayer: () => ({addTo() {}}),
  marker: p => { const m = {p, addTo() { return m; }, setLatLng(q) { m.p = q; }};
    window.markers.push(m); return m; },
};
window.markers = [];
"""


async def day(db: Database, *, moving: bool = True) -> tuple[Order, Driver, Order]:
    """Ana on shift 1 km from Cy's door, with Cy's order and another customer's."""
    async with db.transaction() as session:
        member = Member(name="Ana Lopez")
        session.add(member)
        await session.flush()
        await grant(session, member, Role.DRIVER)
        driver = (await session.exec(select(Driver))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
        driver.last_lat, driver.last_lon, driver.last_seen_at = 52.5290, 13.4050, system_clock()
        session.add(driver)
    draft = OrderDraft(customer_name="Cy Young", address="Door 1", lat=52.52, lon=13.405,
                       proof_required="none")  # fmt: skip
    mine = await orders.create_order(db, draft, SYSTEM, source="test")
    other = await orders.create_order(
        db, OrderDraft(customer_name="Zoe Secret", address="Hidden Lane 9", lat=52.53, lon=13.41),
        SYSTEM, source="test",
    )  # fmt: skip
    for order in (mine, other):
        await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=driver.id))
    if moving:
        await orders.change_status(db, mine.id, S.OUT_FOR_DELIVERY, SYSTEM)
    return mine, driver, other


@asynccontextmanager
async def site(
    db: Database,
    tmp_path: Path,
    telegram: dict | None = None,
    dispatch: dict | None = None,
    **tracking_settings,
) -> AsyncIterator[str]:
    from web.app import create_app

    settings = Settings(
        app={"data_dir": tmp_path},
        telegram=telegram or {},
        dispatch=dispatch or {},
        tracking={"map_js_url": "http://map.invalid/leaflet.js", **tracking_settings},
        _env_file=None,  # type: ignore[call-arg]
    )
    async with serve(create_app(settings, db)) as base:
        yield base


async def test_json_shows_only_this_order_and_the_driver_only_on_the_way(
    db: Database, tmp_path: Path
):
    mine, _, other = await day(db, moving=False)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        before = (await http.get(f"/t/{mine.tracking_token}.json")).json()
        assert before["status"] == "assigned" and before["driver_at"] is None
        assert before["driver"] == "Ana"  # first name only

        await orders.change_status(db, mine.id, S.OUT_FOR_DELIVERY, SYSTEM)
        moving = (await http.get(f"/t/{mine.tracking_token}.json")).json()
        assert moving["driver_at"] == [52.529, 13.405] and moving["destination"] == [52.52, 13.405]
        assert 900 < moving["distance_m"] < 1100
        text = str(moving)
        assert "Zoe" not in text and "Hidden Lane" not in text and "Lopez" not in text
        assert "Door 1" not in text and "Cy" not in text  # nor this customer's own details

        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.FAILED, SYSTEM, Change(reason="nobody home"))
        after = (await http.get(f"/t/{mine.tracking_token}.json")).json()
        assert after["driver_at"] is None and after["destination"] is None
        assert [s["step"] for s in after["steps"]] == [
            "confirmed", "on_the_way", "arrived", "failed",
        ]  # fmt: skip

        for wrong in ("x" * 24, mine.tracking_token[:-1], "../../etc/passwd", "a" * 500):
            response = await http.get(f"/t/{wrong}.json")
            assert response.status_code == 404 and "Ana" not in response.text
        assert (await http.get(f"/t/{other.tracking_token}.json")).json()["ref"] == f"#{other.id}"

        qr = await http.get(f"/t/{mine.tracking_token}/qr.png")
        assert qr.status_code == 200 and qr.content[:4] == b"\x89PNG"


async def test_the_page_expires_after_the_final_state(db: Database, tmp_path: Path):
    mine, _, _ = await day(db)
    await orders.change_status(db, mine.id, S.CANCELLED, SYSTEM)
    async with db.transaction() as session:
        order = await session.get(Order, mine.id)
        assert order is not None
        order.final_at = system_clock() - timedelta(days=8)
        session.add(order)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get(f"/t/{mine.tracking_token}")
        assert page.status_code == 410 and "has expired" in page.text
        assert (await http.get(f"/t/{mine.tracking_token}.json")).status_code == 410
        assert (await http.get(f"/t/{mine.tracking_token}/qr.png")).status_code == 410


async def test_the_page_speaks_the_customers_language(db: Database, tmp_path: Path):
    mine, _, other = await day(db)
    async with db.transaction() as session:  # Cy told the shop she reads German
        customer = await session.get(Customer, mine.customer_id)
        customer.language = "de-AT"
        session.add(customer)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get(f"/t/{mine.tracking_token}", headers={"Accept-Language": "en"})
        assert '<html lang="de">' in page.text and "Ihre Lieferung" in page.text
        assert "Unterwegs" in page.text and "Your delivery" not in page.text
        # a customer whose language is unknown gets the browser's, else the shop's (English)
        browser = {"Accept-Language": "fr-FR,de;q=0.8,en;q=0.5"}
        german = await http.get(f"/t/{other.tracking_token}", headers=browser)
        assert '<html lang="de">' in german.text and "Ihre Lieferung" in german.text
        plain = await http.get(f"/t/{other.tracking_token}", headers={"Accept-Language": "x;q=?"})
        assert '<html lang="en">' in plain.text and "Your delivery" in plain.text
        missing = await http.get("/t/" + "x" * 24, headers={"Accept-Language": "de"})
        assert missing.status_code == 404 and "Diesen Sendungslink gibt es nicht" in missing.text


async def test_the_page_offers_the_orders_updates_in_telegram(db: Database, tmp_path: Path):
    """The tracking token is also the subscribe link: a customer whose order came from a CSV
    or the API can get its updates in Telegram from the page."""
    mine, _, other = await day(db)
    async with db.transaction() as session:
        customer = await session.get(Customer, other.customer_id)
        customer.language = "de"
        session.add(customer)
    telegram = {"bot_username": "lastmile_test_bot"}
    async with site(db, tmp_path, telegram) as base, httpx.AsyncClient(base_url=base) as http:
        page = (await http.get(f"/t/{mine.tracking_token}")).text
        link = f"https://t.me/lastmile_test_bot?start={mine.tracking_token}"
        assert f'<a id="subscribe" href="{link}">Get updates in Telegram</a>' in page
        german = (await http.get(f"/t/{other.tracking_token}")).text
        assert "Neuigkeiten in Telegram bekommen" in german
        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.DELIVERED, SYSTEM)
        assert 'id="subscribe"' not in (await http.get(f"/t/{mine.tracking_token}")).text
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        page = (await http.get(f"/t/{other.tracking_token}")).text  # no bot: no link
        assert "Ihre Lieferung" in page and 'id="subscribe"' not in page


async def gone(db: Database) -> Order:
    """An order cancelled eight days ago: its page has expired."""
    draft = OrderDraft(customer_name="Ed Old", address="Door 2", lat=52.51, lon=13.4)
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.CANCELLED, SYSTEM)
    async with db.transaction() as session:
        fresh = await session.get(Order, order.id)
        assert fresh is not None
        fresh.final_at = system_clock() - timedelta(days=8)
        session.add(fresh)
    return order


async def test_views_asked_for_at_once_are_read_together_and_kept_apart(db: Database):
    mine, _, other = await day(db)
    old = await gone(db)
    views = Views(db)
    tokens = [mine.tracking_token, other.tracking_token, old.tracking_token, "x" * 24, ""] * 3
    answers = await asyncio.gather(
        *(views.get(token, keep_days=7) for token in tokens), return_exceptions=True
    )
    for token, answer in zip(tokens, answers, strict=True):
        if token == mine.tracking_token:
            assert answer.ref == f"#{mine.id}" and answer.driver_at == (52.529, 13.405)
            assert [s.step for s in answer.steps] == ["confirmed", "on_the_way"]
            assert answer is answers[0]  # one view (and one JSON) for everyone who asked
        elif token == other.tracking_token:
            assert answer.ref == f"#{other.id}" and answer.driver_at is None
            assert answer.destination is None and answer.status is S.ASSIGNED
        elif token == old.tracking_token:
            assert isinstance(answer, Expired)
        else:
            assert isinstance(answer, NotFound)
    assert b"Zoe" not in answers[0].body and b"Door" not in answers[0].body

    # a caller asking after a change gets a new read, never the view read before it
    await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
    again = await views.get(mine.tracking_token, keep_days=7)
    assert again.status is S.ARRIVED and again.driver_at is None
    await views.close()


async def test_json_asked_for_at_once_gives_each_link_its_own_order(db: Database, tmp_path: Path):
    mine, _, other = await day(db)
    old = await gone(db)
    tokens = [mine.tracking_token, other.tracking_token, old.tracking_token, "x" * 24] * 10
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        answers = await asyncio.gather(*(http.get(f"/t/{token}.json") for token in tokens))
    for token, answer in zip(tokens, answers, strict=True):
        if token == mine.tracking_token:
            assert answer.json()["ref"] == f"#{mine.id}"
            assert answer.json()["driver_at"] == [52.529, 13.405]
            assert answer.headers["content-type"] == "application/json"
        elif token == other.tracking_token:
            assert answer.json()["ref"] == f"#{other.id}" and answer.json()["driver_at"] is None
        else:
            assert answer.status_code == (410 if token == old.tracking_token else 404)


async def test_every_open_page_of_an_order_gets_each_update(db: Database, tmp_path: Path):
    mine, driver, other = await day(db)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/t/nosuchtoken/events")).status_code == 404
        pages = {name: [] for name in ("mine1", "mine2", "mine3", "other")}
        token = {"other": other.tracking_token} | dict.fromkeys(
            ("mine1", "mine2", "mine3"), mine.tracking_token
        )

        arrived = asyncio.Event()

        async def read(name: str) -> None:
            async with http.stream("GET", f"/t/{token[name]}/events") as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        pages[name].append(json.loads(line.removeprefix("data: ")))
                        arrived.set()

        async def until(condition: Callable[[], bool]) -> None:
            async with asyncio.timeout(10):  # only keeps a broken test from hanging
                while not condition():
                    arrived.clear()
                    await arrived.wait()

        readers = {name: asyncio.create_task(read(name)) for name in pages}
        mine_pages = [pages[n] for n in ("mine1", "mine2", "mine3")]
        await until(lambda: all(pages.values()))
        assert pages["other"][0]["ref"] == f"#{other.id}"

        fix = positions.Fix(52.5210, 13.4050, system_clock(), live=True)
        await positions.record(db, driver.id, fix)
        await until(lambda: all(p[-1]["driver_at"] == [52.521, 13.405] for p in mine_pages))
        assert all(p[-1]["distance_m"] == 111 for p in mine_pages)

        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.DELIVERED, SYSTEM, Change())
        await until(lambda: all(p[-1]["status"] == "delivered" for p in mine_pages))
        for name in ("mine1", "mine2", "mine3"):  # final: the stream ends by itself
            await asyncio.wait_for(readers[name], 10)
            assert pages[name][-1]["final"] and pages[name][-1]["driver_at"] is None
        assert all(p["ref"] == f"#{other.id}" for p in pages["other"])
        readers["other"].cancel()


def chromium_args() -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip


@asynccontextmanager
async def browser_page() -> AsyncIterator[object]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=chromium_args(), timeout=30_000
        )
        try:
            context = await browser.new_context(timezone_id="UTC")
            yield await context.new_page()
        finally:
            await browser.close()


async def test_the_page_updates_live_as_the_driver_moves_and_delivers(db: Database, tmp_path: Path):
    mine, driver, _ = await day(db)
    services_eta = system_clock() + timedelta(minutes=20)
    from core.models import RouteStop

    route_id = await _route(db, driver.id)
    async with db.transaction() as session:
        session.add(RouteStop(route_id=route_id, order_id=mine.id, sequence=0, eta=services_eta))
    async with site(db, tmp_path) as base, browser_page() as page:
        await page.route("http://map.invalid/**", lambda route: route.fulfill(
            body=FAKE_LEAFLET, content_type="application/javascript"))  # fmt: skip
        await page.goto(f"{base}/t/{mine.tracking_token}")
        await page.wait_for_selector("#status:has-text('On the way')", timeout=5000)
        eta_text = await page.text_content("#eta")
        assert eta_text and "–" in eta_text
        assert (await page.text_content("#driver")).startswith("Ana")
        await page.wait_for_selector("#map[data-ready='map']", timeout=5000)

        # she moves: the position reaches the open page within a second or so
        fix = positions.Fix(52.5210, 13.4050, system_clock(), live=True)
        await positions.record(db, driver.id, fix)
        await page.wait_for_selector("#distance:has-text('111 m')", timeout=3000)
        assert await page.evaluate("window.markers[0].p") == [52.521, 13.405]  # the driver

        # and delivers: status, timeline and the rating form appear without a reload
        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.DELIVERED, SYSTEM, Change())
        await page.wait_for_selector("#status:has-text('Delivered')", timeout=3000)
        assert await page.is_visible("#rating-card")
        assert not await page.is_visible("#eta-card")
        steps = await page.text_content("#steps")
        assert steps and "On the way" in steps and "Delivered" in steps


async def _route(db: Database, driver_id: int) -> int:
    from core.models import Route

    async with db.transaction() as session:
        route = Route(driver_id=driver_id, service_date=system_clock().date())
        session.add(route)
        await session.flush()
        assert route.id is not None
        return route.id


async def test_without_the_map_library_the_page_still_shows_status_and_eta(
    db: Database, tmp_path: Path
):
    mine, driver, _ = await day(db)
    from core.models import RouteStop

    route_id = await _route(db, driver.id)
    eta = system_clock() + timedelta(minutes=20)
    async with db.transaction() as session:
        session.add(RouteStop(route_id=route_id, order_id=mine.id, sequence=0, eta=eta))
    async with site(db, tmp_path) as base, browser_page() as page:
        await page.route("http://map.invalid/**", lambda route: route.abort())
        await page.goto(f"{base}/t/{mine.tracking_token}")
        await page.wait_for_selector("#status:has-text('On the way')", timeout=5000)
        assert "–" in (await page.text_content("#eta") or "")
        assert "km" in (await page.text_content("#distance") or "")
        assert not await page.is_visible("#map")


async def test_the_proof_photo_is_served_only_once_delivered(db: Database, tmp_path: Path):
    from core.drivers import proofs
    from tests.telegram_harness import jpeg

    mine, driver, _ = await day(db)
    picture = jpeg()
    await proofs.save_photo(
        db, local_files(tmp_path), mine.id, driver.id, picture, max_bytes=10_000_000
    )
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get(f"/t/{mine.tracking_token}/photo")).status_code == 404
        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.DELIVERED, SYSTEM)
        photo = await http.get(f"/t/{mine.tracking_token}/photo")
        assert photo.status_code == 200 and photo.content == picture
        assert (await http.get(f"/t/{mine.tracking_token}.json")).json()["has_photo"] is True
