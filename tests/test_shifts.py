"""Ending a shift: one transaction that either sends her unstarted orders back to dispatch, or —
with a parcel on board — changes nothing, names the parcels and alerts the dispatchers once.
In core, and through the real Telegram adapter against the fake Bot API."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.dispatch.planner import Planner
from core.drivers.loading import load_route
from core.drivers.shifts import ShiftEnd, end_shift, start_shift
from core.models import (
    Driver,
    Order,
    OrderStatus,
    OutboxMessage,
    Role,
    RouteStop,
    Shift,
    ShiftState,
    open_stop,
)
from core.orders.lifecycle import SYSTEM, Actor
from core.orders.service import OrderDraft, create_order
from core.routing.travel import StraightLine
from tests.factories import add_driver, add_member, move, snapshot
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
ANA, DORA = 901, 902


async def orders_of(db: Database, ids: list[int]) -> list[Order]:
    async with db.sessions() as session:
        statement = select(Order).where(col(Order.id).in_(ids)).order_by(col(Order.id))
        return list(await session.exec(statement))


async def shift_state(db: Database, driver_id: int) -> ShiftState:
    async with db.sessions() as session:
        driver = await session.get(Driver, driver_id)
        assert driver is not None
        return driver.shift_state


async def open_stops(db: Database, ids: list[int]) -> list[RouteStop]:
    async with db.sessions() as session:
        statement = select(RouteStop).where(col(RouteStop.order_id).in_(ids), open_stop())
        return list(await session.exec(statement))


async def alerts(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        statement = select(OutboxMessage).where(
            OutboxMessage.template == "dispatcher.shift_end_on_board"
        )
        return list(await session.exec(statement))


async def driver_at_work(db: Database, member_id: int) -> Driver:
    """On shift, seen a minute ago in Berlin (not sharing live: no stop starts by itself)."""
    async with db.transaction() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member_id))).one()
        driver.shift_state, driver.shift_started_at = ShiftState.ON, system_clock()
        driver.last_lat, driver.last_lon, driver.last_seen_at = 52.52, 13.40, system_clock()
        session.add(driver)
        return driver


async def parcels(db: Database, refs: list[str], *, pickup: bool = False) -> list[Order]:
    made = []
    for k, ref in enumerate(refs):
        draft = OrderDraft(
            external_ref=ref, customer_name=f"C {ref}", address=f"{ref} street",
            lat=52.52 + k / 200, lon=13.41, proof_required="none",
            pickup_address="Bakery" if pickup else None,
            pickup_lat=52.51 if pickup else None, pickup_lon=13.39 if pickup else None,
        )  # fmt: skip
        made.append(await create_order(db, draft, SYSTEM, source="test"))
    return made


def planner(db: Database) -> Planner:
    return Planner(db, StraightLine(speed_kmh=36, detour=1.0))


async def test_core_refuses_while_a_parcel_is_on_board_and_alerts_once(db: Database):
    _, member = await add_person(db, ANA, "Ana Driver", [Role.DRIVER])
    await add_member(db, "Dora", [Role.DISPATCHER], telegram_chat_id=DORA)
    driver = await driver_at_work(db, member.id)
    carried, waiting = await parcels(db, ["A-1004", "A-1005"], pickup=True)
    for order in (carried, waiting):
        await move(db, order.id, S.ASSIGNED, driver.id)
    await move(db, carried.id, S.PICKED_UP)
    before = [await snapshot(db, o.id) for o in (carried, waiting)]
    ana = Actor.member(member.id)
    for _ in range(2):  # she taps twice: one alert
        result = await end_shift(db, driver.id, ana, max_attempts=3)
        assert result == ShiftEnd(ended=False, on_board=("A-1004",))
    assert [await snapshot(db, o.id) for o in (carried, waiting)] == before
    assert await shift_state(db, driver.id) is ShiftState.ON
    [alert] = await alerts(db)
    assert alert.params == {"driver_id": driver.id, "refs": "A-1004"}


async def test_parcels_she_loaded_when_she_set_off_are_on_board_too(db: Database):
    _, member = await add_person(db, ANA, "Ana Driver", [Role.DRIVER])
    await add_member(db, "Dora", [Role.DISPATCHER], telegram_chat_id=DORA)
    driver = await driver_at_work(db, member.id)
    made = await parcels(db, ["L-1", "L-2"])
    for order in made:
        await planner(db).assign_manually(order.id, driver.id, SYSTEM)
    ana = Actor.member(member.id)
    assert await load_route(db, driver.id, ana, now=system_clock()) == [o.id for o in made]
    before = [await snapshot(db, o.id) for o in made]
    result = await end_shift(db, driver.id, ana, max_attempts=3)
    assert result == ShiftEnd(ended=False, on_board=("L-1", "L-2"))
    assert [await snapshot(db, o.id) for o in made] == before
    assert await shift_state(db, driver.id) is ShiftState.ON
    [alert] = await alerts(db)
    assert alert.params == {"driver_id": driver.id, "refs": "L-1, L-2"}


async def test_core_sends_unstarted_orders_back_in_one_go(db: Database):
    _, member = await add_person(db, ANA, "Ana Driver", [Role.DRIVER])
    driver = await driver_at_work(db, member.id)
    made = await parcels(db, ["B-1", "B-2", "B-3"])
    ids = [o.id for o in made]
    for order in made:
        await planner(db).assign_manually(order.id, driver.id, SYSTEM)
    assert len(await open_stops(db, ids)) == 3
    result = await end_shift(db, driver.id, Actor.member(member.id), max_attempts=3)
    assert result == ShiftEnd(ended=True, returned=("B-1", "B-2", "B-3"))
    for order in await orders_of(db, ids):
        assert (order.status, order.driver_id, order.driver_locked) == (S.NEW, None, False)
    assert await open_stops(db, ids) == []
    assert await shift_state(db, driver.id) is ShiftState.OFF

    later = (await parcels(db, ["B-4"]))[0]  # given to her while off shift: a stale tap keeps it
    await move(db, later.id, S.ASSIGNED, driver.id)
    assert await end_shift(db, driver.id, SYSTEM, max_attempts=3) == ShiftEnd(ended=True)
    assert (await orders_of(db, [later.id]))[0].driver_id == driver.id


async def test_ending_a_shift_in_chat_with_a_parcel_on_board(db: Database, tmp_path: Path):
    """A picked-up parcel and a later, unstarted order: the shift stays on, she is told which
    parcel to finish, the dispatcher hears once, and the later order stays hers."""
    ana, member = await add_person(db, ANA, "Ana Driver", [Role.DRIVER])
    await add_person(db, DORA, "Dora Boss", [Role.DISPATCHER])
    driver = await driver_at_work(db, member.id)
    carried, waiting = await parcels(db, ["A-1004", "A-1005"], pickup=True)
    for order in (carried, waiting):
        await move(db, order.id, S.ASSIGNED, driver.id)
    await move(db, carried.id, S.PICKED_UP)
    async with running_bot(db, tmp_path) as bot:
        await bot.outbox_settled()  # her "new stop" messages first, so replies come last
        for _ in range(2):
            await bot.send(tu.command(ana, "/shift"))
            await bot.tap(ana, ANA, bot.last(ANA), "End shift")
            assert bot.texts(ANA)[-1] == (
                "You still have parcels on board: A-1004. Deliver them or mark them failed, then "
                "end your shift. Your shift goes on; the dispatchers know."
            )
        await bot.outbox_settled()
        assert bot.texts(DORA) == [
            "⚠️ Ana Driver asked to end the shift with parcels on board: A-1004. The shift goes "
            "on until they are delivered or marked failed."
        ]
    assert await shift_state(db, driver.id) is ShiftState.ON
    statuses = [(o.status, o.driver_id) for o in await orders_of(db, [carried.id, waiting.id])]
    assert statuses == [(S.PICKED_UP, driver.id), (S.ASSIGNED, driver.id)]


async def test_ending_a_shift_in_chat_sends_unstarted_orders_back(db: Database, tmp_path: Path):
    ana, member = await add_person(db, ANA, "Ana Driver", [Role.DRIVER])
    await add_person(db, DORA, "Dora Boss", [Role.DISPATCHER])
    driver = await driver_at_work(db, member.id)
    made = await parcels(db, ["C-1", "C-2"])
    ids = [o.id for o in made]
    await planner(db).assign_manually(made[0].id, driver.id, SYSTEM)  # locked, on her route
    await move(db, made[1].id, S.ASSIGNED, driver.id)
    async with running_bot(db, tmp_path) as bot:
        await bot.outbox_settled()
        await bot.send(tu.command(ana, "/shift"))
        assert bot.texts(ANA)[-1] == "You are on shift. End it now?"
        await bot.tap(ana, ANA, bot.last(ANA), "End shift")
        assert bot.texts(ANA)[-1] == "Your shift has ended. Thank you! 2 stops go back to dispatch."
    for order in await orders_of(db, ids):
        assert (order.status, order.driver_id, order.driver_locked) == (S.NEW, None, False)
    assert await open_stops(db, ids) == []
    assert await shift_state(db, driver.id) is ShiftState.OFF


async def test_every_spell_on_shift_is_kept_for_the_reports(db: Database):
    driver = await add_driver(db, "Ana Driver", ANA)
    spells = select(Shift).where(Shift.driver_id == driver.id).order_by(col(Shift.id))
    before = system_clock()
    await start_shift(db, driver.id)
    await start_shift(db, driver.id)  # again while on shift: the same spell
    async with db.sessions() as session:
        [first] = list(await session.exec(spells))
    assert first.ended_at is None and first.started_at >= before
    carried = (await parcels(db, ["A-2001"], pickup=True))[0]
    await move(db, carried.id, S.ASSIGNED, driver.id)
    await move(db, carried.id, S.PICKED_UP)
    refused = await end_shift(db, driver.id, SYSTEM, max_attempts=3)
    assert not refused.ended
    async with db.sessions() as session:
        [still] = list(await session.exec(spells))
    assert still.ended_at is None  # a refused end leaves the spell open
    await move(db, carried.id, S.CANCELLED)
    assert (await end_shift(db, driver.id, SYSTEM, max_attempts=3)).ended
    await start_shift(db, driver.id)
    async with db.sessions() as session:
        first, second = list(await session.exec(spells))
    assert first.ended_at is not None and first.started_at < first.ended_at <= second.started_at
    assert second.ended_at is None
