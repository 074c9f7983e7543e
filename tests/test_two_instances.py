"""Two real instances (`lastmile run`, two processes) on one database: a person's messages and a
merchant's webhooks go out once each, even when a batch takes longer than its lease.

The lease is short here (OUTBOX_LEASE_S=3) so that the waits that outlive it — a chat's pace, a
429's retry_after, a merchant's server that answers slowly — fit in a few seconds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from core.db import Database
from core.merchants import apikeys
from core.models import Member, OutboxMessage, OutboxStatus, Role, WebhookDelivery
from core.notify import outbox
from core.notify.rules import Notice
from tests.conftest import serve
from tests.fakes.telegram_api import FakeTelegram
from tests.instances import running
from tests.telegram_harness import SECRET, add_person
from tests.webhooks.harness import ORDER

LEASE_S = 3
WAIT_S = 60.0  # the most the instances may take to send everything


SHORT_LEASE = {"OUTBOX_LEASE_S": str(LEASE_S), "WEBHOOKS_TIMEOUT_S": "1"}  # at most half


def telegram_env(fake: FakeTelegram, **extra: str) -> dict[str, str]:
    return {
        **SHORT_LEASE,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_RATE_PER_S": "100",
        "APP_LOG_LEVEL": "INFO",
        **extra,
    }


async def queue(db: Database, *messages: tuple[Member, list[str]]) -> None:
    """One outbox row per (member, ref), all written at once, so one claim takes them all."""
    async with db.transaction() as session:
        for member, refs in messages:
            assert member.id is not None
            for ref in refs:
                notice = Notice(member.id, "dispatcher.order_returned", {"ref": ref})
                assert await outbox.add(session, notice, f"test:{member.id}:{ref}") is not None


def text(ref: str) -> str:
    return f"Order {ref} was returned to the sender."


async def all_sent(db: Database, count: int) -> None:
    """Wait until `count` outbox rows are sent, then one lease more: a sender that lost its
    lease but still meant to send would do it within that time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        async with db.reads() as session:
            statuses = list(await session.exec(select(OutboxMessage.status)))
        if statuses.count(OutboxStatus.SENT) == count:
            break
        assert loop.time() < deadline, f"{Counter(statuses)} after {WAIT_S} s"
        await asyncio.sleep(0.1)
    await asyncio.sleep(LEASE_S + 1)


def doubles(texts: list[str]) -> int:
    return len(texts) - len(set(texts))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def test_one_chats_many_messages_go_out_once_and_in_order(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path, fake: FakeTelegram
):
    """100 messages to one chat at 20 a second take 5 s, longer than the 3 s lease under which
    one instance claimed them all: the other instance must not send the later ones too."""
    _, member = await add_person(db, 901, "Dora", [Role.DISPATCHER])
    refs = [f"#{i:03}" for i in range(100)]
    env = telegram_env(fake, TELEGRAM_CHAT_RATE_PER_S="20")
    both = {**clean_env, **env}
    async with running(database_url, tmp_path, both, both):
        await queue(db, (member, refs))
        await all_sent(db, len(refs))
    texts = [call.text or "" for call in fake.sent_to(901)]
    assert doubles(texts) == 0, f"{doubles(texts)} of {len(refs)} messages were sent twice"
    assert texts == [text(ref) for ref in refs]


async def test_a_429_longer_than_the_lease_sends_nothing_twice(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path, fake: FakeTelegram
):
    """A 429 asks the instance that holds both chats' messages to wait 5 s, longer than its
    3 s lease: the other chat's messages wait in its hands, and the other instance must not
    take and send them meanwhile."""
    _, slowed = await add_person(db, 902, "Sam", [Role.DISPATCHER])
    _, waiting = await add_person(db, 903, "Wen", [Role.DISPATCHER])
    fake.fail_next("sendMessage", chat_id=902, code=429, retry_after=5)
    refs = [f"#{i:03}" for i in range(10)]
    both = {**clean_env, **telegram_env(fake, TELEGRAM_CHAT_RATE_PER_S="10")}
    async with running(database_url, tmp_path, both, both):
        await queue(db, (slowed, ["#S"]), (waiting, refs))
        await all_sent(db, len(refs) + 1)
    [refused] = [c for c in fake.calls_to("sendMessage") if c.error_code == 429]
    texts = [call.text or "" for call in fake.sent_to(903)]
    assert doubles(texts) == 0, f"{doubles(texts)} of {len(refs)} messages were sent twice"
    assert texts == [text(ref) for ref in refs]
    assert [call.text for call in fake.sent_to(902)] == [text("#S")]
    since = [call.at - refused.at for call in fake.sent_to(903)]
    assert not [at for at in since if 0.5 < at < 5 - 0.2]  # (bar one in flight) all waited 5 s
    assert len([at for at in since if at >= 5 - 0.2]) >= len(refs) - 1


async def test_an_instance_killed_mid_send_loses_nothing_and_the_other_takes_over(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path, fake: FakeTelegram
):
    """kill -9 of the instance sending a chat's messages: the other sends the rest once the
    leases have run out, in order; only a message in flight at the kill may come twice. (Each
    instance talks to its own fake Bot API, so the test knows which one is sending.)"""
    _, member = await add_person(db, 904, "Kai", [Role.DISPATCHER])
    refs = [f"#{i:03}" for i in range(30)]
    async with FakeTelegram(fake.token) as other:
        servers = [fake, other]
        envs = [{**clean_env, **telegram_env(f, TELEGRAM_CHAT_RATE_PER_S="5")} for f in servers]
        async with running(database_url, tmp_path, *envs) as instances:
            await queue(db, (member, refs))
            holder = await first_to_send(servers, 904, count=3)
            instances[holder].kill()
            killed_at = time.monotonic()
            await all_sent(db, len(refs))
        calls = sorted(fake.sent_to(904) + other.sent_to(904), key=lambda call: call.at)
        taken_over = [call.at - killed_at for call in servers[1 - holder].sent_to(904)]
    texts = [call.text or "" for call in calls]
    assert list(dict.fromkeys(texts)) == [text(ref) for ref in refs]  # all, in order
    assert doubles(texts) <= 1, f"{doubles(texts)} sent twice"
    assert taken_over and min(taken_over) > LEASE_S / 2  # once the killed one's leases ran out


async def first_to_send(servers: list[FakeTelegram], chat_id: int, count: int) -> int:
    """The index of the first of `servers` to get `count` messages to `chat_id`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        for index, server in enumerate(servers):
            if len(server.sent_to(chat_id)) >= count:
                return index
        assert loop.time() < deadline, f"nothing was sent to {chat_id}"
        await asyncio.sleep(0.05)


class Trickle:
    """A merchant's server that answers 200 at once but sends its body a byte at a time, for
    longer than the lease: no single read waits long, so only a limit on the whole request
    ends it. Records when each POST of a delivery arrived."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.posts: list[tuple[int, float]] = []
        self.app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> StreamingResponse:
        await request.body()
        delivery = int(request.headers["lastmile-delivery"])
        self.posts.append((delivery, asyncio.get_running_loop().time()))

        async def body() -> AsyncIterator[bytes]:
            for _ in range(int(self.seconds / 0.2)):
                yield b"."
                await asyncio.sleep(0.2)

        return StreamingResponse(body(), media_type="text/plain")


async def test_a_webhook_answered_slower_than_the_lease_is_not_posted_twice(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    receiver = Trickle(seconds=3 * LEASE_S)
    both = {**clean_env, **SHORT_LEASE, "WEBHOOKS_ALLOW_PRIVATE": "true"}
    async with (
        serve(receiver.app) as hook_url,
        running(database_url, tmp_path, both, both) as (first, _),
    ):
        _, secret = await apikeys.create_key(db, "shop")
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=f"{first.base_url}/api/v1", headers=headers) as api:
            answer = await api.put("/webhook", json={"url": f"{hook_url}/hook"})
            assert answer.status_code == 200, answer.text
            answer = await api.post("/orders", json={**ORDER, "external_ref": "W-1"})
            assert answer.status_code == 201, answer.text
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not receiver.posts:
            assert loop.time() < deadline, "the webhook was never posted"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2 * LEASE_S + 1)  # a second POST would come after the lease
    posts = Counter(delivery for delivery, _ in receiver.posts)
    assert posts == {receiver.posts[0][0]: 1}, f"posted {posts}"
    async with db.reads() as session:
        [delivery] = list(await session.exec(select(WebhookDelivery)))
    assert delivery.status is OutboxStatus.PENDING and delivery.attempts == 1
    assert delivery.last_error and "Timeout" in delivery.last_error
