"""The customer's tracking page: privacy of the JSON, expiry, QR code, and the live page in
headless Chromium (Debian's, driven by Playwright) with and without the map library."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.config import Settings
from core.db import Database
from core.lifecycle import SYSTEM, Change
from core.models import Driver, Member, Order, OrderStatus, Role, ShiftState, utcnow
from core.services import orders, tracking
from core.services.members import grant
from core.services.orders import OrderDraft
from tests.conftest import serve

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
        driver.shift_state, driver.shift_started_at = ShiftState.ON, utcnow()
        driver.last_lat, driver.last_lon, driver.last_seen_at = 52.5290, 13.4050, utcnow()
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
async def site(db: Database, tmp_path: Path, **tracking_settings) -> AsyncIterator[str]:
    from web.app import create_app

    settings = Settings(
        app={"data_dir": tmp_path},
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
        order.final_at = utcnow() - timedelta(days=8)
        session.add(order)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get(f"/t/{mine.tracking_token}")
        assert page.status_code == 410 and "has expired" in page.text
        assert (await http.get(f"/t/{mine.tracking_token}.json")).status_code == 410
        assert (await http.get(f"/t/{mine.tracking_token}/qr.png")).status_code == 410


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
    services_eta = utcnow() + timedelta(minutes=20)
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
        fix = tracking.Fix(52.5210, 13.4050, utcnow(), live=True)
        await tracking.record(db, driver.id, fix)
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
        route = Route(driver_id=driver_id, service_date=utcnow().date())
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
    eta = utcnow() + timedelta(minutes=20)
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
    from core.services import proofs
    from tests.telegram_harness import jpeg

    mine, driver, _ = await day(db)
    picture = jpeg()
    await proofs.save_photo(db, tmp_path, mine.id, driver.id, picture, max_bytes=10_000_000)
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get(f"/t/{mine.tracking_token}/photo")).status_code == 404
        await orders.change_status(db, mine.id, S.ARRIVED, SYSTEM)
        await orders.change_status(db, mine.id, S.DELIVERED, SYSTEM)
        photo = await http.get(f"/t/{mine.tracking_token}/photo")
        assert photo.status_code == 200 and photo.content == picture
        assert (await http.get(f"/t/{mine.tracking_token}.json")).json()["has_photo"] is True
