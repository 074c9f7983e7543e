"""The autopilot against a real database: orders placed right after they are committed (one by
insertion, many by one batch solve), durably (a dead worker's orders are placed by the next),
unassignable orders alerted once, later days waiting for their planning time, manual mode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel import col, select

from core.config import Settings
from core.db import Database
from core.dispatch.autopilot import Autopilot
from core.dispatch.planner import Planner
from core.drivers import shifts
from core.drivers.positions import Fix, Positions
from core.drivers.stops import Stops
from core.models import Driver, Order, OrderEvent, OrderStatus, OutboxMessage, Placement, Role
from core.orders import imports
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change, Window
from core.orders.service import OrderDraft
from core.routing.travel import StraightLine
from tests.factories import add_member, move
from tests.test_dispatch import EAST, NOW, WEST, near, on_shift, order_at

S = OrderStatus
WAIT_S = 20.0


def autopilot(
    db: Database,
    *,
    mode: str = "auto",
    clock: Callable[[], datetime] = lambda: NOW,
    poll_s: float = 60.0,  # longer than any test: only a commit's wake-up starts a pass
    lease: timedelta = timedelta(minutes=2),
    plan_at: time = time(6, 30),
) -> Autopilot:
    settings = Settings(
        dispatch={"mode": mode, "plan_at": plan_at},
        app={"timezone": "Europe/Berlin"},
        _env_file=None,  # type: ignore[call-arg]
    )
    planner = Planner(db, StraightLine(speed_kmh=36, detour=1.0), clock=clock)
    return Autopilot(db, planner, Stops(db), settings, clock=clock, poll_s=poll_s, lease=lease)


async def statuses(db: Database, ids: list[int]) -> dict[int, tuple[OrderStatus, int | None]]:
    async with db.sessions() as session:
        rows = await session.exec(select(Order).where(col(Order.id).in_(ids)))
        return {o.id: (o.status, o.driver_id) for o in rows}  # type: ignore[misc]


async def until_assigned(db: Database, ids: list[int], wait_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        now = await statuses(db, ids)
        if all(status is S.ASSIGNED for status, _ in now.values()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not all assigned: {now}")
        await asyncio.sleep(0.05)


async def queued(db: Database) -> dict[int, Placement]:
    async with db.sessions() as session:
        return {p.order_id: p for p in await session.exec(select(Placement))}


async def alerts(db: Database, order_id: int) -> list[OutboxMessage]:
    async with db.sessions() as session:
        statement = select(OutboxMessage).where(
            OutboxMessage.template == "dispatcher.order_unassignable",
            OutboxMessage.order_id == order_id,
        )
        return list(await session.exec(statement))


async def test_an_order_is_placed_by_insertion_right_after_its_commit(db: Database):
    west = await on_shift(db, "Wanda West", 1, WEST)
    await on_shift(db, "Erik East", 2, EAST)
    pilot = autopilot(db)
    pilot.start()
    try:
        order = await order_at(db, "A", near(WEST, 1))
        await until_assigned(db, [order.id], wait_s=5.0)  # well before the 60 s poll
    finally:
        await pilot.stop()
    assert (await statuses(db, [order.id]))[order.id] == (S.ASSIGNED, west.id)
    assert (pilot.stats.insertions, pilot.stats.solves) == (1, 0)
    assert await queued(db) == {}  # the assignment took it off the queue
    async with db.sessions() as session:
        event = (
            await session.exec(
                select(OrderEvent).where(
                    OrderEvent.order_id == order.id, OrderEvent.to_status == S.ASSIGNED
                )
            )
        ).one()
    assert event.actor == "system" and event.data["why"].startswith("nearest feasible driver")


def csv_rows(count: int, around: tuple[float, float], prefix: str) -> str:
    lines = ["external_ref,customer_name,phone,address,lat,lon,window"]
    for k in range(count):
        lat, lon = around[0] + 0.0004 * (k % 20), around[1] + 0.0006 * (k // 20)
        lines.append(
            f"{prefix}{k},Customer {k},,Street {k},{lat:.5f},{lon:.5f},2026-11-24 09:00-18:00"
        )
    return "\n".join(lines) + "\n"


async def test_a_csv_of_200_orders_is_placed_by_one_batch_solve_moving_nobody(db: Database):
    drivers = [
        await on_shift(db, f"Driver {k}", k, near(WEST, k), capacity_units=60) for k in range(1, 5)
    ]
    pilot = autopilot(db)
    # orders already on routes, one given by hand: the batch must leave them with their drivers
    before = [await order_at(db, f"E{k}", near(WEST, k)) for k in range(4)]
    await pilot.planner.dispatch_day(SYSTEM)
    await pilot.planner.assign_manually(before[0].id, drivers[3].id, SYSTEM)
    kept = await statuses(db, [o.id for o in before])
    assert all(status is S.ASSIGNED for status, _ in kept.values())

    pilot.start()
    try:
        report = await imports.import_orders(
            db, csv_rows(200, WEST, "C"), SYSTEM, timezone="Europe/Berlin"
        )
        assert len(report.created) == 200, report.errors
        ids = [order_id for _, order_id in report.created]
        await until_assigned(db, ids, wait_s=60.0)
    finally:
        await pilot.stop()
    assert (pilot.stats.solves, pilot.stats.insertions) == (1, 0)
    assert await statuses(db, [o.id for o in before]) == kept
    loads: dict[int | None, int] = {}
    for _, driver_id in (await statuses(db, ids)).values():
        loads[driver_id] = loads.get(driver_id, 0) + 1
    assert set(loads) <= {d.id for d in drivers} and sum(loads.values()) == 200


async def test_orders_left_by_a_dead_worker_are_placed_by_the_next_one(db: Database):
    await on_shift(db, "Wanda West", 1, WEST)
    created = [await order_at(db, f"K{k}", near(WEST, k)) for k in range(3)]  # no worker ran
    ids = [o.id for o in created]
    dead = autopilot(db, lease=timedelta(seconds=1))
    assert len(await dead._claim("dead-worker-token")) == 3  # claimed, then the process died

    pilot = autopilot(db, poll_s=0.2)
    pilot.start()
    try:
        await asyncio.sleep(0.5)
        assert {s for s, _ in (await statuses(db, ids)).values()} == {S.NEW}  # lease still held
        await until_assigned(db, ids)  # once the dead worker's lease ran out
    finally:
        await pilot.stop()
    assert pilot.stats.solves == 1


async def test_orders_before_anyone_is_on_shift_wait_quietly_for_the_first_driver(db: Database):
    boss = await add_member(db, "Bo Boss", [Role.DISPATCHER])
    wanda = await on_shift(db, "Wanda West", 1, WEST, shift_state="off")  # the day has not begun
    pilot = autopilot(db)
    early = [await order_at(db, f"M{k}", near(WEST, k)) for k in range(3)]
    ids = [o.id for o in early]
    assert await pilot.run_once() == 3
    assert {s for s, _ in (await statuses(db, ids)).values()} == {S.NEW}
    rows = await queued(db)
    assert all(rows[i].parked and not rows[i].alerted for i in ids)
    assert await pilot.run_once() == 0  # parked: not tried again and again
    assert [await alerts(db, i) for i in ids] == [[], [], []] and boss.id

    await shifts.start_shift(db, wanda.id, now=NOW)
    await pilot.driver_ready(wanda.id)
    await pilot.run_once()
    assert await statuses(db, ids) == {i: (S.ASSIGNED, wanda.id) for i in ids}
    assert [await alerts(db, i) for i in ids] == [[], [], []]


async def test_unassignable_orders_alert_once_until_they_change(db: Database):
    boss = await add_member(db, "Bo Boss", [Role.DISPATCHER])
    await on_shift(db, "Wanda West", 1, WEST)
    pilot = autopilot(db)
    hopeless = await order_at(db, "H", near(WEST, 1), hours=(7, 8))  # its window closed at 8
    draft = OrderDraft(external_ref="N", customer_name="No Pin", address="nowhere 1")
    pinless = await orders.create_order(db, draft, SYSTEM, source="test")
    assert await pilot.run_once() == 2
    for _ in range(3):  # drivers starting shifts, the day's planning time: retried, not re-alerted
        await pilot.driver_ready(999)
        await pilot.run_once()
    assert (await statuses(db, [hopeless.id]))[hopeless.id] == (S.NEW, None)
    sent = await alerts(db, hopeless.id)
    assert [a.recipient_member_id for a in sent] == [boss.id]
    assert sent[0].params["reason"].startswith("no driver on shift can take it (Wanda: ")
    assert [a["action"] for a in sent[0].actions] == [
        "order.assign",
        "order.change_window",
        "order.cancel",
    ]
    no_pin = await alerts(db, pinless.id)
    assert [a.params["reason"] for a in no_pin] == [
        "its address has no map point yet; send a location pin or fix it"
    ]
    rows = await queued(db)
    assert rows[hopeless.id].parked and rows[hopeless.id].alerted

    # changed (a new window nobody can make either): the dispatchers hear once more
    closed = Window(NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    await orders.change_window(db, hopeless.id, closed, SYSTEM)
    await pilot.run_once()
    await pilot.run_once()
    assert len(await alerts(db, hopeless.id)) == 2
    # a window that works: placed
    await orders.change_window(db, hopeless.id, Window(NOW, NOW + timedelta(hours=5)), SYSTEM)
    await pilot.run_once()
    assert (await statuses(db, [hopeless.id]))[hopeless.id][0] is S.ASSIGNED
    assert hopeless.id not in await queued(db)


async def test_an_order_cancelled_or_assigned_by_hand_while_queued_is_left_alone(db: Database):
    west = await on_shift(db, "Wanda West", 1, WEST)
    east = await on_shift(db, "Erik East", 2, EAST)
    pilot = autopilot(db)
    gone = await order_at(db, "G", near(WEST, 1))
    mine = await order_at(db, "M", near(WEST, 2))
    claimed = await pilot._claim("token-1")
    await orders.change_status(db, gone.id, S.CANCELLED, SYSTEM)
    await pilot.planner.assign_manually(mine.id, east.id, SYSTEM)  # far from her: by hand
    await pilot._handle(claimed, "token-1")
    assert await statuses(db, [gone.id, mine.id]) == {
        gone.id: (S.CANCELLED, None),
        mine.id: (S.ASSIGNED, east.id),
    }
    assert await queued(db) == {} and pilot.stats.placed == 0
    assert west.id != east.id


async def seen(db: Database, driver_id: int, at: datetime) -> None:
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id)
        driver.last_seen_at = at
        session.add(driver)


async def test_a_later_day_waits_for_its_planning_time_or_a_shift(db: Database):
    now = [NOW]  # 10:00 in Berlin
    wanda = await on_shift(
        db, "Wanda West", 1, WEST, shift_ends_at=datetime(2026, 11, 27, tzinfo=UTC)
    )
    pilot = autopilot(db, clock=lambda: now[0])
    tomorrow = date(2026, 11, 25)
    late = await order_at(db, "T", near(WEST, 1), hours=(33, 40), due_date=tomorrow)
    assert await pilot.run_once() == 1
    row = (await queued(db))[late.id]
    assert row.due_at == datetime(2026, 11, 25, 5, 30, tzinfo=UTC)  # 06:30 Berlin
    await pilot.driver_ready(999)  # a shift starting today does not bring tomorrow forward
    assert await pilot.run_once() == 0
    now[0] = datetime(2026, 11, 25, 5, 29, tzinfo=UTC)
    assert await pilot.run_once() == 0
    now[0] = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    await seen(db, wanda.id, now[0])
    assert await pilot.run_once() == 1
    assert (await statuses(db, [late.id]))[late.id][0] is S.ASSIGNED

    await orders.change_status(db, late.id, S.CANCELLED, SYSTEM)  # off her route

    # the next day's order, and a driver who starts before the planning time: placed at once
    later = await order_at(db, "U", near(WEST, 2), hours=(57, 64), due_date=date(2026, 11, 26))
    assert await pilot.run_once() == 1
    now[0] = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # 05:00 Berlin
    await seen(db, wanda.id, now[0])
    await pilot.driver_ready(wanda.id)
    assert await pilot.run_once() == 1
    assert (await statuses(db, [later.id]))[later.id][0] is S.ASSIGNED


async def test_plan_day_places_every_waiting_order_of_today(db: Database):
    await on_shift(db, "Wanda West", 1, WEST)
    pilot = autopilot(db)
    created = [await order_at(db, f"P{k}", near(WEST, k)) for k in range(3)]
    assert await pilot.plan_day() == 3
    assert {s for s, _ in (await statuses(db, [o.id for o in created])).values()} == {S.ASSIGNED}


async def test_orders_of_a_driver_whose_shift_ends_are_placed_again(db: Database):
    west = await on_shift(db, "Wanda West", 1, WEST)
    pilot = autopilot(db)
    created = [await order_at(db, f"S{k}", near(WEST, k)) for k in range(2)]
    await pilot.run_once()
    assert {d for _, d in (await statuses(db, [o.id for o in created])).values()} == {west.id}
    east = await on_shift(db, "Erik East", 2, EAST)
    pilot.start()
    try:
        ended = await shifts.end_shift(db, west.id, SYSTEM, max_attempts=3)
        assert ended.ended and len(ended.returned) == 2
        await until_assigned(db, [o.id for o in created])
    finally:
        await pilot.stop()
    assert {d for _, d in (await statuses(db, [o.id for o in created])).values()} == {east.id}


async def test_manual_mode_places_nothing(db: Database):
    west = await on_shift(db, "Wanda West", 1, WEST)
    pilot = autopilot(db, mode="manual", poll_s=0.05)
    pilot.start()
    try:
        order = await order_at(db, "Z", near(WEST, 1))
        await asyncio.sleep(0.5)
        await pilot.driver_ready(1)
        assert await pilot.plan_day() == 0
        await asyncio.sleep(0.2)
    finally:
        await pilot.stop()
    assert (await statuses(db, [order.id]))[order.id] == (S.NEW, None)
    assert pilot.stats.passes == 0
    assert order.id in await queued(db)  # a dispatcher's /dispatch or /assign takes it off
    await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, Change(driver_id=west.id))
    assert await queued(db) == {}


async def test_two_instances_never_claim_the_same_order(db: Database):
    await on_shift(db, "Wanda West", 1, WEST)
    created = [await order_at(db, f"I{k}", near(WEST, k)) for k in range(12)]
    other_db = Database(db.url)  # another instance: its own connections
    try:
        first, second = autopilot(db), autopilot(other_db)
        claims = await asyncio.gather(
            *(pilot._claim(f"token-{k}") for k, pilot in enumerate((first, second, first, second)))
        )
        claimed = [row.order_id for rows in claims for row in rows]
        assert sorted(claimed) == sorted(o.id for o in created)  # each once, none twice
        assert await second._claim("token-late") == []  # all leased
    finally:
        await other_db.dispose()


async def test_a_delivery_rescheduled_to_tomorrow_waits_for_tomorrow_without_an_alert(
    db: Database,
):
    boss = await add_member(db, "Bo Boss", [Role.DISPATCHER])
    west = await on_shift(db, "Wanda West", 1, WEST)
    pilot = autopilot(db)
    order = await order_at(db, "R", near(WEST, 1))
    await pilot.run_once()
    for target in (S.OUT_FOR_DELIVERY, S.FAILED, S.RESCHEDULED):  # tomorrow 14:00-17:00 UTC
        await move(db, order.id, target, west.id)
    assert await pilot.run_once() == 1
    assert (await queued(db))[order.id].due_at == datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    assert (await statuses(db, [order.id]))[order.id] == (S.RESCHEDULED, None)
    assert await alerts(db, order.id) == [] and boss.id


async def test_a_cancel_leaves_a_hole_that_the_replan_after_it_fills(db: Database):
    """Nobody typed anything: the cancel's commit sets off a re-plan, which gives the room it
    freed to the order that waited for it."""
    west = await on_shift(db, "Wanda West", 1, WEST, max_stops=2)
    pilot = autopilot(db)
    first, second = [await order_at(db, f"F{k}", near(WEST, k)) for k in (1, 2)]
    await pilot.run_once()
    waiting = await order_at(db, "W", near(WEST, 3))
    await pilot.run_once()  # she is full: it waits (the dispatchers were told)
    assert (await statuses(db, [waiting.id]))[waiting.id] == (S.NEW, None)
    assert pilot.stats.replans == 0
    pilot.start()
    try:
        await orders.change_status(db, first.id, S.CANCELLED, SYSTEM, Change(reason="no longer"))
        await until_assigned(db, [waiting.id], wait_s=10.0)  # well before the 60 s poll
    finally:
        await pilot.stop()
    assert pilot.stats.replans == 1
    now = await statuses(db, [first.id, second.id, waiting.id])
    assert now == {
        first.id: (S.CANCELLED, west.id),
        second.id: (S.ASSIGNED, west.id),
        waiting.id: (S.ASSIGNED, west.id),
    }


async def test_a_running_service_schedules_planning_and_reoptimization(db: Database):
    from core.jobs import dispatch_jobs

    pilot = autopilot(db)
    jobs = dispatch_jobs(pilot.settings, plan_day=pilot.plan_day, reoptimize=pilot.reoptimize)
    assert [job.name for job in jobs] == ["dispatch.plan_day", "dispatch.reoptimize"]
    assert await pilot.reoptimize() is not None  # runs (nothing to do) in auto mode
    assert await autopilot(db, mode="manual").reoptimize() is None


async def test_a_driver_ready_during_a_pass_is_not_lost_when_the_pass_parks_its_orders(
    db: Database,
):
    """A pass finds nobody for an order; while it decides, a driver becomes ready (she shares
    her location). The pass must not park the row again over that news: the order is placed."""
    pilot = autopilot(db)
    order = await order_at(db, "R", near(WEST, 1))
    claimed = await pilot._claim("in-flight")  # the pass that will find nobody
    assert [row.order_id for row in claimed] == [order.id]
    await on_shift(db, "Wanda West", 1, WEST)  # meanwhile she is ready …
    await pilot.driver_ready(999)  # … and says so (which makes today's orders due)
    await pilot._settle("in-flight", {}, {order.id: "no driver on shift"}, set(), set())
    assert not (await queued(db))[order.id].parked
    await pilot.run_once()
    assert (await statuses(db, [order.id]))[order.id][0] is S.ASSIGNED


async def test_a_driver_running_late_has_the_stop_given_to_a_driver_on_time_for_it(db: Database):
    """Her ping shows a stop she can no longer reach in its window; re-ordering her own route
    cannot save it, so the autopilot re-plans the day (nobody typed anything) and the stop
    goes to the driver who is on time for it."""
    west = await on_shift(db, "Wanda West", 1, WEST)
    east = await on_shift(db, "Erik East", 2, EAST)
    urgent = await order_at(db, "U", near(EAST, 1), hours=(9, 9.25))  # due by 09:15
    await move(db, urgent.id, S.ASSIGNED, west.id)  # an earlier plan's choice, not a dispatcher's
    pilot = autopilot(db)
    await pilot.planner.replan_driver(west.id, SYSTEM)  # her route: U, ~23 min away
    positions = Positions(db, pilot.planner, clock=lambda: NOW)
    pilot.start()
    try:
        fix = Fix(*WEST, at=NOW, live_until=NOW + timedelta(hours=1), live=True)
        await positions.ping(west.id, fix)
        await positions.drain()
        await until_assigned(db, [urgent.id], wait_s=10.0)
        for _ in range(100):  # bounded: the re-plan runs on the autopilot's worker
            if (await statuses(db, [urgent.id]))[urgent.id][1] == east.id:
                break
            await asyncio.sleep(0.1)
    finally:
        await pilot.stop()
    assert pilot.stats.replans == 1
    assert (await statuses(db, [urgent.id]))[urgent.id] == (S.ASSIGNED, east.id)
