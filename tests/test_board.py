"""The dispatcher's live board in headless Chromium: drivers move on it after pings without a
reload, stops are coloured by status, waiting and at-risk orders are listed; cancel from the
board; refused links (a driver's, expired, altered, revoked, another purpose); bad actions
change nothing; without tiles the positions still show; phone and desktop sizes."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.bootstrap import Services
from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.drivers import positions
from core.models import Driver, Member, Order, OrderStatus, Role, Route, RouteStop, ShiftState
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change, Window
from core.orders.service import OrderDraft
from core.people.members import grant
from core.webviews import board, links
from tests.conftest import serve
from tests.test_tracking_page import browser_page

S = OrderStatus
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
SHOTS = Path(tempfile.gettempdir()) / "lastmile-board"  # screenshots, to look at
SIZES = ({"width": 390, "height": 844}, {"width": 1280, "height": 800})


@dataclass
class Yard:
    dispatcher: int  # member ids
    driver_member: int
    driver: int  # driver id
    other_driver: int
    on_route: Order  # Ana's, out for delivery
    late: Order  # Ana's, predicted after its window
    waiting: Order


async def person(db: Database, name: str, role: Role, at: tuple[float, float] | None = None) -> int:
    async with db.transaction() as session:
        member = Member(name=name)
        session.add(member)
        await session.flush()
        await grant(session, member, role)
        if at is not None:
            driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
            driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
            driver.last_lat, driver.last_lon, driver.last_seen_at = *at, system_clock()
            session.add(driver)
        assert member.id is not None
        return member.id


async def driver_id(db: Database, member_id: int) -> int:
    async with db.reads() as session:
        found = (await session.exec(select(Driver.id).where(Driver.member_id == member_id))).one()
        assert found is not None
        return found


async def yard(db: Database) -> Yard:
    """Dora dispatches; Ana drives two stops (one late), Ben has none; one order waits."""
    dora = await person(db, "Dora Dispatch", Role.DISPATCHER)
    ana_member = await person(db, "Ana Lopez", Role.DRIVER, (52.5290, 13.4050))
    ben_member = await person(db, "Ben Brook", Role.DRIVER, (52.5000, 13.3800))
    ana, ben = await driver_id(db, ana_member), await driver_id(db, ben_member)
    now = system_clock()

    async def order(name: str, lat: float, lon: float, **fields: object) -> Order:
        draft = OrderDraft(customer_name=name, address=f"{name} street 1", lat=lat, lon=lon,
                           proof_required="none", **fields)  # type: ignore[arg-type]  # fmt: skip
        return await orders.create_order(db, draft, SYSTEM, source="test")

    on_route = await order("Cy Young", 52.5200, 13.4050)
    window = Window(now - timedelta(hours=1), now + timedelta(minutes=10))
    late = await order("Lu Late", 52.5150, 13.4200, windows=(window,))
    waiting = await order("Wanda Wait", 52.5100, 13.3900)
    for mine in (on_route, late):
        await orders.change_status(db, mine.id, S.ASSIGNED, SYSTEM, Change(driver_id=ana))
    await orders.change_status(db, on_route.id, S.OUT_FOR_DELIVERY, SYSTEM)
    async with db.transaction() as session:
        route = Route(driver_id=ana, service_date=now.date())
        session.add(route)
        await session.flush()
        assert route.id is not None
        for sequence, (mine, minutes) in enumerate(((on_route, 10), (late, 40))):
            eta = now + timedelta(minutes=minutes)
            session.add(RouteStop(route_id=route.id, order_id=mine.id, sequence=sequence, eta=eta))
    return Yard(dora, ana_member, ana, ben, on_route, late, waiting)


def settings_for(tmp_path: Path, **tracking: object) -> Settings:
    return Settings(
        app={"data_dir": tmp_path},
        tracking=tracking,
        dispatch={"mode": "manual"},
        _env_file=None,  # type: ignore[call-arg]
    )


@asynccontextmanager
async def site(
    db: Database, tmp_path: Path, **tracking: object
) -> AsyncIterator[tuple[str, Services]]:
    from web.app import create_app

    settings = settings_for(tmp_path, **tracking)
    async with serve(create_app(settings, db)) as base:
        yield base, Services.build(settings, db)


async def board_url(svc: Services, base: str, member_id: int) -> str:
    url = await board.link(svc, member_id, None)
    assert url.startswith(f"{svc.signer.base_url}/board/")
    return base + url.removeprefix(svc.signer.base_url)


async def open_board(page, url: str) -> None:
    await page.goto(url)
    await page.wait_for_function("window.board && window.board.updates > 0", timeout=10_000)


async def status(db: Database, order_id: int) -> OrderStatus:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.status


async def test_the_board_shows_drivers_routes_and_lists_and_a_driver_moving(
    db: Database, tmp_path: Path
):
    today = await yard(db)
    async with site(db, tmp_path, tiles_url="") as (base, svc), browser_page() as page:
        await page.set_viewport_size(SIZES[1])
        await open_board(page, await board_url(svc, base, today.dispatcher))
        assert await page.get_attribute("#map", "data-ready") == "map"  # self-served Leaflet
        assert await page.evaluate(f"window.board.markerAt({today.driver})") == [52.529, 13.405]
        assert await page.evaluate(f"window.board.markerAt({today.other_driver})") == [52.5, 13.38]
        stops = await page.evaluate(
            f"window.board.state.drivers.get({today.driver}).stops.map(s => [s.ref, s.status])"
        )
        assert [status for _, status in stops] == ["out_for_delivery", "assigned"]
        waiting = await page.text_content("#waiting")
        assert waiting == f"#{today.waiting.id} new{today.waiting.address}"
        risk = await page.text_content("#risk")
        assert f"#{today.late.id}" in risk and "late by 31 min" in risk and "Ana" in risk
        assert f"#{today.on_route.id}" not in risk

        # she moves, with a heading: the marker follows without a reload
        loaded = await page.evaluate("performance.timeOrigin")
        fix = positions.Fix(52.5250, 13.4100, system_clock(), live=True, heading=90)
        await positions.record(db, today.driver, fix)
        await page.wait_for_function(
            f"String(window.board.markerAt({today.driver})) === '52.525,13.41'", timeout=5000
        )
        assert await page.evaluate(f"window.board.state.drivers.get({today.driver}).heading") == 90
        assert await page.evaluate("performance.timeOrigin") == loaded  # no reload
        assert await page.evaluate(OVERFLOW) <= 0
        await page.screenshot(path=str(SHOTS / "board-1280.png"))


async def test_cancel_from_the_board(db: Database, tmp_path: Path):
    today = await yard(db)
    async with site(db, tmp_path, tiles_url="") as (base, svc), browser_page() as page:
        await page.set_viewport_size(SIZES[0])
        await open_board(page, await board_url(svc, base, today.dispatcher))
        await page.click(f"#waiting li[data-order='{today.waiting.id}']")
        await page.click("#card-cancel")
        assert await status(db, today.waiting.id) is S.NEW  # one tap is not enough
        await page.click("#card-sure")
        await page.wait_for_selector("#note[data-ok='yes']", timeout=5000)
        assert f"#{today.waiting.id} is cancelled" in await page.text_content("#note")
        assert await status(db, today.waiting.id) is S.CANCELLED
        # the board shows it gone from the waiting list, live
        await page.wait_for_function(
            f"!document.querySelector(\"#waiting li[data-order='{today.waiting.id}']\")",
            timeout=5000,
        )
        # an order on a driver's route, from the at-risk list
        await page.click(f"#risk li[data-order='{today.late.id}']")
        await page.click("#card-cancel")
        await page.click("#card-sure")
        await page.wait_for_selector("#note[data-ok='yes']", timeout=5000)
        assert await status(db, today.late.id) is S.CANCELLED
        ahead = f"window.board.state.drivers.get({today.driver}).stops.filter(s => !s.done)"
        await page.wait_for_function(f"{ahead}.length === 1", timeout=5000)  # off her line
        assert await page.evaluate(f"{ahead}[0].order") == today.on_route.id
        # cancelling it again is refused with the reason, and changes nothing
        token = page.url.rsplit("/", 1)[1]
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            again = await http.post(
                f"{base}/board/{token}/cancel", json={"order": today.late.id},
                headers={"X-Board-Key": board.csrf(svc.signer.key, token)},
            )  # fmt: skip
        assert again.status_code == 422 and again.json()["error"]
        assert await status(db, today.late.id) is S.CANCELLED


async def test_assign_from_the_board_is_a_manual_assignment(db: Database, tmp_path: Path):
    today = await yard(db)
    async with site(db, tmp_path, tiles_url="") as (base, svc), browser_page() as page:
        await page.set_viewport_size(SIZES[1])
        await open_board(page, await board_url(svc, base, today.dispatcher))
        await page.click(f"#waiting li[data-order='{today.waiting.id}']")
        await page.click("#card-assign")  # no driver picked yet
        assert await page.text_content("#note") == "Pick a driver first."
        await page.select_option("#card-pick", str(today.other_driver))
        await page.click("#card-assign")
        await page.wait_for_selector("#note[data-ok='yes']", timeout=5000)
        assert await page.text_content("#note") == f"Order #{today.waiting.id} → Ben Brook."
    async with db.reads() as session:
        order = await session.get(Order, today.waiting.id)
        assert order is not None
        assert (order.status, order.driver_id, order.driver_locked) == (
            S.ASSIGNED, today.other_driver, True)  # fmt: skip


async def test_refused_links_get_a_clear_page_and_act_on_nothing(db: Database, tmp_path: Path):
    today = await yard(db)
    async with site(db, tmp_path) as (base, svc):
        now = svc.clock()
        good = await board_url(svc, base, today.dispatcher)
        token = good.rsplit("/", 1)[1]
        link_id, expires, mac = token.split(".")
        driver_token = await links.issue(
            db, svc.signer.key, board.PURPOSE, today.driver_member, now, timedelta(hours=1)
        )
        expired = await links.issue(
            db, svc.signer.key, board.PURPOSE, today.dispatcher, now - timedelta(hours=2),
            timedelta(hours=1),
        )  # fmt: skip
        pad_token = await links.issue(
            db, svc.signer.key, "sign", today.driver_member, now, timedelta(hours=1),
            order_id=today.on_route.id,
        )  # fmt: skip
        revoked = await links.issue(
            db, svc.signer.key, board.PURPOSE, today.dispatcher, now, timedelta(hours=1)
        )
        await links.revoke(db, now, link_id=int(revoked.split(".")[0]))
        refused = {
            driver_token: (403, "for dispatchers and owners"),
            expired: (410, "expired"),
            revoked: (410, "withdrawn"),
            pad_token: (403, "not valid"),
            f"{link_id}.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}": (403, "not valid"),
            f"{link_id}.{int(expires) + 3600}.{mac}": (403, "not valid"),
            "made-up": (403, "not valid"),
        }
        key = board.csrf(svc.signer.key, token)
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            for bad, (code, words) in refused.items():
                page = await http.get(f"{base}/board/{bad}")
                assert page.status_code == code and words in page.text, (bad, page.text)
                events = await http.get(f"{base}/board/{bad}/events")
                assert events.status_code == code
                act = await http.post(
                    f"{base}/board/{bad}/cancel",
                    json={"order": today.waiting.id},
                    headers={"X-Board-Key": board.csrf(svc.signer.key, bad)},
                )
                assert act.status_code == code and words in act.json()["error"]

            async def cancel(body: object, **headers: str) -> httpx.Response:
                sent = {"X-Board-Key": key, **headers}
                return await http.post(f"{base}/board/{token}/cancel", json=body, headers=sent)

            assert (
                await cancel({"order": today.waiting.id}, **{"X-Board-Key": ""})
            ).status_code == 403
            assert (
                await cancel({"order": today.waiting.id}, Origin="https://evil.example")
            ).status_code == 403
            for body in ({"order": "x"}, {"order": 10**12}, {"order": True}, [1], {"order": -1}):
                answer = await cancel(body)
                assert answer.status_code in (404, 422) and answer.json()["error"], body
            plain = await http.post(
                f"{base}/board/{token}/cancel", content=b'{"order": 1}',
                headers={"Content-Type": "text/plain", "X-Board-Key": key},
            )  # fmt: skip
            assert plain.status_code == 415
            assign = await http.post(
                f"{base}/board/{token}/assign",
                json={"order": today.waiting.id, "driver": 999999},
                headers={"X-Board-Key": key},
            )
            assert assign.status_code == 422 and assign.json()["error"] == "Pick a driver first."
            # a dispatcher's own link works, for the same requests done right
            assert (await http.get(good)).status_code == 200
    assert await status(db, today.waiting.id) is S.NEW  # nothing above changed it


async def test_without_tiles_or_with_unreachable_tiles_positions_still_show(
    db: Database, tmp_path: Path
):
    today = await yard(db)
    for tiles in ("", "http://tiles.invalid/{z}/{x}/{y}.png"):
        async with site(db, tmp_path, tiles_url=tiles) as (base, svc), browser_page() as page:
            await page.route("http://tiles.invalid/**", lambda route: route.abort())
            await page.set_viewport_size(SIZES[1])
            await open_board(page, await board_url(svc, base, today.dispatcher))
            await page.wait_for_selector("#nomap", state="visible", timeout=5000)
            assert await page.evaluate(f"window.board.markerAt({today.driver})") == [52.529, 13.405]
            shown = await page.locator(".drv").count()
            assert shown == 2  # both drivers drawn on the plain background
            await page.screenshot(path=str(SHOTS / f"board-no-tiles-{bool(tiles)}.png"))


async def test_without_the_map_library_positions_show_on_a_plain_canvas(
    db: Database, tmp_path: Path
):
    today = await yard(db)
    no_leaflet = "http://map.invalid/leaflet.js"
    async with (
        site(db, tmp_path, map_js_url=no_leaflet) as (base, svc),
        browser_page() as page,
    ):
        await page.route("http://map.invalid/**", lambda route: route.abort())
        await page.set_viewport_size(SIZES[0])
        await open_board(page, await board_url(svc, base, today.dispatcher))
        assert await page.get_attribute("#map", "data-ready") == "plain"
        assert await page.evaluate(f"window.board.markerAt({today.driver})") == [52.529, 13.405]
        painted = await page.evaluate(
            "(() => { const c = document.querySelector('#map canvas.plain');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()"
        )
        assert painted > 50
        await page.screenshot(path=str(SHOTS / "board-plain.png"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s['width']}x{s['height']}")
async def test_every_view_fits_without_horizontal_overflow(db: Database, tmp_path: Path, size):
    today = await yard(db)
    async with site(db, tmp_path, tiles_url="") as (base, svc), browser_page() as page:
        await page.set_viewport_size(size)
        url = await board_url(svc, base, today.dispatcher)
        await open_board(page, url)
        assert await page.evaluate(OVERFLOW) <= 0
        await page.click(f"#risk li[data-order='{today.late.id}']")  # the order's card open
        await page.wait_for_selector("#card", state="visible")
        assert await page.evaluate(OVERFLOW) <= 0
        shot = SHOTS / f"board-{size['width']}x{size['height']}.png"
        await page.screenshot(path=str(shot), full_page=True)
        await page.goto(f"{base}/board/made-up")  # the refusal page too
        assert await page.evaluate(OVERFLOW) <= 0
        await page.screenshot(path=str(SHOTS / f"board-refused-{size['width']}.png"))


async def test_an_open_board_stops_when_its_link_is_revoked_or_the_role_taken_away(
    db: Database, tmp_path: Path
):
    from core.models import MemberRole

    today = await yard(db)
    async with site(db, tmp_path) as (base, svc), httpx.AsyncClient(timeout=10) as http:
        url = await board_url(svc, base, today.dispatcher)
        async with http.stream("GET", f"{url}/events") as stream:
            lines = stream.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass  # the whole board first
            await links.revoke(db, svc.clock(), link_id=int(url.rsplit("/", 1)[1].split(".")[0]))
            fix = positions.Fix(52.5250, 13.4100, system_clock(), live=True)
            await positions.record(db, today.driver, fix)  # a change wakes the stream: it ends
            rest = [line async for line in lines]
            assert not any(line.startswith("data: ") for line in rest)
        assert (await http.get(url)).status_code == 410

        url = await board_url(svc, base, today.dispatcher)
        assert (await http.get(url)).status_code == 200
        async with db.transaction() as session:
            role = await session.get(MemberRole, (today.dispatcher, Role.DISPATCHER))
            await session.delete(role)
        gone = await http.get(url)
        assert gone.status_code == 403 and "for dispatchers and owners" in gone.text


async def test_board_in_a_chat_without_mini_apps_is_a_plain_link_and_only_for_staff(
    db: Database, tmp_path: Path
):
    """The sandbox (as WhatsApp): /board answers with a signed link that opens the board; a
    driver asking for it is refused and gets no link."""
    from core.conversations import Command, Person, handle
    from tests.test_conversations import participant

    boss_chat, _ = await participant(db, "Dora", [Role.DISPATCHER])
    driver_chat, _ = await participant(db, "Ana", [Role.DRIVER])
    async with site(db, tmp_path) as (base, svc), httpx.AsyncClient() as http:
        [offer] = await handle(svc, boss_chat, Person("Dora"), Command("board", ""))
        assert offer.link is not None and not offer.link.web_app
        assert offer.link.url.startswith(f"{svc.signer.base_url}/board/")
        page = await http.get(base + offer.link.url.removeprefix(svc.signer.base_url))
        assert page.status_code == 200 and "Live board" in page.text
        [refusal] = await handle(svc, driver_chat, Person("Ana"), Command("board", ""))
        assert refusal.link is None and "/board is for" in refusal.text


async def test_leaflet_is_served_by_the_service_for_the_tracking_page_too(
    db: Database, tmp_path: Path
):
    today = await yard(db)
    async with site(db, tmp_path) as (base, svc), httpx.AsyncClient(base_url=base) as http:
        assert svc.settings.tracking.map_js_url == "/static/leaflet/leaflet.js"
        script = await http.get("/static/leaflet/leaflet.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.text.startswith("/* @preserve\n * Leaflet 1.9.4")
        for path in ("leaflet.css", "images/marker-icon.png", "LICENSE"):
            assert (await http.get(f"/static/leaflet/{path}")).status_code == 200, path
        assert (await http.get("/static/leaflet/../../app.py")).status_code == 404
        tracking = await http.get(f"/t/{today.on_route.tracking_token}")
        assert '"/static/leaflet/leaflet.js"' in tracking.text
        assert '"/static/leaflet/leaflet.css"' in tracking.text
        assert "unpkg" not in tracking.text
    async with site(db, tmp_path, tiles_url="") as (base, svc), browser_page() as page:
        await page.goto(f"{base}/t/{today.on_route.tracking_token}")  # the same script runs it
        await page.wait_for_selector("#map .leaflet-marker-icon", timeout=10_000)
        assert await page.evaluate("window.L.version") == "1.9.4"
        assert await page.locator("#map .leaflet-marker-icon").count() == 2  # driver, door
