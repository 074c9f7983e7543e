"""The outbox sender against the fake Bot API: rate limits, 429 storms, blocked chats, restarts."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlmodel import col, select

from bot.telegram.sender import Sender
from core.bootstrap import Services
from core.config import Settings
from core.db import Database
from core.models import Member, OutboxMessage, OutboxStatus, Role
from core.notify import outbox
from core.notify.rules import Notice
from tests.fakes.telegram_api import FakeTelegram
from tests.telegram_harness import add_person

WAIT_S = 60


async def broadcast(db: Database, members: list[Member], per_member: int) -> list[int]:
    ids = []
    async with db.transaction() as session:
        for round_ in range(per_member):
            for member in members:
                assert member.id is not None
                notice = Notice(member.id, "driver.share_location_again", {})
                row = await outbox.add(session, notice, f"test:{member.id}:{round_}")
                assert row is not None and row.id is not None
                ids.append(row.id)
    return ids


def make_sender(fake: FakeTelegram, db: Database, tmp_path: Path, **telegram) -> Sender:
    settings = Settings(
        app={"data_dir": tmp_path},
        telegram={"bot_token": fake.token, "api_url": fake.url, **telegram},
        _env_file=None,  # type: ignore[call-arg]
    )
    api = TelegramAPIServer.from_base(fake.url)
    bot = Bot(fake.token, session=AiohttpSession(api=api))
    return Sender(bot, Services.build(settings, db))


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list(await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


async def run_until_sent(sender: Sender, db: Database, count: int) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(sender.run())
    try:
        while True:
            done = [r for r in await rows(db) if r.status is OutboxStatus.SENT]
            if len(done) == count:
                return loop.time() - started
            assert loop.time() - started < WAIT_S, f"{len(done)} of {count} sent"
            await asyncio.sleep(0.1)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        await sender.bot.session.close()


async def test_a_429_storm_during_a_broadcast_loses_and_repeats_nothing(
    db: Database, tmp_path: Path
):
    people = [(await add_person(db, 700 + i, f"P{i}", [Role.DRIVER]))[1] for i in range(10)]
    await broadcast(db, people, per_member=4)
    async with FakeTelegram() as fake:
        fake.flood_limit(per_second=15, retry_after=1)
        fake.fail_next("sendMessage", code=429, retry_after=1, times=6)
        sender = make_sender(fake, db, tmp_path, rate_per_s=30, chat_rate_per_s=10)
        await run_until_sent(sender, db, 40)
        refused = [c for c in fake.calls_to("sendMessage") if c.error_code == 429]
        delivered = Counter(c.chat_id for c in fake.calls_to("sendMessage") if c.ok)
        sends = [c.at for c in fake.calls_to("sendMessage")]
    assert len(refused) >= 6
    for stop in refused:  # after a 429 everything waits retry_after (1 s), bar sends in flight
        assert not [at for at in sends if stop.at + 0.1 < at < stop.at + 0.9]
    assert delivered == {700 + i: 4 for i in range(10)}
    final = await rows(db)
    assert {r.status for r in final} == {OutboxStatus.SENT}
    assert max(r.attempts for r in final) == 1  # waiting out a 429 is not a failed attempt


async def test_chat_rate_is_respected(db: Database, tmp_path: Path):
    _, member = await add_person(db, 720, "Solo", [Role.DRIVER])
    await broadcast(db, [member], per_member=4)
    async with FakeTelegram() as fake:
        sender = make_sender(fake, db, tmp_path, chat_rate_per_s=2)
        await run_until_sent(sender, db, 4)
        times = [c.at for c in fake.calls_to("sendMessage") if c.ok]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4 and min(gaps) >= 0.45  # 2 a second: 0.5 s apart (timer slack)


async def test_a_blocked_chat_is_undeliverable_and_dispatchers_are_told(
    db: Database, tmp_path: Path
):
    _, customer = await add_person(db, 730, "Kim", [Role.CUSTOMER])
    _, boss = await add_person(db, 731, "Boss", [Role.DISPATCHER])
    await broadcast(db, [customer], per_member=3)
    async with FakeTelegram() as fake:
        fake.block(730)
        sender = make_sender(fake, db, tmp_path)
        task = asyncio.create_task(sender.run())
        for _ in range(100):
            if fake.sent_to(731):
                break
            await asyncio.sleep(0.1)
        sender.stop()
        await asyncio.wait_for(task, 10)
        await sender.bot.session.close()
        assert "Kim blocked the bot" in (fake.sent_to(731)[0].text or "")
        assert len(fake.sent_to(731)) == 1  # told once, not once per message
    final = {r.recipient_member_id: [] for r in await rows(db)}
    for r in await rows(db):
        final[r.recipient_member_id].append(r.status)
    assert final[customer.id] == [OutboxStatus.DEAD] * 3
    assert final[boss.id] == [OutboxStatus.SENT]
    async with db.sessions() as session:
        kim = await session.get(Member, customer.id)
    assert kim is not None and kim.telegram_blocked_at is not None


async def test_a_restart_neither_repeats_nor_skips(db: Database, tmp_path: Path):
    people = [(await add_person(db, 740 + i, f"R{i}", [Role.DRIVER]))[1] for i in range(5)]
    await broadcast(db, people, per_member=4)
    async with FakeTelegram() as fake:
        first = make_sender(fake, db, tmp_path, chat_rate_per_s=2)
        task = asyncio.create_task(first.run())
        for _ in range(100):
            if len([c for c in fake.calls_to("sendMessage") if c.ok]) >= 6:
                break
            await asyncio.sleep(0.05)
        first.stop()  # stopping: messages in flight finish, the rest are handed back
        await asyncio.wait_for(task, 10)
        await first.bot.session.close()
        sent_before = len([c for c in fake.calls_to("sendMessage") if c.ok])
        assert 6 <= sent_before < 20
        assert {r.status for r in await rows(db)} <= {OutboxStatus.SENT, OutboxStatus.PENDING}

        second = make_sender(fake, db, tmp_path, chat_rate_per_s=2)
        await run_until_sent(second, db, 20)
        delivered = Counter(c.chat_id for c in fake.calls_to("sendMessage") if c.ok)
    assert delivered == {740 + i: 4 for i in range(5)}
