"""The conversation core on its own: neutral events in, neutral replies out — no messenger.

Participants live on the sandbox channel (attached to members the way the demo makes them); every
bad input gets a clear reply and changes nothing (the order's status, events and outbox rows, and
the conversation state, are compared before and after)."""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisDown

from core.bootstrap import Services
from core.config import Settings
from core.conversations import (
    ChatRef,
    Command,
    Location,
    Person,
    Press,
    Reply,
    Text,
    Upload,
    buttons,
    handle,
)
from core.conversations.notices import action_buttons
from core.conversations.state import DatabaseStates, RedisStates, Step
from core.db import Database
from core.models import Channel, Member, OrderStatus, OutboxStatus, ProofKind, Role
from core.notify import outbox
from core.notify.rules import Notice
from core.orders import service as order_service
from core.orders.lifecycle import SYSTEM, Change
from core.people import identities
from core.people.members import grant
from core.texts import t
from tests.factories import add_member, link_customer, new_order, snapshot

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DENIED = t("denied.button", "en")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def upload(kind: str, content: bytes, mime: str) -> Upload:
    async def fetch() -> bytes:
        return content

    return Upload(kind, fetch, name="p.jpg", size=len(content), mime_type=mime)  # type: ignore[arg-type]


async def participant(db: Database, name: str, roles: list[Role]) -> tuple[ChatRef, int]:
    """A member with a sandbox chat (as the demo makes its people)."""
    member = await add_member(db, name)
    chat = ChatRef(Channel.SANDBOX, f"p-{member.id}", f"chat-{member.id}")
    async with db.transaction() as session:
        await identities.attach(session, member.id, chat)
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        for role in roles:
            await grant(session, fresh, role)
    return chat, member.id


@pytest.fixture
async def svc(db: Database, tmp_path: Path):
    settings = Settings(app={"data_dir": tmp_path, "timezone": "UTC"}, _env_file=None)  # type: ignore[call-arg]
    services = Services.build(settings, db, clock=Clock(NOW))
    yield services
    await services.close()


def texts(replies: list[Reply]) -> list[str]:
    return [r.text for r in replies]


async def test_identities_of_any_channel_are_attached_and_found(db: Database, svc: Services):
    chat, member_id = await participant(db, "Sam", [Role.DRIVER])
    who = await identities.identify(db, chat, Person("Sam"))
    assert who.member_id == member_id and who.has(Role.DRIVER) and who.driver_id is not None
    async with db.reads() as session:
        assert await identities.chat_of(session, member_id, Channel.SANDBOX) == chat
        assert await identities.chat_of(session, member_id, Channel.TELEGRAM) is None
    stranger = ChatRef(Channel.SANDBOX, "nobody", "nowhere")
    assert not (await identities.identify(db, stranger, Person("X", "de"))).known
    replies = await handle(svc, stranger, Person("X", "de"), Command("help"))
    assert texts(replies) == [t("help.stranger", "de")]


async def test_a_delivery_with_a_photo_through_neutral_events(db: Database, svc: Services):
    driver_chat, _ = await participant(db, "Dana", [Role.DRIVER])
    customer_chat, customer_member = await participant(db, "Carla", [Role.CUSTOMER])
    order = await new_order(db, ref="N-1", proof=ProofKind.PHOTO)
    async with db.reads() as session:
        member = await session.get(Member, customer_member)
    assert member is not None
    await link_customer(db, order.customer_id, member)
    who = await identities.identify(db, driver_chat, Person("Dana"))
    await order_service.change_status(
        db, order.id, OrderStatus.ASSIGNED, SYSTEM, Change(driver_id=who.driver_id)
    )
    dana = Person("Dana")

    started = await handle(svc, driver_chat, dana, Command("shift"))
    assert started[0].ask_location and "shift" in started[0].text.lower()
    located = await handle(svc, driver_chat, dana, Location(52.5, 13.4))
    assert texts(located) == [t("location.static", "en")]

    route = await handle(svc, driver_chat, dana, Command("route"))
    stop = route[-1]
    assert stop.link is not None and "google.com/maps" in stop.link.url
    deliver = next(b.data for b in stop.buttons if b.label == t("button.delivered", "en"))
    prompt = await handle(svc, driver_chat, dana, Press(deliver))
    assert texts(prompt) == [t("driver.send_photo", "en", ref="N-1")]

    before = await snapshot(db, order.id)
    wrong = await handle(svc, driver_chat, dana, Text("here you go"))  # text, not a photo
    assert texts(wrong) == [t("driver.photo_expected", "en", ref="N-1")]
    not_image = await handle(svc, driver_chat, dana, upload("document", b"%PDF", "application/pdf"))
    assert texts(not_image) == [t("proof.not_image", "en")]
    assert await snapshot(db, order.id) == before

    done = await handle(svc, driver_chat, dana, upload("photo", jpeg(), "image/jpeg"))
    assert done[0].text.startswith("Order N-1 delivered.")
    assert [b.label for b in done[0].buttons] == [t("button.undo", "en")]
    assert (await snapshot(db, order.id))[0] is OrderStatus.DELIVERED

    rated = await handle(
        svc, customer_chat, Person("Carla"), Press(buttons.Rate(order.id, 5).pack())
    )
    assert texts(rated) == [t("customer.rated", "en", stars=5)]


@pytest.mark.parametrize(
    "data",
    [
        "s:deliver:abc",  # not a number
        "s:deliver:" + "9" * 60,  # over 64 bytes
        "s:deliver:99999999999",  # beyond any id
        "s:deliver",  # a field missing
        "r:1:9",  # nine stars
        "f:1:Not Home",  # a reason we never made
        "zz:1",  # nothing we make
        "",
        "a:order.open:1",  # a dispatcher's button, pressed by a driver
    ],
)
async def test_a_forged_or_foreign_button_is_refused_and_changes_nothing(
    db: Database, svc: Services, data: str
):
    chat, _ = await participant(db, "Dana", [Role.DRIVER])
    order = await new_order(db, ref="F-1")
    before = await snapshot(db, order.id)
    replies = await handle(svc, chat, Person("Dana"), Press(data))
    assert [(r.text, r.alert) for r in replies] == [(DENIED, True)]
    assert await snapshot(db, order.id) == before
    assert await svc.conversations.states.get(chat, NOW) is None


async def test_unknown_and_foreign_commands_get_a_clear_answer(db: Database, svc: Services):
    chat, _ = await participant(db, "Dana", [Role.DRIVER])
    unknown = await handle(svc, chat, Person("Dana"), Command("frobnicate"))
    assert unknown[0].text.startswith(t("fallback.unknown", "en")) and "/shift" in unknown[0].text
    foreign = await handle(svc, chat, Person("Dana"), Command("orders"))
    assert texts(foreign) == [t("denied", "en", command="/orders", roles="dispatchers")]
    unreadable = await handle(svc, chat, Person("Dana"), Text("a\x00b"))
    assert texts(unreadable) == [t("error.unreadable", "en")]
    in_args = await handle(svc, chat, Person("Dana"), Command("route", "\ud800"))
    assert texts(in_args) == [t("error.unreadable", "en")]


async def test_an_expired_conversation_says_so_and_changes_nothing(db: Database, svc: Services):
    chat, _ = await participant(db, "Dana", [Role.DRIVER])
    who = await identities.identify(db, chat, Person("Dana"))
    order = await new_order(db, ref="E-1", proof=ProofKind.SIGNATURE)
    await order_service.change_status(
        db, order.id, OrderStatus.ASSIGNED, SYSTEM, Change(driver_id=who.driver_id)
    )
    prompt = await handle(
        svc, chat, Person("Dana"), Press(buttons.StopOp("deliver", order.id).pack())
    )
    assert texts(prompt) == [t("driver.sign", "en", ref="E-1")]  # the pad, or the name typed
    assert prompt[0].link is not None and "/sign/" in prompt[0].link.url
    before = await snapshot(db, order.id)
    clock = svc.clock
    assert isinstance(clock, Clock)
    clock.now = NOW + timedelta(minutes=svc.settings.app.conversation_minutes + 1)
    late = await handle(svc, chat, Person("Dana"), Text("Mrs Weber"))  # the recipient's name
    assert texts(late) == [t("conversation.expired", "en")]
    assert await snapshot(db, order.id) == before
    assert await svc.conversations.states.get(chat, clock.now) is None  # it starts afresh
    again = await handle(svc, chat, Person("Dana"), Text("Mrs Weber"))
    assert again[0].text.startswith(t("fallback.unknown", "en"))
    assert await snapshot(db, order.id) == before


async def test_a_conversation_waits_for_its_answer_before_other_commands(
    db: Database, svc: Services
):
    chat, _ = await participant(db, "Bo", [Role.DISPATCHER])
    bo = Person("Bo")
    assert texts(await handle(svc, chat, bo, Command("neworder"))) == [t("neworder.name", "en")]
    assert texts(await handle(svc, chat, bo, Command("orders"))) == [t("finish_first", "en")]
    assert texts(await handle(svc, chat, bo, Text("   "))) == [t("neworder.bad_text", "en")]
    assert texts(await handle(svc, chat, bo, Text("Lena"))) == [t("neworder.phone", "en")]
    assert texts(await handle(svc, chat, bo, Command("cancel"))) == [t("cancelled", "en")]
    assert await svc.conversations.states.get(chat, NOW) is None


async def test_notices_to_a_sandbox_participant_go_out_on_the_sandbox_channel(db: Database):
    _, member_id = await participant(db, "Carla", [Role.CUSTOMER])
    async with db.transaction() as session:
        row = await outbox.add(session, Notice(member_id, "driver.share_location_again"), "k-1")
    assert row is not None and row.channel is Channel.SANDBOX and row.status is OutboxStatus.PENDING


def test_notice_actions_become_buttons_or_a_list():
    rate, stars = action_buttons([{"action": "customer.rate", "order_id": 7}], "en")
    assert rate == () and stars is not None and [b.label for b in stars.rows][-1] == "5★"
    assert buttons.parse(stars.rows[0].data) == buttons.Rate(7, 1)
    few, none = action_buttons([{"action": "order.open", "order_id": 7}], "en")
    assert none is None and buttons.parse(few[0].data) == buttons.Act("order.open", 7)
    many = [{"action": "order.open", "order_id": n} for n in range(1, 5)]
    row, listed = action_buttons(many, "en")
    assert row == () and listed is not None and len(listed.rows) == 4


async def test_conversation_state_in_the_database_expires(db: Database):
    states = DatabaseStates(db, timedelta(minutes=5))
    chat = ChatRef(Channel.SANDBOX, "a", "b")
    await states.put(chat, Step("proof.pin", {"order": 3}), NOW)
    assert await states.get(chat, NOW + timedelta(minutes=4)) == Step("proof.pin", {"order": 3})
    assert (await states.get(chat, NOW + timedelta(minutes=6))).expired  # type: ignore[union-attr]
    much_later = NOW + timedelta(days=2)
    await states.put(ChatRef(Channel.SANDBOX, "c", "d"), Step("proof.pin"), much_later)
    assert await states.get(chat, much_later) is None  # long expired: forgotten
    await states.clear(chat)
    assert await states.get(chat, NOW) is None


async def test_a_burst_of_conversation_reads_opens_a_bounded_number_of_redis_connections():
    """400 chats' states read at once (a webhook flood) share at most MAX_CONNECTIONS
    connections; redis-py's default pool opened one per read, without bound."""
    from core.redis_pool import MAX_CONNECTIONS

    url = REDIS_URL.rsplit("/", 1)[0] + "/14"  # a database of its own: its clients are ours
    states, watcher = RedisStates(url, timedelta(minutes=5)), Redis.from_url(url)
    try:
        await watcher.ping()
    except RedisDown:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    chats = [ChatRef(Channel.SANDBOX, "burst", f"{os.getpid()}-{i}") for i in range(400)]
    try:
        found = await asyncio.gather(*(states.get(chat, NOW) for chat in chats))
        assert found == [None] * 400  # every read answered
        clients = (await watcher.execute_command("CLIENT", "LIST")).decode().splitlines()
        ours = [c for c in clients if " db=14 " in f" {c} " and "lastmile-states" in c]
        assert len([c for c in clients if " db=14 " in f" {c} "]) <= MAX_CONNECTIONS + 1
        assert 1 <= len(ours) <= MAX_CONNECTIONS
    finally:
        await states.close()
        await watcher.aclose()


async def test_conversation_state_in_redis_is_shared_and_expires():
    states = RedisStates(REDIS_URL, timedelta(minutes=5))
    other = RedisStates(REDIS_URL, timedelta(minutes=5))  # another instance
    chat = ChatRef(Channel.SANDBOX, "redis-test", f"chat-{os.getpid()}")
    try:
        await states.put(chat, Step("neworder.phone", {"customer_name": "Lena"}), NOW)
    except RedisDown:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    try:
        found = await other.get(chat, NOW + timedelta(minutes=1))
        assert found == Step("neworder.phone", {"customer_name": "Lena"})
        assert (await other.get(chat, NOW + timedelta(minutes=6))).expired  # type: ignore[union-attr]
        ttl = await Redis.from_url(REDIS_URL).ttl(RedisStates.key(chat))
        assert ttl > 0
    finally:
        await states.clear(chat)
        await states.close()
        await other.close()
