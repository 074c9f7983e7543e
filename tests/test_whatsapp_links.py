"""WhatsApp invite and subscribe links (`wa.me/<number>?text=start <code>`) outside the chat: the
`lastmile invite` command prints one (with its QR) when WHATSAPP_PHONE_NUMBER is set, the tracking
page offers the order's updates in WhatsApp, and a bad number is refused at start-up."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from core.channels import channel_states
from core.config import Settings, WhatsAppSettings
from core.db import Database
from core.models import Channel, Member, OrderStatus, Role
from core.notify.outbox import preferred_channel
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM
from core.people.identities import ChatRef, attach, set_blocked
from tests.conftest import serve
from tests.factories import add_member, count, new_order
from tests.test_settings import lastmile
from tests.test_whatsapp_webhook import until, whatsapp_site
from web.app import create_app

S = OrderStatus


def test_invite_prints_both_links_and_their_qr_codes(clean_env, tmp_path: Path) -> None:
    env = {
        **clean_env,
        "TELEGRAM_BOT_USERNAME": "lastmile_test_bot",
        "WHATSAPP_PHONE_NUMBER": "+49 151 2345678",
    }
    qr = tmp_path / "out" / "driver.png"
    result = lastmile(["invite", "--role", "driver", "--qr", str(qr)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    links = [line for line in result.stdout.splitlines() if line.startswith("https://")]
    telegram, whatsapp = (urlparse(link) for link in links)
    token = parse_qs(telegram.query)["start"][0]
    assert (whatsapp.netloc, whatsapp.path) == ("wa.me", "/491512345678")
    assert parse_qs(whatsapp.query)["text"] == [f"start {token}"]  # the same single-use invite
    for path in (qr, tmp_path / "out" / "driver-whatsapp.png"):
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_invite_with_only_whatsapp(clean_env, tmp_path: Path) -> None:
    env = {**clean_env, "WHATSAPP_PHONE_NUMBER": "15550783881"}
    result = lastmile(["invite", "--role", "dispatcher"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    (link,) = [line for line in result.stdout.splitlines() if line.startswith("https://")]
    assert link.startswith("https://wa.me/15550783881?text=start%20")


@pytest.mark.parametrize("number", ["12", "+0 123", "call me", "+49 151 2345678 ext 9", "+" * 30])
def test_a_number_not_in_international_form_is_refused(number: str) -> None:
    with pytest.raises(ValidationError, match="international form"):
        WhatsAppSettings(phone_number=number)


@pytest.mark.parametrize(
    ("number", "kept"),
    [("+49 151 2345678", "491512345678"), ("1 (555) 078-3881", "15550783881"), ("", None)],
)
def test_a_number_is_kept_as_digits(number: str, kept: str | None) -> None:
    assert WhatsAppSettings(phone_number=number).phone_number == kept


async def test_the_tracking_page_offers_updates_in_whatsapp(db: Database, tmp_path: Path) -> None:
    order = await new_order(db, ref="W-2")
    assert order.id is not None
    async with whatsapp_site(db, tmp_path) as (base, _, _):
        async with httpx.AsyncClient(base_url=base) as http:
            page = (await http.get(f"/t/{order.tracking_token}")).text
            link = f"https://wa.me/15550783881?text=start%20{order.tracking_token}"
            assert f'<a id="subscribe-whatsapp" href="{link}">' in page
            await orders.change_status(db, order.id, S.CANCELLED, SYSTEM)
            final = (await http.get(f"/t/{order.tracking_token}")).text
        assert 'id="subscribe-whatsapp"' not in final


def test_the_channel_list_says_whatsapp_runs_and_where_links_go(tmp_path: Path) -> None:

    whatsapp = {"access_token": "t", "phone_number_id": "1", "app_secret": "s"}
    bare = Settings(app={"data_dir": tmp_path}, whatsapp=whatsapp, _env_file=None)  # type: ignore[call-arg]
    linked = Settings(
        app={"data_dir": tmp_path},
        whatsapp=whatsapp | {"phone_number": "+15550783881"},
        _env_file=None,  # type: ignore[call-arg]
    )
    (state,) = [s for s in channel_states(bare) if s.name == "WhatsApp"]
    assert state.running and "/webhooks/whatsapp" in state.detail
    assert "WHATSAPP_PHONE_NUMBER" in state.detail
    (state,) = [s for s in channel_states(linked) if s.name == "WhatsApp"]
    assert "wa.me/15550783881" in state.detail


async def test_without_whatsapp_its_webhook_is_not_there(db: Database, tmp_path: Path) -> None:

    settings = Settings(app={"data_dir": tmp_path}, _env_file=None)  # type: ignore[call-arg]
    async with serve(create_app(settings, db)) as base, httpx.AsyncClient(base_url=base) as http:
        got = await http.get("/webhooks/whatsapp", params={"hub.mode": "subscribe"})
        posted = await http.post("/webhooks/whatsapp", content=b"{}")
    assert got.status_code == 404 and posted.status_code == 404


async def reached_on(db: Database, member_id: int) -> Channel | None:
    async with db.reads() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        return await preferred_channel(session, member)


async def test_a_person_with_both_chats_chooses_where_to_be_reached(
    db: Database, tmp_path: Path
) -> None:
    number = "4915122223333"
    member = await add_member(db, "Tom", [Role.CUSTOMER], telegram_chat_id=4242)
    assert member.id is not None
    chat = ChatRef(Channel.WHATSAPP, number, number)
    async with db.transaction() as session:
        await attach(session, member.id, chat)
    assert await reached_on(db, member.id) is Channel.TELEGRAM  # by default
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        await fake.inbound(number, "here")
        await until(lambda: fake.sent_to(number))
        assert fake.sent_to(number)[0].text == "OK: your updates come to this chat from now on."
    assert await reached_on(db, member.id) is Channel.WHATSAPP
    async with db.transaction() as session:
        await set_blocked(session, chat, True, db.now())  # she blocked us there
    assert await reached_on(db, member.id) is Channel.TELEGRAM


async def test_here_from_a_stranger_changes_nothing(db: Database, tmp_path: Path) -> None:
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        await fake.inbound("4915144445555", "/here")
        await until(lambda: fake.sent_to("4915144445555"))
        assert "OK: your updates" not in fake.sent_to("4915144445555")[0].text
    assert await count(db, Member) == 0
