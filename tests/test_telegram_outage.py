"""No Telegram update is lost while the database is unreachable (a TCP proxy the test cuts in
front of PostgreSQL): nothing is acknowledged before it was processed, each person hears once
why they must wait, and after the outage every update is processed, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from core.db import Database, is_sqlite
from core.models import LocationPing, Role
from tests.fakes import telegram_updates as tu
from tests.fakes.tcp_proxy import proxy_for
from tests.telegram_harness import Bot, add_person, running_bot
from tests.test_telegram_driver import BERLIN, link, new_order

OUTAGE_S = 5.0
WAIT_S = 40.0
PINGS = 30
SORRY = "We have a problem on our side right now."
OOPS = "Something went wrong"
NO_CUT = "SQLite is a file this process opens: there is no connection to cut (a file locked by"
NO_CUT += " another process is classified in test_db_unavailable)"


async def until(check: Callable[[], Awaitable[bool]], what: str, wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not await check():
        assert time.monotonic() < deadline, f"not within {wait_s} s: {what}"
        await asyncio.sleep(0.1)


async def pings(db: Database) -> list[LocationPing]:
    async with db.sessions() as session:
        return list(await session.exec(select(LocationPing).order_by(col(LocationPing.id))))


def count(texts: list[str], words: str) -> int:
    return sum(words in text for text in texts)


async def deliver(bot: Bot, mode: str, update: dict[str, Any]) -> int | None:
    """Hand an update over the way Telegram would: webhook (the HTTP status) or polling."""
    if mode == "webhook":
        return await bot.fake.deliver_webhook(update)
    bot.fake.push_update(update)
    return None


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_no_update_is_lost_while_the_database_is_unreachable(
    db: Database, database_url: str, tmp_path: Path, mode: str
):
    if is_sqlite(database_url):
        pytest.skip(NO_CUT)
    ana, _ = await add_person(db, 651, "Ana", [Role.DRIVER])
    cara, cara_member = await add_person(db, 652, "Cara", [Role.CUSTOMER])
    order = await new_order(db, "Cara", 52.53, 13.41)
    await link(db, order, cara_member.id)
    start = int(time.time())
    base = 9_100_000
    async with proxy_for(database_url) as proxy:
        proxied = Database(proxy.url(database_url))
        try:
            # the order waits for a dispatcher (what this test was written for): with the
            # autopilot, Cara would also hear "on the way", racing with the outage's messages
            manual = {"mode": "manual"}
            async with running_bot(proxied, tmp_path, mode=mode, dispatch=manual) as bot:
                await deliver(bot, mode, tu.command(ana, "/shift", update_id=base + 1))
                share = tu.location(ana, *BERLIN, live_period=3600, message_id=40, date=start)
                await deliver(bot, mode, {**share, "update_id": base + 2})
                await until(lambda: _confirmed(bot, mode, base + 2), "the live start processed")
                assert len(await pings(db)) == 1

                proxy.cut()
                cut_at = time.monotonic()
                during = [
                    tu.location(ana, BERLIN[0] + k * 0.0001, BERLIN[1], live_period=3600,
                                edit=True, message_id=40, date=start, edit_date=start + k,
                                update_id=base + 10 + k)
                    for k in range(1, PINGS + 1)
                ]  # fmt: skip
                during.append(tu.message(cara, "where is my order?", update_id=base + 100))
                statuses = [await deliver(bot, mode, update) for update in during]
                if mode == "webhook":  # not acknowledged: Telegram will send them again
                    assert statuses == [503] * len(during)
                await until(lambda: _said(bot, 652, SORRY), "Cara hears why she must wait")
                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
                if mode == "polling":  # the offset never passed the first update in hand
                    offsets = [c.value("offset") for c in bot.fake.calls_to("getUpdates")]
                    assert max(o or 0 for o in offsets) <= base + 11, offsets
                    pending = {u["update_id"] for u in bot.fake.pending_updates}
                    assert {u["update_id"] for u in during} <= pending
                assert len(await pings(db)) == 1, "nothing could be stored during the outage"
                assert proxy.refused > 0

                proxy.restore()
                if mode == "webhook":  # Telegram sends again what was not acknowledged
                    again = [await bot.fake.deliver_webhook(update) for update in during]
                    assert again == [200] * len(during)
                    repeat = await bot.fake.deliver_webhook(during[-1])  # a repeat: ignored
                    assert repeat == 200

                async def all_in() -> bool:
                    answered = _count_now(bot, 652, f"#{order.id}:")
                    return len(await pings(db)) == 1 + PINGS and answered >= 1

                await until(all_in, "every ping stored and Cara answered")
                stored = await pings(db)
                assert [p.lat for p in stored[1:]] == [
                    BERLIN[0] + k * 0.0001 for k in range(1, PINGS + 1)
                ], "in the order they were sent"
                cara_texts, ana_texts = bot.texts(652), bot.texts(651)
                assert count(cara_texts, SORRY) == 1, cara_texts  # once, however often it came
                assert count(cara_texts, f"#{order.id}:") == 1, cara_texts  # answered once
                assert SORRY in cara_texts[0] and f"#{order.id}:" in cara_texts[-1]
                assert count(ana_texts, SORRY) <= 1 and count(ana_texts, OOPS) == 0, ana_texts
                assert count(cara_texts, OOPS) == 0
        finally:
            await proxied.dispose()


async def _confirmed(bot: Bot, mode: str, update_id: int) -> bool:
    """Processed to the end (an update cut off half-way by the outage is processed again from
    the start, so what it did first would happen twice: not what this test is about)."""
    if mode == "webhook":
        return True  # the webhook answered once it was processed
    offsets = [c.value("offset") or 0 for c in bot.fake.calls_to("getUpdates") if c.ok]
    return max(offsets, default=0) > update_id


async def _said(bot: Bot, chat_id: int, words: str) -> bool:
    return any(words in text for text in bot.texts(chat_id))


def _count_now(bot: Bot, chat_id: int, words: str) -> int:
    return count(bot.texts(chat_id), words)


REDIS_URL = "redis://127.0.0.1:6379/14"


async def redis_or_skip() -> Any:
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisDown

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    except RedisDown:
        await redis.aclose()
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return redis


async def test_no_update_is_lost_while_redis_is_unreachable(db: Database, tmp_path: Path):
    """Redis holds the conversations and the update log of several instances: while it is cut
    off, polled updates stay unconfirmed and are processed once it is back."""
    redis = await redis_or_skip()
    cara, cara_member = await add_person(db, 571, "Cara", [Role.CUSTOMER])
    order = await new_order(db, "Cara", 52.53, 13.41)
    await link(db, order, cara_member.id)
    try:
        async with (
            proxy_for(REDIS_URL) as proxy,
            running_bot(db, tmp_path, mode="polling", redis_url=proxy.url(REDIS_URL)) as bot,
        ):
            bot.fake.push_update(tu.message(cara, "where is my order?", update_id=9_300_001))
            await until(lambda: _said(bot, 571, f"#{order.id}:"), "answered before the cut")
            proxy.cut()
            questions = [f"where is order {k}?" for k in range(3)]
            for k, text in enumerate(questions):
                bot.fake.push_update(tu.message(cara, text, update_id=9_300_010 + k))
            await asyncio.sleep(OUTAGE_S)
            assert _count_now(bot, 571, f"#{order.id}:") == 1  # nothing could be processed
            pending = {u["update_id"] for u in bot.fake.pending_updates}
            assert {9_300_010, 9_300_011, 9_300_012} <= pending  # and nothing was confirmed
            proxy.restore()

            async def answered() -> bool:
                return _count_now(bot, 571, f"#{order.id}:") == 1 + len(questions)

            await until(answered, "every question answered after the outage")
            assert count(bot.texts(571), OOPS) == 0
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_two_instances_given_the_same_update_at_once_process_it_once(
    db: Database, tmp_path: Path
):
    """Telegram sends an update again when an answer is late; with several instances behind a
    balancer both copies can arrive together. One processes it; the other answers 503 while it
    is in hand (it might still fail and must not be lost) or 200 once it is done."""
    redis = await redis_or_skip()
    rounds, busy = 20, 0
    try:
        async with (
            running_bot(db, tmp_path / "one", redis_url=REDIS_URL) as one,
            running_bot(db, tmp_path / "two", redis_url=REDIS_URL) as two,
        ):
            for k in range(rounds):
                person = tu.user(560 + k, "Pat")
                update = tu.command(person, "/start", update_id=9_200_000 + k)
                statuses = await asyncio.gather(
                    one.fake.deliver_webhook(update), two.fake.deliver_webhook(update)
                )
                assert sorted(statuses) in ([200, 200], [200, 503]), statuses
                for status, instance in zip(statuses, (one, two), strict=True):
                    if status == 503:  # Telegram sends it again later: done by then
                        busy += 1
                        assert await instance.fake.deliver_webhook(update) == 200
                replies = one.texts(560 + k) + two.texts(560 + k)
                assert len(replies) == 1 and "delivery assistant" in replies[0], replies
        assert busy >= 1, "no copy was answered 503 while the other one had it in hand"
    finally:
        await redis.flushdb()
        await redis.aclose()
