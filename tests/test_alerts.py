"""Exception alerts to dispatchers (core.notify.alerts) on a real database with a fake clock:
each condition is told once, cleared when it clears, and told again when it comes back."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from core.config import AlertsSettings, Settings
from core.db import Database
from core.models import Driver, JobRun, OpenAlert, OrderStatus, OutboxMessage, Role, ShiftState
from core.notify.alerts import IDLE, UNASSIGNED, Alerts
from core.notify.messages import render
from tests.factories import DAY, add_driver, add_member, move, new_order
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
NINE = DAY.replace(hour=9)  # the factory's orders are to be delivered 09:00–12:00 UTC


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def alerts_sent(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        statement = select(OutboxMessage).where(
            col(OutboxMessage.template).startswith("dispatcher.")
        )
        return list(await session.exec(statement.order_by(col(OutboxMessage.id))))


async def open_alerts(db: Database) -> set[tuple[str, int]]:
    async with db.sessions() as session:
        return {(a.kind, a.subject) for a in await session.exec(select(OpenAlert))}


async def on_shift(
    db: Database, driver_id: int, state: ShiftState = ShiftState.ON, since: datetime | None = None
) -> None:
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id)
        assert driver is not None
        driver.shift_state = state
        driver.shift_started_at = since
        session.add(driver)


async def test_an_unassigned_order_near_its_window_is_told_once_cleared_and_told_again(
    db: Database, tmp_path: Path
):
    dora = await add_member(db, "Dora Dispatcher", [Role.DISPATCHER], telegram_chat_id=702)
    driver = await add_driver(db, "Ana Driver", 601)
    order = await new_order(db, ref="A-1")
    assert order.id and driver.id
    clock = Clock(NINE - timedelta(minutes=31))
    alerts = Alerts(db, AlertsSettings(unassigned_minutes=30), "UTC", clock=clock)
    assert await alerts.check() == []  # 31 minutes before its window: not yet

    clock.now = NINE - timedelta(minutes=30)
    # two instances checking at once: one of them tells
    both = await asyncio.gather(alerts.check(), alerts.check())
    assert sorted(both, key=len) == [[], [(UNASSIGNED, order.id)]]
    sent = await alerts_sent(db)
    assert [(r.recipient_member_id, r.template, r.order_id) for r in sent] == [
        (dora.id, "dispatcher.order_unassigned_soon", order.id)
    ]
    assert [a["action"] for a in sent[0].actions] == [
        "order.assign",
        "order.change_window",
        "order.cancel",
    ]
    settings = Settings(app={"data_dir": tmp_path}, _env_file=None)  # type: ignore[call-arg]
    text = (await render(db, sent[0], settings)).text
    assert text == "⏰ Order A-1 still has no driver. Time: Tue 24 Nov 09:00–12:00."

    for minutes in (29, 10, -5):  # while it holds: nobody is told again
        clock.now = NINE - timedelta(minutes=minutes)
        assert await alerts.check() == []
    assert len(await alerts_sent(db)) == 1

    await move(db, order.id, S.ASSIGNED, driver.id)
    assert await alerts.check() == []
    assert await open_alerts(db) == set()  # cleared

    await move(db, order.id, S.NEW)  # taken off the driver again: the condition is back
    assert await alerts.check() == [(UNASSIGNED, order.id)]
    assert len(await alerts_sent(db)) == 2
    clock.now = NINE + timedelta(hours=3)  # its window is over: cleared
    assert await alerts.check() == []
    assert await open_alerts(db) == set()


async def test_a_driver_on_shift_without_stops_while_orders_wait_is_told_once(
    db: Database, tmp_path: Path
):
    dora = await add_member(db, "Dora Dispatcher", [Role.DISPATCHER], telegram_chat_id=702)
    driver = await add_driver(db, "Ana Driver", 601)
    assert driver.id
    clock = Clock(NINE - timedelta(hours=2))  # the window is 2 h away: no unassigned alert
    alerts = Alerts(db, AlertsSettings(unassigned_minutes=30), "Europe/Berlin", clock=clock)
    await on_shift(db, driver.id, since=clock.now)
    assert await alerts.check() == []  # nothing waits

    first = await new_order(db, ref="A-1")
    await new_order(db, ref="A-2")
    assert first.id
    clock.now += timedelta(minutes=4)
    assert await alerts.check() == []  # her shift has just started: stops may be on the way
    clock.now += timedelta(minutes=1)
    assert await alerts.check() == [(IDLE, driver.id)]
    assert await alerts.check() == []
    sent = await alerts_sent(db)
    assert [(r.recipient_member_id, r.template, r.params) for r in sent] == [
        (dora.id, "dispatcher.driver_idle", {"driver_id": driver.id, "count": 2})
    ]
    settings = Settings(app={"data_dir": tmp_path}, _env_file=None)  # type: ignore[call-arg]
    assert (await render(db, sent[0], settings)).text == (
        "💤 Ana Driver is on shift with no stops while 2 orders wait for a driver. "
        "/dispatch assigns them."
    )

    await move(db, first.id, S.ASSIGNED, driver.id)  # she has a stop now
    assert await alerts.check() == []
    assert await open_alerts(db) == set()
    await move(db, first.id, S.CANCELLED)  # her only stop is gone, A-2 still waits
    assert await alerts.check() == [(IDLE, driver.id)]
    await on_shift(db, driver.id, ShiftState.OFF)  # off shift: cleared
    assert await alerts.check() == []
    assert await open_alerts(db) == set()
    assert len(await alerts_sent(db)) == 2


async def test_the_alert_reaches_dispatchers_in_telegram_with_an_assign_button(
    db: Database, tmp_path: Path
):
    """The scheduler's `alerts.check` in a running service: the dispatcher's chat gets the alert
    once, and its Assign button offers the drivers."""
    boss, _ = await add_person(db, 902, "Dora Dispatcher", [Role.DISPATCHER])
    await add_person(db, 903, "Ana Driver", [Role.DRIVER])
    order = await new_order(db, ref="A-1")
    now = [NINE - timedelta(minutes=20)]
    async with running_bot(db, tmp_path, clock=lambda: now[0], dispatch={"mode": "manual"}) as bot:
        await wait_for_checks(db, 1)
        await bot.outbox_settled()
        alert = bot.last(902)
        assert alert.text == "⏰ Order A-1 still has no driver. Time: Tue 24 Nov 09:00–12:00."
        assert [label for label, _ in bot.buttons(alert)] == [
            "Assign",
            "Change window",
            "Cancel order",
        ]
        now[0] += timedelta(minutes=1)
        bot.app.state.scheduler.wake()
        await wait_for_checks(db, 2)
        await bot.outbox_settled()
        assert len(bot.fake.sent_to(902)) == 1  # still unassigned: not told again
        await bot.tap(boss, 902, alert, "Assign")
        assert bot.last(902).text == "Who should take order A-1?"
        assert [label for label, _ in bot.buttons(bot.last(902))] == ["Ana Driver"]
    assert order.id is not None


async def test_an_unreachable_chat_is_told_once_per_spell(db: Database, tmp_path: Path):
    """(The third alert exists in core.people.members.chat_unreachable.) Blocked: told once,
    however many messages fail; the person writes again: cleared; blocked again: told again."""
    kim, _ = await add_person(db, 930, "Kim", [Role.CUSTOMER])
    await add_person(db, 931, "Boss", [Role.DISPATCHER])
    told = "⚠️ Kim blocked the bot, so they no longer get messages."
    async with running_bot(db, tmp_path, dispatch={"mode": "manual"}) as bot:
        await bot.send(tu.my_chat_member_blocked(kim))
        await bot.send(tu.my_chat_member_blocked(kim))  # the same spell
        await bot.outbox_settled()
        assert bot.texts(931) == [told]
        await bot.send(tu.message(kim, "where is my order?"))  # writing again ends the spell
        await bot.send(tu.my_chat_member_blocked(kim))
        await bot.outbox_settled()
        assert bot.texts(931) == [told, told]


async def wait_for_checks(db: Database, count: int, wait_s: float = 30.0) -> None:
    for _ in range(int(wait_s / 0.05)):
        async with db.sessions() as session:
            statement = select(JobRun).where(
                JobRun.job == "alerts.check", col(JobRun.finished_at).isnot(None)
            )
            if len(list(await session.exec(statement))) >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} run(s) of alerts.check did not finish within {wait_s} s")
