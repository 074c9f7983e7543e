"""The sandbox channel and its page: a customer's messages and buttons in headless Chromium, a
press in the page reaching the core, the loopback/token guard, and the inputs a person can get
wrong on the page (each refused with a message, changing nothing)."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from core.config import Settings
from core.db import Database
from core.models import Customer, Order, OrderStatus, Role
from tests.conftest import free_port, serve
from tests.factories import add_driver, add_member, link_customer, move, new_order
from tests.test_tracking_page import browser_page
from web.app import create_app

S = OrderStatus
TOKEN = "sandbox-token-0123456789abcdef"


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        app={"data_dir": tmp_path, "secret_key": "k" * 32},
        dispatch={"mode": "manual"},
        sandbox=True,
        _env_file=None,
        **extra,
    )  # type: ignore[call-arg]


@asynccontextmanager
async def sandbox_site(
    db: Database, tmp_path: Path, host: str = "127.0.0.1", **extra: Any
) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(settings_for(tmp_path, **extra), db)
    port = free_port()
    if host == "127.0.0.1":
        async with serve(app, port) as base:
            yield base, app
        return
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # at most 10 s
            if server.started:
                break
            await asyncio.sleep(0.05)
        yield f"http://{host}:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def delivered_to_customer(db: Database, app: Any) -> tuple[Order, str]:
    """Carla, a sandbox participant, follows an order that is then delivered."""
    order = await new_order(db, ref="S-1")
    member = await add_member(db, "Carla Test", [Role.CUSTOMER])
    async with db.reads() as session:
        customer = await session.get(Customer, order.customer_id)
    assert customer is not None and member.id is not None
    await link_customer(db, customer.id, member)  # type: ignore[arg-type]
    await app.state.sandbox.join("carla", member.id, "Carla Test", "customer")
    driver = await add_driver(db, "Ana Driver", 7001)
    for status in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED):
        await move(db, order.id, status, driver.id)  # type: ignore[arg-type]
    return order, "carla"


async def rating_of(db: Database, order_id: int) -> int | None:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.rating


async def test_the_page_shows_a_customers_messages_and_a_press_reaches_the_core(
    db: Database, tmp_path: Path
):
    async with sandbox_site(db, tmp_path) as (base, app), browser_page() as page:
        order, key = await delivered_to_customer(db, app)
        await page.goto(f"{base}/sandbox")
        column = f".chat[data-key='{key}']"
        await page.wait_for_selector(column)
        # the "delivered" notice arrives through the outbox and the live stream
        star = page.locator(f"{column} button.press", has_text="5★")
        await star.wait_for(timeout=10_000)
        texts = await page.locator(f"{column} .msg .text").all_text_contents()
        assert any("S-1" in text for text in texts), texts
        assert await page.locator(f"{column} button.press").count() == 5  # 1★ … 5★
        await star.click()
        for _ in range(100):
            if await rating_of(db, order.id) is not None:  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.05)
        assert await rating_of(db, order.id) == 5  # type: ignore[arg-type]
        await page.wait_for_selector(f"{column} .msg.mine:has-text('5★')", timeout=5000)
        # a reply from the core shows under it
        count = await page.locator(f"{column} .msg").count()
        assert count >= 3


def own_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("token", [None, TOKEN])
async def test_the_page_refuses_clients_from_outside_loopback(
    db: Database, tmp_path: Path, token: str | None
):
    host = own_address()
    if host is None:
        pytest.skip("this machine has no non-loopback address")
    extra = {"sandbox_token": token} if token else {}
    async with (
        sandbox_site(db, tmp_path, host=host, **extra) as (base, _),
        httpx.AsyncClient(base_url=base) as client,
    ):
        refused = await client.get("/sandbox")
        assert refused.status_code == 403
        assert "SANDBOX_TOKEN" in refused.json()["detail"]
        wrong = await client.get("/sandbox", params={"token": TOKEN[:-1] + "x"})
        assert wrong.status_code == 403
        given = await client.get("/sandbox", params={"token": TOKEN})
        assert given.status_code == (200 if token else 403)
        header = await client.get("/sandbox/chats.json", headers={"X-Sandbox-Token": TOKEN})
        assert header.status_code == (200 if token else 403)


async def test_the_sandbox_is_off_unless_enabled(db: Database, tmp_path: Path):
    app = create_app(Settings(app={"data_dir": tmp_path}, _env_file=None), db)  # type: ignore[call-arg]
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        reply = await client.get("/sandbox")
        assert reply.status_code == 404
        assert "SANDBOX=true" in reply.json()["detail"]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


async def test_bad_inputs_are_refused_with_a_message_and_change_nothing(
    db: Database, tmp_path: Path
):
    async with sandbox_site(db, tmp_path) as (base, app):
        member = await add_member(db, "Dora Dispatch", [Role.DISPATCHER])
        await app.state.sandbox.join("dora", member.id, "Dora Dispatch", "dispatcher")
        async with httpx.AsyncClient(base_url=base) as client:
            before = (await client.get("/sandbox/chats.json")).json()
            cases = [
                ("/sandbox/nobody/text", {"data": {"text": "hello"}}, 404, "nobody"),
                ("/sandbox/dora/text", {"data": {"text": "x" * 4097}}, 422, "4096"),
                ("/sandbox/dora/text", {"data": {"text": "   "}}, 422, "Type a message"),
                ("/sandbox/dora/press", {"data": {"data": "a" * 65}}, 422, "64 bytes"),
                ("/sandbox/dora/location", {"data": {"lat": "abc", "lon": "2"}}, 422, "latitude"),
                ("/sandbox/dora/location", {"data": {"lat": "91", "lon": "2"}}, 422, "latitude"),
                ("/sandbox/dora/location", {"data": {"lat": "nan", "lon": "2"}}, 422, "latitude"),
                (
                    "/sandbox/dora/location",
                    {"data": {"lat": "41", "lon": "-181"}},
                    422,
                    "longitude",
                ),
                (
                    "/sandbox/dora/photo",
                    {"files": {"photo": ("notes.txt", b"not an image", "text/plain")}},
                    422,
                    "photo",
                ),
                ("/sandbox/file/999999", {}, 404, "no longer kept"),
            ]
            for path, body, status, words in cases:
                reply = await (client.post(path, **body) if body else client.get(path))
                assert reply.status_code == status, (path, reply.text)
                assert words.lower() in reply.json()["detail"].lower(), (path, reply.text)
            assert (await client.get("/sandbox/chats.json")).json() == before
            # the same participant's good inputs go through to the core and get an answer
            good = await client.post("/sandbox/dora/text", data={"text": "/help"})
            assert good.status_code == 200 and good.json()["replies"]
            photo = await client.post(
                "/sandbox/dora/photo", files={"photo": ("p.png", png(), "image/png")}
            )
            assert photo.status_code == 200
