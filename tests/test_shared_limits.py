"""Send limits shared by several real instances (`lastmile run` processes) through Redis: the
fake Bot APIs record when each message arrived, and together they never see more than
TELEGRAM_RATE_PER_S in any one-second window, nor more than TELEGRAM_CHAT_RATE_PER_S to one
chat; a 429 answered to one instance holds every instance back; Redis cut mid-run (a TCP proxy
the test controls) leaves each instance pacing alone, never faster than its own limit.

Each instance talks to its own fake Bot API (same bot token), so the test knows which one sent
what; the arrival times of all fakes are on this process's one monotonic clock."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisDown

from bot.send_limits import SendLimits
from core.db import Database
from core.models import Member, OutboxStatus, Role
from tests.fakes.graph_api import FakeGraph
from tests.fakes.tcp_proxy import proxy_for
from tests.fakes.telegram_api import Call, FakeTelegram
from tests.instances import running
from tests.telegram_harness import add_person
from tests.test_two_instances import all_sent, queue, telegram_env, text
from tests.whatsapp_harness import make_sender, notify, rows, until, whatsapp_member
from tests.whatsapp_harness import running as sending

REDIS_URL = os.environ.get("TEST_LIMITS_REDIS_URL", "redis://127.0.0.1:6379/13")
# The fakes stamp a request when their event loop gets to it: on a loaded machine (2 cores
# shared by several test runs) that stamp may come late by tens of milliseconds, bunching
# arrivals up; windows are counted this much shorter than a second (still more than the
# limit's MARGIN of 3 % could hide: 31 sends at 30/s are 1.03 s apart at least)
JITTER_S = 0.05
LIMITS_LEASE = {"OUTBOX_LEASE_S": "10", "WEBHOOKS_TIMEOUT_S": "1"}  # leases are not the point


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    except RedisDown:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


async def fakes(stack: AsyncExitStack, count: int) -> list[FakeTelegram]:
    return [await stack.enter_async_context(FakeTelegram()) for _ in range(count)]


def sends(servers: list[FakeTelegram]) -> list[Call]:
    """Every message accepted by any of `servers`, in order of arrival."""
    calls = [c for s in servers for c in s.calls_to("sendMessage") if c.ok]
    return sorted(calls, key=lambda call: call.at)


def busiest_second(times: list[float]) -> int:
    """The most of `times` in any one-second window [t, t + 1 - JITTER_S)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0 - JITTER_S:
            start += 1
        most = max(most, end - start + 1)
    return most


def shortest_gaps(calls: list[Call]) -> dict[int, float]:
    """Each chat's shortest time between two messages to it."""
    by_chat: dict[int, list[float]] = defaultdict(list)
    for call in calls:
        by_chat[call.value("chat_id")].append(call.at)
    return {
        chat: min((b - a for a, b in itertools.pairwise(times)), default=99.0)
        for chat, times in by_chat.items()
    }


async def people(db: Database, count: int, first_chat: int) -> list[Member]:
    return [
        (await add_person(db, first_chat + i, f"Person{i}", [Role.DISPATCHER]))[1]
        for i in range(count)
    ]


def refs(member: Member, count: int) -> list[str]:
    return [f"#{member.id}-{i}" for i in range(count)]


async def test_redis_limits_book_turns_in_redis_time_for_every_process(redis: Redis):
    """Two limiters (as in two processes) on one account: 60 turns between them keep 30 a
    second overall and one a second per chat; a third account is not held back by them."""
    one, two = (SendLimits("telegram:1", 30, 1, REDIS_URL) for _ in range(2))
    other = SendLimits("telegram:2", 30, 1, REDIS_URL)
    granted: list[tuple[str, float]] = []

    async def take(limits: SendLimits, chat: str, label: str = "") -> None:
        await limits.turn(chat)
        granted.append((label or chat, time.monotonic()))

    try:
        started = time.monotonic()
        await asyncio.gather(
            *(take(one, f"chat-{i % 20}") for i in range(30)),
            *(take(two, f"chat-{i % 20}") for i in range(30)),
            take(other, "chat-0", "other"),
        )
    finally:
        for limits in (one, two, other):
            await limits.close()
    times = [at for chat, at in granted if chat != "other"]
    assert busiest_second(times) <= 30
    by_chat: dict[str, list[float]] = defaultdict(list)
    for chat, at in granted:
        by_chat[chat].append(at)
    # (each chat's own spacing is checked where messages arrive, in the tests below: here a
    # stalled event loop would shift when a turn is seen, not when it was booked)
    assert all(at[-1] - at[0] >= len(at) - 1 - 0.25 for c, at in by_chat.items() if c != "other")
    [other_at] = by_chat["other"]
    assert other_at - started < 0.5  # another bot's limits are its own
    assert max(times) - started >= 59 / 30 - JITTER_S  # 60 turns at 30 a second: ~2 s


async def test_three_instances_together_keep_the_bots_and_each_chats_limits(
    db: Database,
    database_url: str,
    clean_env: dict[str, str],
    tmp_path: Path,
    redis: Redis,
):
    """240 messages to 40 chats through three instances at once: each instance alone would go
    at 30 a second; together they must not either."""
    members = await people(db, 40, first_chat=5000)
    async with AsyncExitStack() as stack:
        servers = await fakes(stack, 3)
        envs = [
            {
                **clean_env,
                **telegram_env(s, TELEGRAM_RATE_PER_S="30", TELEGRAM_CHAT_RATE_PER_S="1"),
                "REDIS_URL": REDIS_URL,
                **LIMITS_LEASE,
            }
            for s in servers
        ]
        async with running(database_url, tmp_path, *envs):
            await queue(db, *((m, refs(m, 6)) for m in members))
            await all_sent(db, 240)
    calls = sends(servers)
    assert len(calls) == 240
    assert sum(1 for s in servers if s.calls_to("sendMessage")) >= 2, "one instance sent all"
    assert not [c for s in servers for c in s.calls if c.error_code == 429]
    assert busiest_second([c.at for c in calls]) <= 30
    gaps = shortest_gaps(calls)
    assert len(gaps) == 40
    assert min(gaps.values()) >= 1.0 - JITTER_S, sorted(gaps.items(), key=lambda kv: kv[1])[:3]
    for member in members:  # each chat's messages once, in order
        chat = member.telegram_chat_id
        assert chat is not None
        got = [c.text for c in calls if c.value("chat_id") == chat]
        assert got == [text(ref) for ref in refs(member, 6)]


async def test_a_429_to_one_instance_holds_every_instance_back(
    db: Database,
    database_url: str,
    clean_env: dict[str, str],
    tmp_path: Path,
    redis: Redis,
):
    """The first message the first instance sends is answered 429 with retry_after=3: from
    then on neither instance sends for 3 s (bar a message already on its way), then both go
    on."""
    members = await people(db, 60, first_chat=6000)
    retry_after = 3
    async with AsyncExitStack() as stack:
        servers = await fakes(stack, 2)
        servers[0].fail_next("sendMessage", code=429, retry_after=retry_after)
        envs = [
            {
                **clean_env,
                **telegram_env(s, TELEGRAM_RATE_PER_S="30", TELEGRAM_CHAT_RATE_PER_S="10"),
                "REDIS_URL": REDIS_URL,
                **LIMITS_LEASE,
            }
            for s in servers
        ]
        async with running(database_url, tmp_path, *envs):
            await queue(db, *((m, refs(m, 3)) for m in members))
            await all_sent(db, 180)
    [refused] = [c for c in servers[0].calls if c.error_code == 429]
    since = [[c.at - refused.at for c in s.calls_to("sendMessage") if c.ok] for s in servers]
    during = [at for each in since for at in each if 0.3 < at < retry_after - JITTER_S]
    assert not during, f"{len(during)} messages sent while the bot was told to wait"
    for each in since:  # both had messages to send, and sent them once the wait was over
        assert [at for at in each if at >= retry_after - JITTER_S]
    assert len(sends(servers)) == 180


async def test_redis_cut_mid_run_each_instance_goes_on_at_its_own_pace(
    db: Database,
    database_url: str,
    clean_env: dict[str, str],
    tmp_path: Path,
    redis: Redis,
):
    """Redis is cut (a TCP proxy) while two instances send and restored a few seconds later:
    nothing is lost or doubled, each instance goes on alone but never faster than its own
    limit, says so in its log, and shares the limits again once Redis answers."""
    members = await people(db, 50, first_chat=7000)
    async with AsyncExitStack() as stack:
        servers = await fakes(stack, 2)
        proxy = await stack.enter_async_context(proxy_for(REDIS_URL))
        envs = [
            {
                **clean_env,
                **telegram_env(s, TELEGRAM_RATE_PER_S="10", TELEGRAM_CHAT_RATE_PER_S="5"),
                "REDIS_URL": proxy.url(REDIS_URL),
                **LIMITS_LEASE,
            }
            for s in servers
        ]
        async with running(database_url, tmp_path, *envs) as instances:
            await queue(db, *((m, refs(m, 6)) for m in members))
            while len(sends(servers)) < 20:  # noqa: ASYNC110 (the fakes' records, no event)
                await asyncio.sleep(0.05)
            proxy.cut()
            cut_at = time.monotonic()
            await asyncio.sleep(4)
            proxy.restore()
            restored_at = time.monotonic()
            await all_sent(db, 300)
            logs = [each.output() for each in instances]
    calls = sends(servers)
    assert len(calls) == 300
    for member in members:
        chat = member.telegram_chat_id
        got = [c.text for c in calls if c.value("chat_id") == chat]
        assert got == [text(ref) for ref in refs(member, 6)]
    alone = [c.at for c in calls if cut_at < c.at < restored_at]
    assert alone, "nothing was sent while Redis was cut"
    for server in servers:  # each never above its own limit
        assert busiest_second([c.at for c in server.calls_to("sendMessage") if c.ok]) <= 10
    shared_again = [c.at for c in calls if c.at > restored_at + 6]  # RETRY_S, and a margin
    assert shared_again, "the run ended before Redis was tried again"
    assert busiest_second(shared_again) <= 10
    assert not [c for s in servers for c in s.calls if c.error_code == 429]
    cut_logs = [log for log in logs if "Redis cannot be reached" in log]
    assert cut_logs, "no instance said Redis was cut"
    assert all("Redis answers again" in log for log in cut_logs)


async def test_two_whatsapp_senders_share_the_numbers_limits_and_its_throttling(
    db: Database, tmp_path: Path, redis: Redis
):
    """Two WhatsApp senders (as in two instances: each its own limits, on one Redis) and 48
    messages to 8 people: together never above WHATSAPP_RATE_PER_S (10) in a second; Graph's
    throttling (130429, retry_after 2 s) answered to whichever sends first holds both back."""
    people = [
        await whatsapp_member(db, f"4917060000{i:02}", f"W{i}", wrote_ago=timedelta(hours=1))
        for i in range(8)
    ]
    for round_ in range(6):
        for person in people:
            await notify(db, person, f"{person.id}:{round_}")

    async def all_done() -> bool:
        return sum(r.status is OutboxStatus.SENT for r in await rows(db)) == 48

    async with FakeGraph() as fake:
        for i in range(8):
            fake.wrote(f"4917060000{i:02}")
        fake.fail_next(130429, times=1, retry_after=2)
        one, two = (
            make_sender(fake, db, tmp_path, redis_url=REDIS_URL, rate_per_s=10, chat_rate_per_s=20)
            for _ in range(2)
        )
        async with sending(one), sending(two):
            await until(all_done, "all 48 sent")
        accepted = [s.at for s in fake.sent if s.ok]
        [refused] = [s.at for s in fake.sent if s.error == 130429]
    assert one.sent and two.sent, "one sender sent everything"
    assert one.sent + two.sent == len(accepted) == 48
    assert busiest_second(accepted) <= 10
    assert not [at for at in accepted if refused + 0.3 < at < refused + 2 - JITTER_S]
