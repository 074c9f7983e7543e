"""The signature pad: Telegram Mini App initData (the test vector, altered, expired, replayed),
signed pad links (altered, expired, revoked, for another purpose), and the page itself in
headless Chromium — drawn with a mouse and with touch, kept as SVG and PNG, served back
byte-identical by signed link, submitted twice but kept once, at phone and desktop sizes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlmodel import col, select

from core.bootstrap import Services
from core.clock import FixedClock
from core.config import Settings
from core.db import Database
from core.drivers import proofs, signatures
from core.models import (
    Driver,
    InitDataUse,
    Member,
    Order,
    OrderStatus,
    OutboxMessage,
    Proof,
    ProofKind,
    Role,
    ShiftState,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft
from core.people.members import grant
from core.webviews import initdata, links, pad
from tests.conftest import FIXTURES, serve
from tests.factories import local_files
from tests.telegram_harness import jpeg
from tests.test_tracking_page import browser_page

S = OrderStatus
VECTOR = json.loads((FIXTURES / "telegram" / "webapp.init_data.testvector.json").read_text())
SIGNED_AT = datetime.fromtimestamp(int(VECTOR["data_check_string"].split("\n")[0][10:]), UTC)
NOW = SIGNED_AT + timedelta(minutes=1)
HOUR = timedelta(hours=1)
TELEGRAM_USER = 111222333


# --- initData ---


def test_the_telegram_test_vector_passes():
    assert initdata.secret(VECTOR["bot_token"]).hex() == VECTOR["secret_key_hex"]
    data = initdata.check(VECTOR["init_data"], VECTOR["bot_token"], NOW, HOUR)
    assert (data.user_id, data.first_name, data.auth_date) == (TELEGRAM_USER, "Dana", SIGNED_AT)
    assert data.hash == VECTOR["hash"]


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw.replace("111222333", "111222334"),  # another user
        lambda raw: raw.replace("auth_date=1767225600", "auth_date=1767225700"),
        lambda raw: raw.replace("hash=a0", "hash=b0"),
        lambda raw: raw.split("&hash=")[0],  # no hash
        lambda raw: raw + "&hash=" + VECTOR["hash"],  # a field twice
        lambda raw: raw + "&extra=1",  # a field added
        lambda raw: "",
        lambda raw: "%%%",
        lambda raw: raw * 20,  # too long
    ],
)
def test_altered_init_data_is_refused(change):
    with pytest.raises(initdata.BadInitData):
        initdata.check(change(VECTOR["init_data"]), VECTOR["bot_token"], NOW, HOUR)


def test_init_data_for_another_bot_is_refused():
    with pytest.raises(initdata.BadInitData):
        initdata.check(VECTOR["init_data"], "654321:OTHER-token", NOW, HOUR)


def test_old_and_future_init_data_is_refused():
    with pytest.raises(initdata.InitDataExpired):
        initdata.check(VECTOR["init_data"], VECTOR["bot_token"], SIGNED_AT + 2 * HOUR, HOUR)
    with pytest.raises(initdata.BadInitData):  # signed "in an hour": not by Telegram's clock
        initdata.check(VECTOR["init_data"], VECTOR["bot_token"], SIGNED_AT - HOUR, HOUR)


async def test_init_data_is_acted_on_once(db: Database):
    data = initdata.check(VECTOR["init_data"], VECTOR["bot_token"], NOW, HOUR)
    async with db.transaction() as session:
        await initdata.use_once(session, data, NOW)
    with pytest.raises(initdata.InitDataReplayed):
        async with db.transaction() as session:
            await initdata.use_once(session, data, NOW)
    # records past the age checked are dropped (such initData is refused by its age), others kept
    other = initdata.InitData(1, "x", NOW, "f" * 64, HOUR)
    async with db.transaction() as session:
        await initdata.use_once(session, other, NOW + HOUR)
    async with db.reads() as session:
        assert len((await session.exec(select(InitDataUse))).all()) == 2
    later = initdata.InitData(2, "y", NOW, "e" * 64, HOUR)
    async with db.transaction() as session:
        await initdata.use_once(session, later, NOW + 2 * HOUR + timedelta(minutes=1))
    async with db.reads() as session:
        kept = {row.hash for row in (await session.exec(select(InitDataUse))).all()}
    assert kept == {"f" * 64, "e" * 64}


# --- signed links ---


@dataclass
class Day:
    driver: Driver
    member_id: int
    order: Order


async def day(db: Database, proof: str = "photo+signature", photo: bool = True) -> Day:
    """Dana on shift at Cy's door with an order needing `proof` (its photo taken already)."""
    async with db.transaction() as session:
        member = Member(name="Dana Driver")
        session.add(member)
        await session.flush()
        await grant(session, member, Role.DRIVER)
        driver = (await session.exec(select(Driver))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, NOW
        driver.last_lat, driver.last_lon, driver.last_seen_at = 52.52, 13.405, NOW
        session.add(driver)
        member_id = member.id
    draft = OrderDraft(
        customer_name="Cy Young", address="Door 1", lat=52.52, lon=13.405, proof_required=proof
    )
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=driver.id))
    await orders.change_status(db, order.id, S.OUT_FOR_DELIVERY, SYSTEM)
    return Day(driver, member_id, order)


def settings_for(tmp_path: Path, **telegram: object) -> Settings:
    return Settings(app={"data_dir": tmp_path}, telegram=telegram, _env_file=None)  # type: ignore[call-arg]


async def test_pad_links_refuse_altered_expired_revoked_and_other_purposes(
    db: Database, tmp_path: Path
):
    today = await day(db)
    key = b"k" * 32
    token = await links.issue(db, key, "sign", today.member_id, NOW, HOUR, order_id=today.order.id)
    found = await links.check(db, key, token, "sign", NOW)
    assert (found.member_id, found.order_id) == (today.member_id, today.order.id)
    link_id, expires, mac = token.split(".")
    for altered in (
        f"{link_id}.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",
        f"{link_id}.{int(expires) + 3600}.{mac}",  # a longer life
        f"{int(link_id) + 1}.{expires}.{mac}",
        token + "0",
        "",
        "1.2.3",
    ):
        with pytest.raises(links.BadLink):
            await links.check(db, key, altered, "sign", NOW)
    with pytest.raises(links.BadLink):  # same link, another key: another instance's or made up
        await links.check(db, b"x" * 32, token, "sign", NOW)
    with pytest.raises(links.BadLink):  # single-purpose
        await links.check(db, key, token, "board", NOW)
    with pytest.raises(links.LinkExpired):
        await links.check(db, key, token, "sign", NOW + HOUR + timedelta(seconds=1))
    other = await links.issue(db, key, "sign", today.member_id, NOW, HOUR, order_id=today.order.id)
    assert await links.revoke(db, NOW, order_id=today.order.id) == 2
    for revoked in (token, other):
        with pytest.raises(links.LinkRevoked):
            await links.check(db, key, revoked, "sign", NOW)


# --- the page ---


@asynccontextmanager
async def site(
    db: Database, tmp_path: Path, **telegram: object
) -> AsyncIterator[tuple[str, Services]]:
    from web.app import create_app

    settings = settings_for(tmp_path, **telegram)
    clock = FixedClock(NOW)
    async with serve(create_app(settings, db, clock=clock)) as base:
        yield base, Services.build(settings, db, clock=clock)


async def pad_url(svc: Services, base: str, today: Day, telegram_user: int | None = None) -> str:
    url = await pad.link(svc, today.member_id, today.order.id, telegram_user)
    assert url.startswith(f"{svc.signer.base_url}/sign/")
    return base + url.removeprefix(svc.signer.base_url)


async def draw_with_mouse(page) -> None:
    box = await page.locator("#pad").bounding_box()
    x, y = box["x"], box["y"]
    await page.mouse.move(x + 20, y + 150)
    await page.mouse.down()
    for step in range(1, 25):
        await page.mouse.move(x + 20 + step * 10, y + 150 - (step % 6) * 15)
    await page.mouse.up()
    await page.mouse.click(x + 300, y + 60)  # a dot over an "i"


async def draw_with_touch(page) -> None:
    box = await page.locator("#pad").bounding_box()
    x, y = box["x"], box["y"]
    cdp = await page.context.new_cdp_session(page)
    points = [(x + 15 + step * 12, y + 40 + (step % 4) * 30) for step in range(20)]
    kinds = ["touchStart"] + ["touchMove"] * (len(points) - 1)
    for kind, (px, py) in zip(kinds, points, strict=True):
        point = {"x": px, "y": py, "id": 1, "radiusX": 2, "radiusY": 2, "force": 1}
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [point]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


MEASURE = """() => {
  const box = document.getElementById("pad").getBoundingClientRect();
  return {strokes: window.lastmilePad.strokes(), width: Math.round(box.width),
          height: Math.round(box.height),
          overflow: document.documentElement.scrollWidth - window.innerWidth};
}"""


async def sign_on_page(page, url: str, draw, name: str = "Cy Young") -> dict:
    await page.goto(url)
    await draw(page)
    await page.fill("#name", name)
    await page.click("#submit")
    await page.wait_for_function("document.getElementById('status').dataset.proof", timeout=10_000)
    return await page.evaluate(MEASURE)


async def check_stored(svc: Services, base: str, order_id: int, drawn: dict) -> Proof:
    """One drawn signature on the order, its files served back byte-identical by signed link,
    and equal to the strokes the page drew, rendered again here."""
    async with svc.db.reads() as session:
        statement = select(Proof).where(
            Proof.order_id == order_id, Proof.kind == ProofKind.SIGNATURE
        )
        kept = (await session.exec(statement)).all()
        order = await session.get(Order, order_id)
    assert len(kept) == 1 and order is not None and order.status is S.DELIVERED
    proof = kept[0]
    assert proof.recipient_name == "Cy Young" and (proof.lat, proof.lon) == (52.52, 13.405)
    assert proof.captured_at == NOW
    sign = signatures.drawing({"width": drawn["width"], "height": drawn["height"],
                               "strokes": drawn["strokes"]})  # fmt: skip
    async with httpx.AsyncClient() as http:
        for svg, expected, digest in (
            (False, signatures.png(sign), proof.sha256),
            (True, signatures.svg(sign), proof.signature_sha256),
        ):
            url, _ = svc.signer.proof_url(proof.id, NOW, svg=svg)
            got = await http.get(base + url.removeprefix(svc.signer.base_url))
            assert got.status_code == 200, got.text
            assert got.content == expected and hashlib.sha256(got.content).hexdigest() == digest
            bad = url.replace("signature=", "signature=0") [:len(url)]  # fmt: skip
            assert (await http.get(base + bad.removeprefix(svc.signer.base_url))).status_code == 403
        png_url, _ = svc.signer.proof_url(proof.id, NOW)
        as_svg = png_url.replace(f"/proofs/{proof.id}?", f"/proofs/{proof.id}/signature.svg?")
        assert (await http.get(base + as_svg.removeprefix(svc.signer.base_url))).status_code == 403
    return proof


async def test_a_signature_drawn_with_a_mouse_is_kept_and_served_back(db: Database, tmp_path: Path):
    today = await day(db)
    await proofs.save_photo(
        db, local_files(tmp_path), today.order.id, today.driver.id, jpeg(), max_bytes=10**7
    )
    async with site(db, tmp_path) as (base, svc), browser_page() as page:
        await page.set_viewport_size({"width": 1280, "height": 800})
        drawn = await sign_on_page(page, await pad_url(svc, base, today), draw_with_mouse)
        assert drawn["overflow"] <= 0 and len(drawn["strokes"]) == 2
        await check_stored(svc, base, today.order.id, drawn)


@asynccontextmanager
async def phone_page() -> AsyncIterator[object]:
    async with browser_page() as page:
        context = await page.context.browser.new_context(
            viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
        )
        yield await context.new_page()


async def test_a_signature_drawn_with_a_finger_in_the_mini_app_is_kept(
    db: Database, tmp_path: Path
):
    today = await day(db, proof="signature")
    async with (
        site(db, tmp_path, bot_token=VECTOR["bot_token"]) as (base, svc),
        phone_page() as page,
    ):
        url = await pad_url(svc, base, today, TELEGRAM_USER)
        mini_app = f"{url}#tgWebAppData={quote(VECTOR['init_data'], safe='')}&tgWebAppVersion=8.0"
        drawn = await sign_on_page(page, mini_app, draw_with_touch)
        assert drawn["overflow"] <= 0 and len(drawn["strokes"]) == 1
        assert len(drawn["strokes"][0]) >= 10
        await check_stored(svc, base, today.order.id, drawn)


async def test_the_mini_app_refuses_missing_foreign_and_replayed_init_data(
    db: Database, tmp_path: Path
):
    today = await day(db, proof="signature")
    drawing = {"width": 300, "height": 200, "strokes": [[[10, 10], [50, 60]]]}
    async with site(db, tmp_path, bot_token=VECTOR["bot_token"]) as (base, svc):
        url = await pad_url(svc, base, today, TELEGRAM_USER)
        other_user = await pad_url(svc, base, today, TELEGRAM_USER + 1)
        async with httpx.AsyncClient(headers={"Origin": base}) as http:

            async def post(target: str, init_data: str, key: str) -> httpx.Response:
                body = {"drawing": drawing, "name": "Cy Young", "key": key, "init_data": init_data}
                return await http.post(target, json=body)

            assert (await post(url, "", "k" * 20)).status_code == 403
            altered = VECTOR["init_data"].replace("Dana", "Dina")
            assert (await post(url, altered, "k" * 20)).status_code == 403
            assert (await post(other_user, VECTOR["init_data"], "k" * 20)).status_code == 403
            async with svc.db.reads() as session:
                assert not (await session.exec(select(Proof))).all()  # nothing kept so far
            first = await post(url, VECTOR["init_data"], "k" * 20)
            assert first.status_code == 200, first.text
            again = await post(url, VECTOR["init_data"], "k" * 20)  # the same submit, resent
            assert again.json()["proof"] == first.json()["proof"]
        today2 = await day_more(db, today)
        url2 = await pad_url(svc, base, today2, TELEGRAM_USER)
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            body = {"drawing": drawing, "name": "Cy Young", "key": "m" * 20,
                    "init_data": VECTOR["init_data"]}  # fmt: skip
            replayed = await http.post(url2, json=body)
            assert replayed.status_code == 409, replayed.text
    with pytest.raises(initdata.InitDataExpired):
        initdata.check(VECTOR["init_data"], VECTOR["bot_token"], NOW + 2 * HOUR, HOUR)


async def day_more(db: Database, today: Day) -> Day:
    """A second order for the same driver."""
    draft = OrderDraft(customer_name="Di Other", address="Door 2", lat=52.521, lon=13.406,
                       proof_required="signature")  # fmt: skip
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=today.driver.id))
    return Day(today.driver, today.member_id, order)


async def test_a_pad_submitted_twice_keeps_one_signature(db: Database, tmp_path: Path):
    today = await day(db)
    await proofs.save_photo(
        db, local_files(tmp_path), today.order.id, today.driver.id, jpeg(), max_bytes=10**7
    )
    drawing = {"width": 300, "height": 200, "strokes": [[[10, 10], [50, 60], [80, 20]]]}
    body = {"drawing": drawing, "name": "Cy Young", "key": "a1" * 10, "init_data": ""}
    async with site(db, tmp_path) as (base, svc):
        url = await pad_url(svc, base, today)
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            answers = await asyncio.gather(*(http.post(url, json=body) for _ in range(3)))
            assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
            assert len({a.json()["proof"] for a in answers}) == 1
            later = await http.post(url, json={**body, "key": "b2" * 10})  # a new one, too late
            assert later.status_code == 422
    async with db.reads() as session:
        kept = (
            await session.exec(select(Proof).where(col(Proof.signature_sha256).is_not(None)))
        ).all()
        assert len(kept) == 1 and (await session.get(Order, today.order.id)).status is S.DELIVERED
        told = select(OutboxMessage).where(OutboxMessage.template == "driver.signed")
        assert len((await session.exec(told)).all()) == 1  # the driver hears it once


@pytest.mark.parametrize(
    "body, status",
    [
        ({"drawing": {"width": 300, "height": 200, "strokes": []}}, 422),  # nothing drawn
        ({"drawing": {"width": 300, "height": 200, "strokes": [[["x", 1]]]}}, 422),
        ({"drawing": {"width": 10**9, "height": 200, "strokes": [[[1, 1]]]}}, 422),
        ({"drawing": {"width": 300, "height": 200, "strokes": [[[1, 1]]] * 301}}, 422),
        ({"drawing": {"width": 300, "height": 200, "strokes": [[[1, 1]]]}, "name": "C"}, 422),
        ({"drawing": {"width": 300, "height": 200, "strokes": [[[1, 1]]]}, "key": "short"}, 422),
        ({"drawing": "nonsense"}, 422),
    ],
)
async def test_a_bad_submit_is_explained_and_keeps_nothing(
    db: Database, tmp_path: Path, body: dict, status: int
):
    today = await day(db)
    full = {"name": "Cy Young", "key": "c3" * 10, "init_data": "", **body}
    async with site(db, tmp_path) as (base, svc):
        url = await pad_url(svc, base, today)
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            answer = await http.post(url, json=full)
            assert answer.status_code == status and answer.json()["error"]
    async with db.reads() as session:
        assert not (await session.exec(select(Proof))).all()
        assert (await session.get(Order, today.order.id)).status is S.OUT_FOR_DELIVERY


async def test_another_site_cannot_post_a_signature(db: Database, tmp_path: Path):
    today = await day(db, proof="signature")
    body = {"drawing": {"width": 300, "height": 200, "strokes": [[[1, 1], [9, 9]]]},
            "name": "Cy Young", "key": "d4" * 10, "init_data": ""}  # fmt: skip
    async with site(db, tmp_path) as (base, svc):
        url = await pad_url(svc, base, today)
        async with httpx.AsyncClient() as http:
            evil = await http.post(url, json=body, headers={"Origin": "https://evil.example"})
            assert evil.status_code == 403
            plain = {"Content-Type": "text/plain", "Origin": base}
            form = await http.post(url, content=json.dumps(body), headers=plain)
            assert form.status_code == 415
            huge = {**body, "drawing": {**body["drawing"], "pad": "x" * 1_100_000}}
            too_big = await http.post(url, json=huge, headers={"Origin": base})
            assert too_big.status_code == 413
            garbled = await http.post(url, content=b"{not json", headers={
                "Content-Type": "application/json", "Origin": base})  # fmt: skip
            assert garbled.status_code == 422 and garbled.json()["error"]
            revoked = await links.revoke(svc.db, NOW, order_id=today.order.id)
            assert revoked == 1
            assert (await http.post(url, json=body, headers={"Origin": base})).status_code == 410
            assert (await http.get(url)).status_code == 410
    async with db.reads() as session:
        assert not (await session.exec(select(Proof))).all()


async def test_the_signature_reaches_the_api_and_the_merchants_webhook(
    db: Database, tmp_path: Path
):
    from core.merchants import apikeys
    from core.models import ApiKey, WebhookDelivery

    today = await day(db)
    key, secret = await apikeys.create_key(db, "shop")
    async with db.transaction() as session:
        row = await session.get(ApiKey, key.id)
        row.webhook_url, row.webhook_all_orders = "https://shop.example/hook", True
        session.add(row)
    picture = jpeg()
    await proofs.save_photo(
        db, local_files(tmp_path), today.order.id, today.driver.id, picture, max_bytes=10**7
    )
    drawing = {"width": 300, "height": 200, "strokes": [[[10, 10], [50, 60], [80, 20]], [[5, 5]]]}
    body = {"drawing": drawing, "name": "Cy Young", "key": "e5" * 10, "init_data": ""}
    async with site(db, tmp_path) as (base, svc):
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            signed = await http.post(await pad_url(svc, base, today), json=body)
            assert signed.status_code == 200, signed.text
        auth = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=f"{base}/api/v1", headers=auth) as api:
            got = (await api.get(f"/orders/{today.order.id}/proof")).json()
        sign = signatures.drawing(drawing)
        assert got["kind"] == "photo" and got["signature"]["recipient_name"] == "Cy Young"
        assert got["signature"]["svg_sha256"] == hashlib.sha256(signatures.svg(sign)).hexdigest()
        async with httpx.AsyncClient() as http:
            for url, content in (
                (got["photo_url"], picture),
                (got["signature"]["png_url"], signatures.png(sign)),
                (got["signature"]["svg_url"], signatures.svg(sign)),
            ):
                fetched = await http.get(base + url.removeprefix(svc.signer.base_url))
                assert fetched.status_code == 200 and fetched.content == content
    async with db.reads() as session:
        sent = (await session.exec(select(WebhookDelivery))).all()
    bodies = [json.loads(d.body) for d in sent]
    [delivered] = [b for b in bodies if b["data"]["status"] == "delivered"]
    assert all("proof" not in b["data"] for b in bodies if b is not delivered)
    proof = delivered["data"]["proof"]
    assert proof["kinds"] == ["photo", "signature"] and proof["recipient_name"] == "Cy Young"
    assert proof["photo_sha256"] == hashlib.sha256(picture).hexdigest()
    assert proof["signature"]["png_sha256"] == got["signature"]["png_sha256"]
    assert (proof["signature"]["lat"], proof["signature"]["lon"]) == (52.52, 13.405)


async def test_on_a_chat_without_mini_apps_the_pad_is_a_plain_link(db: Database, tmp_path: Path):
    """The sandbox (as WhatsApp): Delivered, the photo, then the pad as a link; a text meanwhile
    offers it again and delivers nothing; signing on it delivers."""
    from core.conversations import Person, Press, Text, Upload, buttons, handle
    from core.people import identities
    from tests.test_conversations import participant, upload

    chat, _ = await participant(db, "Dana", [Role.DRIVER])
    who = await identities.identify(db, chat, Person("Dana"))
    draft = OrderDraft(customer_name="Cy Young", address="Door 1", lat=52.52, lon=13.405,
                       proof_required="photo+signature")  # fmt: skip
    order = await orders.create_order(db, draft, SYSTEM, source="test")
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=who.driver_id))
    async with site(db, tmp_path) as (base, svc):
        dana = Person("Dana")
        await handle(svc, chat, dana, Press(buttons.StopOp("deliver", order.id).pack()))
        photo: Upload = upload("photo", jpeg(), "image/jpeg")
        [offer] = await handle(svc, chat, dana, photo)
        assert offer.link is not None and not offer.link.web_app
        assert offer.text.startswith("Photo saved.") and "/sign/" in offer.link.url
        [again] = await handle(svc, chat, dana, Text("Cy Young"))  # a name alone is not enough
        assert "waits for the recipient's signature" in again.text and again.link is not None
        async with db.reads() as session:
            assert (await session.get(Order, order.id)).status is not S.DELIVERED
        url = base + offer.link.url.removeprefix(svc.signer.base_url)
        body = {"drawing": {"width": 300, "height": 200, "strokes": [[[1, 1], [90, 90]]]},
                "name": "Cy Young", "key": "f6" * 10, "init_data": ""}  # fmt: skip
        async with httpx.AsyncClient(headers={"Origin": base}) as http:
            assert (await http.post(url, json=body)).status_code == 200
        later = await handle(svc, chat, dana, Text("Cy Young"))
        assert all(reply.link is None for reply in later)  # the pad step is over
    async with db.reads() as session:
        assert (await session.get(Order, order.id)).status is S.DELIVERED


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
async def test_the_pad_fits_phone_and_desktop_screens(db: Database, tmp_path: Path, width, height):
    today = await day(db, proof="signature")
    async with site(db, tmp_path) as (base, svc), browser_page() as page:
        await page.set_viewport_size({"width": width, "height": height})
        answer = await page.goto(await pad_url(svc, base, today))
        assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
        sizes = await page.evaluate(
            """() => { const pad = document.getElementById("pad").getBoundingClientRect();
            const sign = document.getElementById("submit").getBoundingClientRect();
            return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                    pad: pad.width, signBottom: sign.bottom}; }"""
        )
        assert sizes["scroll"] <= sizes["inner"] and sizes["pad"] >= min(width - 80, 500)
        assert sizes["signBottom"] <= height  # Sign is on the first screen
        bad = await page.goto(f"{base}/sign/1.2.{'0' * 64}")
        assert bad.status == 403 and "not valid" in await page.inner_text("#message")
