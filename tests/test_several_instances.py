"""Nothing doubled at scale: two and three real instances (`lastmile run`) on one database and
one Redis, and one chat receiving 300 messages in a row: each arrives exactly once, in order,
although a batch takes far longer than its lease (OUTBOX_LEASE_S=3) and every instance keeps
claiming meanwhile. The chat's rate is raised (50 a second) so that 300 messages fit in
seconds; the bot's own limit (30 a second, shared through Redis) is the one that paces them."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.db import Database
from core.models import Role
from tests.instances import running
from tests.telegram_harness import add_person
from tests.test_shared_limits import REDIS_URL, busiest_second, fakes, redis, sends
from tests.test_two_instances import all_sent, queue, telegram_env, text

__all__ = ["redis"]  # the fixture, used by name

MESSAGES = 300


@pytest.mark.parametrize("count", [2, 3])
async def test_one_chat_gets_300_messages_once_each_and_in_order(
    db: Database,
    database_url: str,
    clean_env: dict[str, str],
    tmp_path: Path,
    redis: Redis,
    count: int,
):
    _, member = await add_person(db, 8800 + count, "Nia", [Role.DISPATCHER])
    refs = [f"#{i:03}" for i in range(MESSAGES)]
    async with AsyncExitStack() as stack:
        servers = await fakes(stack, count)
        envs = [
            {
                **clean_env,
                **telegram_env(s, TELEGRAM_RATE_PER_S="30", TELEGRAM_CHAT_RATE_PER_S="50"),
                "REDIS_URL": REDIS_URL,
            }
            for s in servers
        ]
        async with running(database_url, tmp_path, *envs):
            await queue(db, *((member, refs[i : i + 50]) for i in range(0, MESSAGES, 50)))
            await all_sent(db, MESSAGES)
    calls = sends(servers)
    texts = [call.text or "" for call in calls]
    doubled = {t: n for t, n in Counter(texts).items() if n > 1}
    assert not doubled, f"{len(doubled)} messages sent more than once"
    assert texts == [text(ref) for ref in refs]  # all of them, in order
    assert busiest_second([call.at for call in calls]) <= 30
    assert not [c for s in servers for c in s.calls if c.error_code is not None]
