"""The autopilot in a running service, through the real Telegram adapter against the fake Bot
API: nobody types a dispatch command, orders posted to the REST API are assigned, and a driver's
first stop goes out for delivery whatever the order of /shift, sharing and the assignment."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.clock import system_clock
from core.db import Database
from core.merchants import apikeys
from core.models import Customer, Driver, Order, OrderStatus, Role
from core.orders.lifecycle import SYSTEM
from core.orders.service import OrderDraft, create_order
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import Bot, add_person, running_bot

S = OrderStatus
BERLIN = (52.5200, 13.4050)
WAIT_S = 20.0


async def post_order(bot: Bot, secret: str, ref: str, at: tuple[float, float], **extra: Any) -> int:
    now = system_clock()
    body = {
        "external_ref": ref,
        "customer_name": f"Customer {ref}",
        "address": f"{ref} street 1",
        "lat": at[0],
        "lon": at[1],
        "time_windows": [{"start": now.isoformat(), "end": (now + timedelta(hours=6)).isoformat()}],
        **extra,
    }
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=f"{bot.base_url}/api/v1", headers=headers) as api:
        started = time.monotonic()
        created = await api.post("/orders", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "new"  # placed after the request, not inside it
        assert time.monotonic() - started < 5.0
    return created.json()["id"]


async def order_now(db: Database, order_id: int) -> Order:
    async with db.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order


async def until(db: Database, order_id: int, status: OrderStatus) -> Order:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        order = await order_now(db, order_id)
        if order.status is status:
            return order
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"order {order_id} is {order.status}, not {status}")
        await asyncio.sleep(0.05)


async def driver_id(db: Database, member_id: int) -> int:
    async with db.sessions() as session:
        statement = select(Driver.id).where(Driver.member_id == member_id)
        return (await session.exec(statement)).one()  # type: ignore[return-value]


def share(person: dict[str, Any], at: tuple[float, float], message_id: int) -> dict[str, Any]:
    return tu.location(person, *at, live_period=8 * 3600, message_id=message_id)


async def test_an_api_order_is_assigned_and_its_customer_hears_on_the_way_with_nobody_typing(
    db: Database, tmp_path: Path
):
    ana, ana_member = await add_person(db, 801, "Ana Driver", [Role.DRIVER])
    ben, _ = await add_person(db, 802, "Ben Driver", [Role.DRIVER])
    await add_person(db, 803, "Bo Boss", [Role.DISPATCHER])
    _, cleo = await add_person(db, 804, "Cleo Customer", [])
    async with db.transaction() as session:  # she follows her orders in Telegram already
        session.add(Customer(name="Cleo Customer", phone="+4915112345678", member_id=cleo.id))
    _, secret = await apikeys.create_key(db, "shop")
    near_ana = (BERLIN[0] + 0.002, BERLIN[1] + 0.002)
    far = (BERLIN[0] + 0.08, BERLIN[1] + 0.12)
    async with running_bot(db, tmp_path) as bot:
        for person, at, message_id in ((ana, BERLIN, 50), (ben, far, 51)):
            await bot.send(tu.command(person, "/shift"))
            await bot.send(share(person, at, message_id))
        sent_before = {chat: len(bot.texts(chat)) for chat in (801, 802, 803)}

        order_id = await post_order(
            bot, secret, "SHOP-1", near_ana, customer_phone="+4915112345678"
        )
        order = await until(db, order_id, S.OUT_FOR_DELIVERY)
        assert order.driver_id == await driver_id(db, ana_member.id)
        await bot.outbox_settled()
        heard = [text for text in bot.texts(804) if "is on the way" in text]
        assert len(heard) == 1, bot.texts(804)
        assert heard[0].startswith("Ana is on the way with your order SHOP-1.")
        assert re.search(r"Follow it live: http://127\.0\.0\.1:\d+/t/[\w-]{24}", heard[0])
        assert len(bot.texts(803)) == sent_before[803]  # no alert: nothing went wrong
        assert any("SHOP-1" in text for text in bot.texts(801)[sent_before[801] :])
        assert len(bot.texts(802)) == sent_before[802]


STEPS = ("shift", "share", "assign")


@pytest.mark.parametrize("steps", list(itertools.permutations(STEPS)), ids="-".join)
async def test_the_first_stop_goes_out_whatever_the_order_of_shift_sharing_and_assignment(
    db: Database, tmp_path: Path, steps: tuple[str, ...]
):
    ana, ana_member = await add_person(db, 811, "Ana Driver", [Role.DRIVER])
    _, secret = await apikeys.create_key(db, "shop")
    orders: list[int] = []
    async with running_bot(db, tmp_path) as bot:
        for step in steps:
            if step == "shift":
                await bot.send(tu.command(ana, "/shift"))
            elif step == "share":
                await bot.send(share(ana, BERLIN, 60))
            else:
                at = (BERLIN[0] + 0.003, BERLIN[1])
                orders.append(await post_order(bot, secret, "R-1", at))
                await asyncio.sleep(0.3)  # the worker has its chance to place it
        order = await until(db, orders[0], S.OUT_FOR_DELIVERY)
        assert order.driver_id == await driver_id(db, ana_member.id)
        second = await post_order(bot, secret, "R-2", (BERLIN[0] + 0.004, BERLIN[1]))
        await until(db, second, S.ASSIGNED)  # she is on her way to the first: this one waits
        await asyncio.sleep(0.3)
        assert (await order_now(db, second)).status is S.ASSIGNED


async def test_start_route_button_sends_the_first_stop_out(db: Database, tmp_path: Path):
    ana, _ = await add_person(db, 821, "Ana Driver", [Role.DRIVER])
    _, secret = await apikeys.create_key(db, "shop")
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await bot.send(tu.location(ana, *BERLIN))  # a pin, not live: she is placeable, not off
        order_id = await post_order(bot, secret, "B-1", (BERLIN[0] + 0.003, BERLIN[1]))
        await until(db, order_id, S.ASSIGNED)
        await asyncio.sleep(0.3)
        assert (await order_now(db, order_id)).status is S.ASSIGNED
        await bot.outbox_settled()  # her "New stop" message is in before the route's answers
        await bot.send(tu.command(ana, "/route"))
        header = next(c for c in bot.fake.sent_to(821) if (c.text or "").startswith("Your route"))
        await bot.tap(ana, 821, header, "Start route")
        assert (await order_now(db, order_id)).status is S.OUT_FOR_DELIVERY
        assert bot.texts(821)[-1].startswith("On your way: B-1, B-1 street 1.")
        await bot.tap(ana, 821, header, "Start route")  # a second tap changes nothing
        assert bot.texts(821)[-1] == "You are on your way already; finish that stop first."


async def test_manual_mode_leaves_api_orders_waiting(db: Database, tmp_path: Path):
    ana, _ = await add_person(db, 831, "Ana Driver", [Role.DRIVER])
    _, secret = await apikeys.create_key(db, "shop")
    async with running_bot(db, tmp_path, dispatch={"mode": "manual"}) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await bot.send(share(ana, BERLIN, 70))
        order_id = await post_order(bot, secret, "M-1", (BERLIN[0] + 0.003, BERLIN[1]))
        await asyncio.sleep(1.0)
        assert (await order_now(db, order_id)).status is S.NEW


async def alerts_to(bot: Bot, chat: int) -> list[Any]:
    await bot.outbox_settled()
    return [c for c in bot.fake.sent_to(chat) if "could not be assigned" in (c.text or "")]


async def test_an_unassignable_order_alerts_once_and_its_three_buttons_work(
    db: Database, tmp_path: Path
):
    boss, _ = await add_person(db, 841, "Bo Boss", [Role.DISPATCHER])
    ana, ana_member = await add_person(db, 842, "Ana Driver", [Role.DRIVER])
    _, secret = await apikeys.create_key(db, "shop")
    async with running_bot(db, tmp_path) as bot:
        # on shift, but nobody can plan her: she shares no location and has no depot (with
        # nobody on shift at all the orders would wait for the first driver, without alerts)
        await bot.send(tu.command(ana, "/shift"))
        first = await post_order(bot, secret, "U-1", BERLIN)
        second = await post_order(bot, secret, "U-2", BERLIN)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while len(await alerts_to(bot, 841)) < 2:
            assert asyncio.get_running_loop().time() < deadline, bot.texts(841)
            await asyncio.sleep(0.05)
        await bot.app.state.services.autopilot.plan_day()  # retried at planning time: no new alert
        await asyncio.sleep(0.5)
        alerts = await alerts_to(bot, 841)
        assert [a.text for a in alerts] == [
            "⚠️ Order U-1 could not be assigned: no driver on shift can take it.",
            "⚠️ Order U-2 could not be assigned: no driver on shift can take it.",
        ]
        assert [text for text, _ in bot.buttons(alerts[0])] == [
            "Assign",
            "Change window",
            "Cancel order",
        ]
        assert (await order_now(db, first)).status is S.NEW

        # change window: the next slots; the one chosen is saved, the order waits for its day
        await bot.tap(boss, 841, alerts[0], "Change window")
        slots = bot.last(841)
        assert slots.text == "New delivery window for order U-1:"
        await bot.tap(boss, 841, slots, bot.buttons(slots)[0][0])
        assert re.fullmatch(
            r"Order U-1 now has the window .+; it is being placed again\.", bot.texts(841)[-1]
        )
        async with db.sessions() as session:
            order = await session.get(Order, first)
            assert order is not None and order.due_date is not None
        assert order.due_date > system_clock().date() and order.status is S.NEW

        # assign to…: the drivers, then her
        await bot.tap(boss, 841, alerts[0], "Assign")
        await bot.tap(boss, 841, bot.last(841), "Ana Driver")
        assert bot.texts(841)[-1] == "Order U-1 → Ana Driver."
        assigned = await order_now(db, first)
        assert assigned.status is S.ASSIGNED
        assert assigned.driver_id == await driver_id(db, ana_member.id)

        # cancel: asked to confirm, then cancelled
        await bot.tap(boss, 841, alerts[1], "Cancel order")
        await bot.tap(boss, 841, bot.last(841), "Yes, cancel it")
        assert bot.texts(841)[-1] == "Order U-2 is cancelled."
        assert (await order_now(db, second)).status is S.CANCELLED
        assert len(await alerts_to(bot, 841)) == 2  # nothing alerted twice


async def test_orders_committed_while_no_service_ran_are_placed_when_one_starts(
    db: Database, tmp_path: Path
):
    ana, ana_member = await add_person(db, 851, "Ana Driver", [Role.DRIVER])
    _, secret = await apikeys.create_key(db, "shop")
    async with running_bot(db, tmp_path, dispatch={"mode": "manual"}) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await bot.send(tu.location(ana, *BERLIN))
        ids = [
            await post_order(bot, secret, f"D-{k}", (BERLIN[0] + 0.001 * k, BERLIN[1]))
            for k in range(3)
        ]
    # the service stopped (as a crash would stop it) with three orders never placed
    assert {(await order_now(db, i)).status for i in ids} == {S.NEW}
    async with running_bot(db, tmp_path) as bot:
        for order_id in ids:
            order = await until(db, order_id, S.ASSIGNED)
            assert order.driver_id == await driver_id(db, ana_member.id)


async def test_a_dispatchers_assignment_to_a_sharing_driver_sends_her_off(
    db: Database, tmp_path: Path
):
    boss, _ = await add_person(db, 861, "Bo Boss", [Role.DISPATCHER])
    ana, _ = await add_person(db, 862, "Ana Driver", [Role.DRIVER])
    async with running_bot(db, tmp_path) as bot:
        await bot.send(tu.command(ana, "/shift"))
        await bot.send(share(ana, BERLIN, 90))
        draft = OrderDraft(external_ref="P-1", customer_name="No Pin", address="Somewhere 1")
        order = await create_order(db, draft, SYSTEM, source="test")  # no map point: not placed
        await bot.outbox_settled()
        assert (await order_now(db, order.id)).status is S.NEW
        await bot.send(tu.command(boss, "/assign", "P-1 ana"))
        assert bot.texts(861)[-1] == "Order P-1 → Ana Driver."
        await until(db, order.id, S.OUT_FOR_DELIVERY)
