"""The WhatsApp webhook and channel, end to end: the real app on 127.0.0.1, the real GraphClient
talking to the fake Graph API (tests/fakes/graph_api.py), which posts signed webhooks to the app.

Meta's handshake and signature test vectors pass; forged, altered and unsigned bodies are refused
with 401 and nothing is stored; a body sent again (Meta retries) or a message carried again in
another body is processed once; a body stored while nobody processed it (a crash after the 200)
is processed later; a text reaches the core and its reply reaches the fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from bot.whatsapp import inbox
from bot.whatsapp.channel import REPLY_TRIES
from core.config import Settings
from core.db import Database
from core.models import (
    Channel,
    ChatIdentity,
    Customer,
    Driver,
    InboundBody,
    InboundSeen,
    MemberRole,
    OutboxMessage,
    OutboxStatus,
    Role,
)
from core.notify.outbox import REPLY
from core.people import invites
from core.people.identities import ChatRef, attach
from tests.conftest import POSTGRES_URL, serve
from tests.factories import add_member, count, new_order
from tests.fakes.graph_api import FakeGraph, sign
from tests.fakes.tcp_proxy import proxy_for
from tests.whatsapp_harness import whatsapp_member
from web.app import create_app

WA = Path(__file__).parent / "fixtures" / "whatsapp"
VECTOR = json.loads((WA / "constructed" / "signature.testvector.json").read_text())
HANDSHAKE = json.loads((WA / "constructed" / "verification.handshake.json").read_text())
CARLA = "4915112345678"


def graph_settings(fake: FakeGraph) -> dict[str, Any]:
    """The WHATSAPP_* settings that point the service at the fake Graph API."""
    return {
        "access_token": fake.token,
        "phone_number_id": fake.phone_number_id,
        "app_secret": fake.app_secret,
        "api_url": fake.url,
    }


def settings_for(tmp_path: Path, fake: FakeGraph, **whatsapp: Any) -> Settings:
    values = graph_settings(fake) | {
        "verify_token": "my-verify-token",
        "phone_number": "+1 555 078 3881",
    }
    return Settings(
        app={"data_dir": tmp_path, "secret_key": "k" * 32},
        dispatch={"mode": "manual"},
        whatsapp=values | whatsapp,
        _env_file=None,
    )  # type: ignore[call-arg]


@asynccontextmanager
async def whatsapp_site(
    db: Database, tmp_path: Path, **whatsapp: Any
) -> AsyncIterator[tuple[str, FakeGraph, Any]]:
    async with FakeGraph() as fake:
        app = create_app(settings_for(tmp_path, fake, **whatsapp), db)
        async with serve(app) as base:
            fake.webhook_url = f"{base}/webhooks/whatsapp"
            fake.auto_statuses = ()  # statuses are wa-out's to record
            yield base, fake, app


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait (bounded) until `check()` is true."""
    for _ in range(int(seconds / 0.05)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


async def processed(db: Database, bodies: int) -> bool:
    done = await count(db, InboundBody, InboundBody.status == OutboxStatus.SENT)  # type: ignore[arg-type]
    return done >= bodies


def text_body(fake: FakeGraph, wa_id: str, text: str, wamid: str, name: str = "Carla") -> bytes:
    message = {
        "from": wa_id,
        "id": wamid,
        "timestamp": str(int(fake.clock().timestamp())),
        "type": "text",
        "text": {"body": text},
    }
    contacts = [{"profile": {"name": name}, "wa_id": wa_id}]
    envelope = fake._envelope({"contacts": contacts, "messages": [message]})
    return json.dumps(envelope).encode()


async def post(base: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{base}/webhooks/whatsapp", content=body, headers=headers)


# --- the handshake and the signature ---


async def test_the_handshake_vector(db: Database, tmp_path: Path) -> None:
    async with whatsapp_site(db, tmp_path) as (base, _, _):
        request = HANDSHAKE["request"].split(" ", 1)[1]
        async with httpx.AsyncClient(timeout=10) as http:
            ok = await http.get(f"{base}{request}")
            wrong = await http.get(f"{base}{request.replace('my-verify-token', 'guess')}")
            mode = await http.get(f"{base}{request.replace('subscribe', 'unsubscribe')}")
            bare = await http.get(f"{base}/webhooks/whatsapp")
    expected = HANDSHAKE["expected_response"]
    assert ok.status_code == expected["status"] and ok.text == expected["body"]
    assert ok.headers["content-type"].startswith(expected["content_type"])
    for refused in (wrong, mode, bare):
        assert refused.status_code == HANDSHAKE["on_token_mismatch"]["status"]
        assert expected["body"] not in refused.text


async def test_no_verify_token_set_refuses_every_handshake(db: Database, tmp_path: Path) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    async with (
        whatsapp_site(db, tmp_path, verify_token=None) as (base, _, _),
        httpx.AsyncClient(timeout=10) as http,
    ):
        answer = await http.get(f"{base}/webhooks/whatsapp", params=params)
    assert answer.status_code == 403


async def test_the_signature_vector_is_accepted_and_stored(db: Database, tmp_path: Path) -> None:
    body = (WA / "constructed" / VECTOR["body_file"]).read_bytes()
    assert inbox.digest(body) == VECTOR["body_sha256"]
    async with whatsapp_site(db, tmp_path, app_secret=VECTOR["app_secret"]) as (base, _, _):
        answer = await post(base, body, VECTOR["x_hub_signature_256"])
        assert answer.status_code == 200
        await until(lambda: processed(db, 1))
    async with db.reads() as session:
        query = select(InboundBody).where(InboundBody.body_sha256 == VECTOR["body_sha256"])
        (stored,) = (await session.exec(query)).all()
    assert stored.body == body and stored.body_sha256 == VECTOR["body_sha256"]


async def test_forged_altered_and_unsigned_bodies_are_refused(db: Database, tmp_path: Path) -> None:
    body = text_body(FakeGraph(), CARLA, "where is my order", "wamid.forged")
    good = sign(body, "fixture-app-secret-not-real")
    altered = body.replace(b"where", b"WHERE")
    async with whatsapp_site(db, tmp_path) as (base, fake, _):
        cases = [
            (body, None),  # no signature
            (body, ""),
            (body, sign(body, "another-secret")),  # forged with a guessed secret
            (altered, good),  # altered after signing
            (body, good.replace("sha256=", "sha1=")),
            (body, good[:-2]),  # cut
            (body, good.upper()),
            (body, "sha256=" + "0" * 64),
            (body + b" ", good),  # one byte more
        ]
        for content, signature in cases:
            answer = await post(base, content, signature)
            assert answer.status_code == 401, signature
        await asyncio.sleep(0.3)
        assert await count(db, InboundBody) == 0
        assert fake.sent == []


# --- processing: once, whatever comes again ---


async def test_a_text_reaches_the_core_and_its_reply_reaches_the_fake(
    db: Database, tmp_path: Path
) -> None:
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        wamid = await fake.inbound(CARLA, "hello", name="Carla")
        assert fake.webhooks[-1][1] == 200
        await until(lambda: fake.sent_to(CARLA) and wamid in fake.reads)
        (reply,) = fake.sent_to(CARLA)
    assert reply.type == "text" and "did not understand" in reply.text  # help for strangers
    assert "/start" in reply.text or "start" in reply.text.lower()


async def test_a_reply_graph_cannot_take_now_is_handed_to_the_outbox_and_sent_once(
    db: Database, tmp_path: Path
) -> None:
    """Every try of a direct reply meets a 5xx: the reply is not lost but handed to the outbox,
    whose sender delivers it, as it was, once Graph takes messages again."""
    await whatsapp_member(db, CARLA, "Carla", wrote_ago=timedelta(minutes=1))
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        fake.fail_next(2, times=REPLY_TRIES, status=503, to=CARLA)  # every direct try
        wamid = await fake.inbound(CARLA, "hello", name="Carla")
        await until(lambda: fake.sent_to(CARLA) and wamid in fake.reads, seconds=30)
        await asyncio.sleep(0.5)  # (a second copy would come now)
        (reply,) = fake.sent_to(CARLA)
        tries = [s for s in fake.sent if s.to == CARLA and not s.ok]
    assert len(tries) == REPLY_TRIES  # tried now, then handed over: not dropped
    assert reply.type == "text" and tries[0].text == reply.text  # the answer, as it was
    async with db.reads() as session:
        handed = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.template == REPLY))
        ).all()
    assert [(row.channel, row.status) for row in handed] == [(Channel.WHATSAPP, OutboxStatus.SENT)]


async def test_a_repeated_body_is_stored_and_processed_once(db: Database, tmp_path: Path) -> None:
    async with whatsapp_site(db, tmp_path) as (base, fake, _):
        fake.wrote(CARLA)
        body = text_body(fake, CARLA, "hello", "wamid.once")
        answers = await asyncio.gather(
            *(post(base, body, sign(body, fake.app_secret)) for _ in range(4))
        )
        assert [a.status_code for a in answers] == [200] * 4
        await until(lambda: processed(db, 1))
        again = await post(base, body, sign(body, fake.app_secret))  # later, once processed
        assert again.status_code == 200
        await asyncio.sleep(0.5)
        assert len(fake.sent_to(CARLA)) == 1 and fake.reads == ["wamid.once"]
    assert await count(db, InboundBody) == 1


async def test_a_message_carried_again_by_another_body_is_processed_once(
    db: Database, tmp_path: Path
) -> None:
    async with whatsapp_site(db, tmp_path) as (base, fake, _):
        fake.wrote(CARLA)
        first = text_body(fake, CARLA, "hello", "wamid.twice")
        envelope = json.loads(first)
        envelope["entry"][0]["id"] = "another-batch"  # Meta batches a retry differently
        second = json.dumps(envelope, indent=1).encode()
        for body in (first, second):
            assert (await post(base, body, sign(body, fake.app_secret))).status_code == 200
        await until(lambda: processed(db, 2))
        await asyncio.sleep(0.3)
        assert len(fake.sent_to(CARLA)) == 1
    async with db.reads() as session:
        (seen,) = (await session.exec(select(InboundSeen))).all()
    assert seen.key == "whatsapp:wamid.twice" and seen.done


async def test_a_body_left_by_a_dead_worker_is_processed_when_its_lease_ends(
    db: Database, tmp_path: Path
) -> None:
    async with FakeGraph() as probe:
        body = text_body(probe, CARLA, "hello", "wamid.crash")
    assert await inbox.store(db, Channel.WHATSAPP, body)  # stored, answered 200, then the crash
    (claimed,) = await inbox.claim(db, Channel.WHATSAPP, limit=5, lease=timedelta(seconds=1))
    assert claimed.status is OutboxStatus.SENDING  # a worker held it and died
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        fake.wrote(CARLA)
        await asyncio.sleep(0.4)
        assert fake.sent_to(CARLA) == []  # not while the dead worker's lease lasts
        await until(lambda: fake.sent_to(CARLA))
        await until(lambda: processed(db, 1))
    assert len(fake.sent_to(CARLA)) == 1


async def test_a_body_stored_while_the_service_was_down_is_processed_at_start(
    db: Database, tmp_path: Path
) -> None:
    async with FakeGraph() as probe:
        body = text_body(probe, CARLA, "help", "wamid.down")
    assert await inbox.store(db, Channel.WHATSAPP, body)
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        fake.wrote(CARLA)
        await until(lambda: fake.sent_to(CARLA) and fake.reads)
        assert fake.reads == ["wamid.down"]


# --- what the person sends ---


async def test_an_unknown_message_type_is_answered_with_help(db: Database, tmp_path: Path) -> None:
    async with whatsapp_site(db, tmp_path) as (base, fake, _):
        fake.wrote(CARLA)
        body = json.loads(text_body(fake, CARLA, "x", "wamid.voice"))
        message = body["entry"][0]["changes"][0]["value"]["messages"][0]
        del message["text"]
        message.update(type="audio", audio={"id": "123", "mime_type": "audio/ogg", "voice": True})
        raw = json.dumps(body).encode()
        assert (await post(base, raw, sign(raw, fake.app_secret))).status_code == 200
        await until(lambda: fake.sent_to(CARLA) and fake.reads)
        (reply,) = fake.sent_to(CARLA)
    assert "cannot read this kind of message" in reply.text
    assert "wamid.voice" in fake.reads


async def test_a_body_that_is_not_json_is_stored_and_finished_without_a_reply(
    db: Database, tmp_path: Path
) -> None:
    async with whatsapp_site(db, tmp_path) as (base, fake, _):
        for raw in (b"\xff\xfe not json", b'{"entry": [{"changes": "no"}]}', b"[]"):
            assert (await post(base, raw, sign(raw, fake.app_secret))).status_code == 200
        await until(lambda: processed(db, 3))
        assert fake.sent == []


async def test_an_invite_link_opened_in_whatsapp_makes_a_driver(
    db: Database, tmp_path: Path
) -> None:
    async with whatsapp_site(db, tmp_path) as (_, fake, app):
        _, token = await invites.create_invite(db, Role.DRIVER, timedelta(days=7))
        info = app.state.services.conversations.channels[Channel.WHATSAPP]
        link = await info.start_link(token)
        assert link is not None and link.startswith("https://wa.me/15550783881?text=")
        typed = parse_qs(urlsplit(link).query)["text"][0]
        assert typed == f"start {token}"
        await fake.inbound(CARLA, typed, name="Dana Driver")
        await until(lambda: len(fake.sent_to(CARLA)) >= 2)
        assert "Dana Driver" in fake.sent_to(CARLA)[0].text
        async with db.reads() as session:
            identity = (
                await session.exec(select(ChatIdentity).where(ChatIdentity.external_id == CARLA))
            ).one()
            roles = (
                await session.exec(
                    select(MemberRole.role).where(MemberRole.member_id == identity.member_id)
                )
            ).all()
        assert identity.channel is Channel.WHATSAPP and identity.chat_id == CARLA
        assert identity.last_inbound_at is not None  # her 24-hour window is open
        assert list(roles) == [Role.DRIVER]
        await fake.inbound(CARLA, f"start {token}")  # used: refused, nothing more made
        await until(lambda: len(fake.sent_to(CARLA)) >= 3)
    assert await count(db, MemberRole) == 1


async def test_a_subscribe_link_opened_in_whatsapp_follows_the_order(
    db: Database, tmp_path: Path
) -> None:
    order = await new_order(db, ref="W-1")
    async with whatsapp_site(db, tmp_path) as (_, fake, app):
        info = app.state.services.conversations.channels[Channel.WHATSAPP]
        link = await info.start_link(order.tracking_token)
        await fake.inbound(CARLA, parse_qs(urlsplit(link).query)["text"][0])
        await until(lambda: fake.sent_to(CARLA))
        assert "W-1" in fake.sent_to(CARLA)[0].text
        await fake.inbound(CARLA, "Wo ist meine Bestellung?")  # plain words, as a customer
        await until(lambda: len(fake.sent_to(CARLA)) >= 2)
        assert "W-1" in fake.sent_to(CARLA)[1].text
    async with db.reads() as session:
        customer = await session.get(Customer, order.customer_id)
        identity = (await session.exec(select(ChatIdentity))).one()
    assert customer is not None and customer.member_id == identity.member_id


@pytest.mark.parametrize("text", ["start nonsense-token", "/start ../../etc", "start"])
async def test_a_wrong_code_is_answered_and_changes_nothing(
    db: Database, tmp_path: Path, text: str
) -> None:
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        await fake.inbound(CARLA, text)
        await until(lambda: fake.sent_to(CARLA))
    assert await count(db, ChatIdentity) == 0 and await count(db, MemberRole) == 0


async def test_bodies_processed_long_ago_are_pruned_and_others_kept(db: Database) -> None:
    for n in range(3):
        assert await inbox.store(db, Channel.WHATSAPP, b'{"n": %d}' % n)
    first, second, _ = await inbox.claim(db, Channel.WHATSAPP, limit=5)
    assert first.id is not None and second.id is not None and first.lease_token is not None
    assert await inbox.take(db, "whatsapp:wamid.old", first.id)
    await inbox.done(db, "whatsapp:wamid.old")
    assert await inbox.finish(db, first.id, first.lease_token, db.now() - timedelta(days=9))
    assert await inbox.finish(db, second.id, first.lease_token, db.now())
    assert await inbox.prune(db, Channel.WHATSAPP, db.now() - timedelta(days=8)) == 1
    assert await count(db, InboundBody) == 2 and await count(db, InboundSeen) == 0
    assert not await inbox.store(db, Channel.WHATSAPP, b'{"n": 1}')  # kept: still a repeat


async def test_a_person_who_changed_number_is_reached_at_the_new_one(
    db: Database, tmp_path: Path
) -> None:
    system = json.loads((WA / "pywa-fixtures" / "system.json").read_bytes())["phone_number_change"]
    old, new = "972987654321", "972912345678"
    member = await add_member(db, "Dana", [Role.DRIVER])
    assert member.id is not None
    async with db.transaction() as session:
        session.add(Driver(member_id=member.id))
        await attach(session, member.id, ChatRef(Channel.WHATSAPP, old, old))
    async with whatsapp_site(db, tmp_path) as (_, fake, _):
        assert await fake.post_webhook(system) == 200
        await until(lambda: processed(db, 1))
        assert fake.sent == []  # a system notice is not answered
        await fake.inbound(new, "route")  # a driver's command word, from the new number
        await until(lambda: fake.sent_to(new))
        assert "did not understand" not in fake.sent_to(new)[0].text
    async with db.reads() as session:
        (identity,) = (await session.exec(select(ChatIdentity))).all()
    assert (identity.external_id, identity.member_id) == (new, member.id)


@pytest.mark.skipif(
    not POSTGRES_URL, reason="SQLite is a file in this process: there is no connection to cut"
)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_with_the_database_unreachable_meta_gets_503_and_its_retry_is_processed_once(
    database_url: str, tmp_path: Path
) -> None:
    """Nothing stored, nothing answered while the database is cut off (a TCP proxy the test
    controls); Meta's retry after it is back is stored and answered once."""
    async with proxy_for(database_url) as proxy:
        db = Database(proxy.url(database_url))
        try:
            async with whatsapp_site(db, tmp_path) as (base, fake, _):
                fake.wrote(CARLA)
                body = text_body(fake, CARLA, "hello", "wamid.outage")
                proxy.cut()
                refused = await post(base, body, sign(body, fake.app_secret))
                assert refused.status_code == 503
                proxy.restore()
                for _ in range(2):  # Meta's retry, and one more
                    answer = await post(base, body, sign(body, fake.app_secret))
                    assert answer.status_code == 200
                await until(lambda: fake.sent_to(CARLA) and fake.reads)
                await asyncio.sleep(0.3)
                assert len(fake.sent_to(CARLA)) == 1 and fake.reads == ["wamid.outage"]
        finally:
            await db.dispose()
