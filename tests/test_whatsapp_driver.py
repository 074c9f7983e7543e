"""A driver on WhatsApp, end to end through the fake Graph API: bare command words, a location
pin (it starts her route: WhatsApp has no live location), reply buttons pressed by their ids,
and a proof photo downloaded from the Graph API (media id -> URL -> bytes with the bearer token)
only when the flow asks for it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlmodel import select

from core.db import Database
from core.models import Channel, Driver, Order, OrderStatus, Proof, ProofKind, Role
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft, create_order
from core.people.identities import ChatRef, attach
from tests.factories import add_member
from tests.fakes.graph_api import FakeGraph
from tests.telegram_harness import jpeg
from tests.test_whatsapp_webhook import until, whatsapp_site

S = OrderStatus
ANA = "4917612345678"


async def post_message(fake: FakeGraph, wa_id: str, kind: str, part: Any, wamid: str) -> None:
    message = {
        "from": wa_id,
        "id": wamid,
        "timestamp": str(int(fake.clock().timestamp())),
        "type": kind,
        kind: part,
    }
    contacts = [{"profile": {"name": "Ana"}, "wa_id": wa_id}]
    fake.wrote(wa_id)
    status = await fake.post_webhook(fake._envelope({"contacts": contacts, "messages": [message]}))
    assert status == 200


def button_id(fake: FakeGraph, wa_id: str, title: str) -> str:
    """The id of the newest reply button (or list row) whose title contains `title`."""
    for sent in reversed(fake.sent_to(wa_id)):
        action = sent.body.get("interactive", {}).get("action", {})
        for button in action.get("buttons", []):
            if title in button["reply"]["title"]:
                return str(button["reply"]["id"])
        for section in action.get("sections", []):
            for row in section.get("rows", []):
                if title in row["title"]:
                    return str(row["id"])
    raise AssertionError(
        f"no button {title!r} in {json.dumps([s.body for s in fake.sent_to(wa_id)])[:2000]}"
    )


async def order_status(db: Database, order_id: int) -> OrderStatus:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.status


async def test_a_driver_on_whatsapp_delivers_with_a_photo(db: Database, tmp_path: Path) -> None:
    member = await add_member(db, "Ana", [Role.DRIVER])
    assert member.id is not None
    async with db.transaction() as session:
        driver = Driver(member_id=member.id)
        session.add(driver)
        await attach(session, member.id, ChatRef(Channel.WHATSAPP, ANA, ANA))
    draft = OrderDraft(
        customer_name="Cara",
        address="Cara street 1",
        lat=52.53,
        lon=13.41,
        proof_required=ProofKind.PHOTO,
    )
    order = await create_order(db, draft, SYSTEM, source="test")
    assert order.id is not None and driver.id is not None
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        seen = 0

        async def said(wamid: str, kind: str, part: Any) -> str:
            nonlocal seen
            await post_message(fake, ANA, kind, part, wamid)
            await until(lambda: wamid in fake.reads)
            new = fake.sent_to(ANA)[seen:]
            seen = len(fake.sent_to(ANA))
            return "\n".join(s.text for s in new)

        started = await said("wamid.a1", "text", {"body": "shift"})  # a bare command word
        assert "shift" in started.lower()
        await order_service.change_status(
            db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=driver.id)
        )
        pinned = await said("wamid.a2", "location", {"latitude": 52.52, "longitude": 13.405})
        assert "Send it again" in pinned  # no live location on WhatsApp: a pin at each stop
        assert await order_status(db, order.id) is S.OUT_FOR_DELIVERY  # the pin started it
        route = await said("wamid.a3", "text", {"body": "/route"})
        assert "Cara street 1" in route
        await said("wamid.a4", "interactive", {
            "type": "button_reply",
            "button_reply": {"id": button_id(fake, ANA, "Arrived"), "title": "📍 Arrived"},
        })  # fmt: skip
        assert await order_status(db, order.id) is S.ARRIVED
        ask = await said("wamid.a5", "interactive", {
            "type": "button_reply",
            "button_reply": {"id": button_id(fake, ANA, "Delivered"), "title": "✅ Delivered"},
        })  # fmt: skip
        assert "Send a photo of the delivered parcel" in ask
        assert fake.downloads == []

        junk = fake.add_media(b"%PDF-1.4 not an image", "image/jpeg")
        refused = await said("wamid.a6", "image", {"id": junk, "mime_type": "image/jpeg"})
        assert "not a photo I can read" in refused
        assert await order_status(db, order.id) is S.ARRIVED

        picture = jpeg()
        media_id = fake.add_media(picture, "image/jpeg")
        done = await said("wamid.a7", "image", {"id": media_id, "mime_type": "image/jpeg"})
        assert f"Order #{order.id} delivered." in done
        assert fake.downloads == [junk, media_id]
    assert await order_status(db, order.id) is S.DELIVERED
    async with db.reads() as session:
        (proof,) = (await session.exec(select(Proof))).all()
    assert proof.sha256 == hashlib.sha256(picture).hexdigest()
    assert (tmp_path / proof.stored_path).read_bytes() == picture
