"""Running the Telegram channel, joining by invite or subscribe link, roles, repeats, secrets."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisDown
from sqlmodel import select

from core.clock import system_clock
from core.db import Database
from core.models import Customer, Invite, Member, Role
from core.orders.lifecycle import SYSTEM
from core.orders.service import OrderDraft, create_order
from core.people import invites
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import SECRET, add_person, roles_of, running_bot


async def test_startup_sets_the_webhook_and_the_default_menu(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path) as bot:
        assert bot.fake.webhook is not None
        assert bot.fake.webhook["url"] == f"{bot.base_url}/webhooks/telegram"
        assert bot.fake.webhook["secret_token"] == SECRET
        [menu] = [c for c in bot.fake.calls_to("setMyCommands") if c.ok]
        names = [c["command"] for c in menu.params["commands"]]
        assert names == ["start", "help"]


async def test_invite_makes_a_driver_once(db: Database, tmp_path: Path):
    _, token = await invites.create_invite(db, Role.DRIVER, timedelta(days=1))
    ana = tu.user(501, "Ana")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/start", token))
        assert "You are now a driver" in bot.texts(501)[0]
        assert await roles_of(db, 501) == {Role.DRIVER}
        menus = [c for c in bot.fake.calls_to("setMyCommands") if c.ok and "scope" in c.params]
        chat_menu = [c for c in menus if c.params["scope"].get("chat_id") == 501]
        assert [c["command"] for c in chat_menu[-1].params["commands"]] == [
            "shift",
            "route",
            "stops",
            "hours",
            "help",
        ]

        ben = tu.user(502, "Ben")  # the same link again: used
        await bot.send(tu.command(ben, "/start", token))
        assert bot.texts(502) == ["This invite has been used already. Ask for a new one."]
        assert await roles_of(db, 502) == set()


async def test_expired_and_unknown_invites_give_no_role(db: Database, tmp_path: Path):
    invite, token = await invites.create_invite(db, Role.DISPATCHER, timedelta(minutes=1))
    async with db.transaction() as session:
        row = await session.get(Invite, invite.id)
        assert row is not None
        row.expires_at = system_clock() - timedelta(seconds=1)
        session.add(row)
    cleo = tu.user(503, "Cleo")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(cleo, "/start", token))
        await bot.send(tu.command(cleo, "/start", "not-a-real-token-at-all"))
        assert bot.texts(503) == [
            "This invite has expired. Ask for a new one.",
            "That link is not valid (it may be mistyped or very old). "
            "Ask the sender for a new one.",
        ]
    assert await roles_of(db, 503) == set()


async def test_plain_start_explains_the_bot(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(tu.user(504, "Dan"), "/start"))
        [text] = bot.texts(504)
        assert "delivery assistant" in text and "open the link" in text


async def test_customer_subscribes_by_order_link_and_hears_updates(db: Database, tmp_path: Path):
    order = await create_order(
        db,
        OrderDraft(customer_name="Eva Long", address="Main St 1", lat=52.5, lon=13.4),
        SYSTEM,
        source="test",
    )
    eva = tu.user(505, "Eva")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(eva, "/start", order.tracking_token))
        [text] = bot.texts(505)
        assert f"updates about order #{order.id}" in text and "new" in text
        assert f"/t/{order.tracking_token}" in text
        async with db.sessions() as session:
            customer = await session.get(Customer, order.customer_id)
            member = (
                await session.exec(select(Member).where(Member.telegram_user_id == 505))
            ).one()
        assert customer is not None and customer.member_id == member.id
        assert await roles_of(db, 505) == {Role.CUSTOMER}

        await bot.send(tu.message(eva, "where is my order?"))
        assert f"#{order.id}: new." in bot.texts(505)[-1]


async def test_an_update_delivered_twice_is_processed_once(db: Database, tmp_path: Path):
    _, token = await invites.create_invite(db, Role.DRIVER, timedelta(days=1))
    update = tu.command(tu.user(506, "Fay"), "/start", token, update_id=777001)
    async with running_bot(db, tmp_path) as bot:
        await bot.send(update)
        await bot.send(update)
        assert len(bot.texts(506)) == 2  # "welcome" + the help, once; no "used already"
        assert all("used already" not in text for text in bot.texts(506))


async def test_webhook_refuses_a_wrong_or_missing_secret(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path) as bot:
        update = tu.command(tu.user(507, "Gus"), "/start", update_id=5)
        assert await bot.fake.deliver_webhook(update, secret="wrong") == 401
        assert await bot.fake.deliver_webhook(update, secret=None) == 401
        async with aiohttp.ClientSession() as http:  # and junk with the right secret
            async with http.post(
                f"{bot.base_url}/webhooks/telegram",
                data=b"{not json",
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ) as response:
                assert response.status == 400
            async with http.post(
                f"{bot.base_url}/webhooks/telegram",
                data=json.dumps({"hello": 1}),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ) as response:
                assert response.status == 400
        assert bot.fake.sent_to(507) == []
        await bot.send(update)  # the same update, properly sent, is processed
        assert len(bot.texts(507)) == 1


async def test_a_command_outside_your_role_is_refused(db: Database, tmp_path: Path, caplog):
    hana, _ = await add_person(db, 508, "Hana", [Role.CUSTOMER])
    ivo, _ = await add_person(db, 509, "Ivo", [Role.DRIVER])
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(hana, "/dispatch"))
        await bot.send(tu.command(ivo, "/neworder"))
        await bot.send(tu.message(ivo, "blah"))
    assert bot.texts(508) == [
        "Sorry, /dispatch is for dispatchers. Type /help to see what you can do."
    ]
    assert (
        bot.texts(509)[0]
        == "Sorry, /neworder is for dispatchers. Type /help to see what you can do."
    )
    assert (
        bot.texts(509)[1].startswith("I did not understand that.") and "/shift" in bot.texts(509)[1]
    )
    assert "refused /dispatch" in caplog.text


async def test_long_polling_answers_updates(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path, mode="polling") as bot:
        assert bot.fake.webhook is None
        bot.fake.push_update(tu.command(tu.user(510, "Jo"), "/start"))
        for _ in range(100):  # at most 10 s
            if bot.fake.sent_to(510):
                break
            await asyncio.sleep(0.1)
        assert "delivery assistant" in bot.texts(510)[0]


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_with_redis_conversations_and_repeats_are_shared(db: Database, tmp_path: Path):
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    except RedisDown:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    boss, _ = await add_person(db, 520, "Bo", [Role.DISPATCHER])
    update = tu.command(boss, "/neworder", update_id=880001)
    try:
        async with running_bot(db, tmp_path, redis_url=REDIS_URL) as bot:
            await bot.send(update)
            await bot.send(tu.message(boss, "Lena", update_id=880002))
        keys = {key.decode() for key in await redis.keys("*")}
        assert "lastmile:tg:update:880001" in keys
        assert "lastmile:conv:telegram:520" in keys  # the conversation's state
        # a second instance (a restart, or another process) shares both
        async with running_bot(db, tmp_path, redis_url=REDIS_URL) as again:
            await again.send(update)  # seen already: ignored
            await again.send(tu.message(boss, "+49 151 23456789", update_id=880003))
            assert again.texts(520) == ["Delivery address? Type it, or send a location pin."]
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_blocking_the_bot_stops_messages_and_tells_dispatchers(db: Database, tmp_path: Path):
    kim, member = await add_person(db, 530, "Kim", [Role.CUSTOMER])
    await add_person(db, 531, "Boss", [Role.DISPATCHER])
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.my_chat_member_blocked(kim))
        await bot.outbox_settled()
        assert bot.texts(531) == ["⚠️ Kim blocked the bot, so they no longer get messages."]
        async with db.sessions() as session:
            blocked = await session.get(Member, member.id)
        assert blocked is not None and blocked.telegram_blocked_at is not None
        await bot.send(tu.message(kim, "where is my order?"))  # writing again unblocks
        async with db.sessions() as session:
            back = await session.get(Member, member.id)
        assert back is not None and back.telegram_blocked_at is None


@pytest.mark.filterwarnings("ignore:Detected unknown update type")  # aiogram's, for the last one
async def test_an_invalid_update_answers_400_and_one_we_do_not_handle_200(
    db: Database, tmp_path: Path
):
    gus = tu.user(511, "Gus")
    start = tu.command(gus, "/start", update_id=61)
    no_chat = {
        "update_id": 61,
        "message": {k: v for k, v in start["message"].items() if k != "chat"},
    }
    invalid = [
        {"update_id": 60, "message": "x"},
        no_chat,
        {"update_id": 62, "callback_query": {"id": "1", "data": "x"}},  # no from, no chat_instance
        {"update_id": 63, "edited_message": {**start["message"], "date": "yesterday"}},
    ]
    channel_post = {
        "message_id": 5,
        "date": 1767225600,
        "chat": {"id": -1001234567890, "title": "News", "type": "channel"},
        "text": "hello",
    }
    unhandled = [
        {"update_id": 70, "channel_post": channel_post},
        {"update_id": 71, "some_future_kind": {"anything": 1}},
    ]
    async with running_bot(db, tmp_path) as bot:
        url = f"{bot.base_url}/webhooks/telegram"
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with aiohttp.ClientSession() as http:
            for body in invalid:
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == 400, (body, response.status)
                    assert "not a valid Telegram update" in (await response.json())["detail"]
            for body in unhandled:
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == 200, (body, response.status)
        assert bot.fake.sent_to(511) == []  # nothing was processed
        assert not [c for c in bot.fake.calls if c.method.startswith("send")]
        await bot.send(start)  # the same update_id as the invalid one, valid now: processed
        assert "delivery assistant" in bot.texts(511)[0]
