"""A driver's working hours (`/hours`): the planner counts on a driver before her shift, so the
first driver on shift does not take the day's orders that a later driver should carry; a driver
who does not show up loses the stops planned for her, a dispatcher's choice excepted."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from core.bootstrap import Services
from core.clock import FixedClock
from core.config import Settings
from core.conversations import handle
from core.conversations.events import Command
from core.db import Database
from core.dispatch.autopilot import Autopilot
from core.dispatch.planner import Planner
from core.drivers import hours, shifts
from core.drivers.stops import Stops
from core.errors import DomainError
from core.models import Depot, Driver, Order, OrderStatus, Role, ShiftState
from core.orders.lifecycle import SYSTEM
from core.people.identities import Person
from core.routing.travel import StraightLine
from core.texts import t
from tests.factories import add_driver
from tests.test_conversations import participant
from tests.test_dispatch import EAST, WEST, near, on_shift, order_at

S = OrderStatus
BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 11, 24, tzinfo=BERLIN)  # NOW's day in tests.test_dispatch


def local(hour: float) -> datetime:
    return (DAY + timedelta(hours=hour)).astimezone(UTC)


def utc_hours(first: float, last: float) -> tuple[float, float]:
    """A window from `first` to `last` o'clock in Berlin, as order_at's UTC hours (UTC+1)."""
    return first - 1, last - 1


def pilot(db: Database, clock: FixedClock) -> Autopilot:
    settings = Settings(
        dispatch={"mode": "auto"},
        app={"timezone": "Europe/Berlin"},
        _env_file=None,  # type: ignore[call-arg]
    )
    planner = Planner(db, StraightLine(speed_kmh=36, detour=1.0), clock=clock, zone="Europe/Berlin")
    return Autopilot(db, planner, Stops(db), settings, clock=clock, poll_s=60.0)


async def scheduled(
    db: Database, name: str, chat: int, at: tuple[float, float], working: str
) -> Driver:
    """A driver off shift, her van at the depot `at`, with working hours `working`."""
    driver = await add_driver(db, name, chat)
    async with db.transaction() as session:
        depot = Depot(name=f"{name}'s depot", lat=at[0], lon=at[1])
        session.add(depot)
        await session.flush()
        saved = await session.get(Driver, driver.id)
        assert saved is not None
        saved.depot_id = depot.id
        saved.hours_from, saved.hours_until = hours.parse(working)
        session.add(saved)
    return saved


async def seen(db: Database, driver_id: int | None, at: datetime) -> None:
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id)
        assert driver is not None
        driver.last_seen_at = at
        session.add(driver)


async def drivers_of(db: Database, orders: list[Order]) -> dict[str, tuple[S, int | None]]:
    async with db.reads() as session:
        rows = {o.id: o for o in await session.exec(select(Order))}
    return {o.external_ref or "": (rows[o.id].status, rows[o.id].driver_id) for o in orders}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00-16:00", (time(8), time(16))),
        ("8-16", (time(8), time(16))),
        (" 8:30 – 17 ", (time(8, 30), time(17))),
        ("6-24", (time(6), time(23, 59))),
    ],
)
def test_working_hours_are_read_as_people_write_them(text: str, expected: tuple[time, time]):
    assert hours.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("16-8", "hours.backwards"),
        ("8-8", "hours.backwards"),
        ("25-26", "hours.invalid"),
        ("8:60-9", "hours.invalid"),
        ("8-24:30", "hours.invalid"),
        ("eight to four", "hours.invalid"),
        ("08:00", "hours.invalid"),
        ("", "hours.invalid"),
        ("8-16-20", "hours.invalid"),
    ],
)
def test_what_are_not_working_hours_is_refused_with_its_reason(text: str, key: str):
    with pytest.raises(DomainError) as refused:
        hours.parse(text)
    assert refused.value.key == key


def test_a_driver_is_counted_on_from_her_hours_until_she_is_late_or_has_worked():
    driver = Driver(member_id=1, hours_from=time(8), hours_until=time(16))
    assert hours.expected(driver, local(6), BERLIN) == hours.Span(local(8), local(16))
    assert hours.expected(driver, local(8.49), BERLIN) is not None  # 29 minutes late: still
    assert hours.expected(driver, local(8.51), BERLIN) is None  # a no-show
    assert hours.expected(driver, local(16), BERLIN) is None
    driver.shift_started_at = local(8.1) - timedelta(days=1)  # she worked yesterday
    assert hours.expected(driver, local(7), BERLIN) is not None
    driver.shift_started_at = local(6.5)  # she came early today, and ended her shift
    assert hours.expected(driver, local(7), BERLIN) is None
    driver.shift_state = ShiftState.ON
    assert hours.expected(driver, local(7), BERLIN) is None  # on shift: planned as such
    assert hours.expected(Driver(member_id=2), local(7), BERLIN) is None  # no hours


async def test_orders_known_before_the_day_go_to_the_driver_whose_hours_fit_them(db: Database):
    """Before the fix, nobody on shift meant every order waited for the first driver to start,
    who then took them all (the demo's first van left with 51 of 55 orders)."""
    clock = FixedClock(local(7.5))
    ana = await scheduled(db, "Ana Early", 1, WEST, "08:00-12:00")
    carla = await scheduled(db, "Carla Late", 2, WEST, "12:00-18:00")
    early = [await order_at(db, f"E{k}", near(WEST, k), utc_hours(8.5, 11)) for k in range(3)]
    late = [await order_at(db, f"L{k}", near(WEST, k), utc_hours(14, 17)) for k in range(3)]
    autopilot = pilot(db, clock)
    assert await autopilot.run_once() == 6
    placed = await drivers_of(db, early + late)
    assert placed == {
        **{o.external_ref: (S.ASSIGNED, ana.id) for o in early},
        **{o.external_ref: (S.ASSIGNED, carla.id) for o in late},
    }

    # Ana starts her shift: the late orders stay with Carla, whose van they will go in
    clock.set(local(8))
    await shifts.start_shift(db, ana.id, now=clock())
    await autopilot.driver_ready(ana.id)
    await autopilot.run_once()
    report = await autopilot.reoptimize()
    assert report is not None and report.moved == {}
    assert await drivers_of(db, early + late) == placed


async def test_a_driver_who_does_not_start_loses_her_planned_stops_but_not_manual_ones(
    db: Database,
):
    clock = FixedClock(local(10))
    wanda = await on_shift(db, "Wanda West", 1, WEST)  # on shift since 09:00 (local), 10 h
    carla = await scheduled(db, "Carla East", 2, EAST, "10:15-18:00")
    east = [await order_at(db, f"X{k}", near(EAST, k), utc_hours(12, 17)) for k in range(3)]
    autopilot = pilot(db, clock)
    assert await autopilot.run_once() == 3
    assert {d for _, d in (await drivers_of(db, east)).values()} == {carla.id}
    chosen = await order_at(db, "M1", near(EAST, 4), utc_hours(12, 17))
    await autopilot.planner.assign_manually(chosen.id, carla.id, SYSTEM)

    clock.set(local(10.25) + hours.NO_SHOW - timedelta(minutes=1))  # late, not yet a no-show
    await autopilot.reoptimize()
    assert {d for _, d in (await drivers_of(db, east)).values()} == {carla.id}

    clock.set(local(10.25) + hours.NO_SHOW + timedelta(minutes=1))
    await seen(db, wanda.id, clock())  # Wanda's live location goes on coming
    await autopilot.reoptimize()
    while await autopilot.run_once():
        pass
    assert await drivers_of(db, east) == {o.external_ref: (S.ASSIGNED, wanda.id) for o in east}
    assert await drivers_of(db, [chosen]) == {"M1": (S.ASSIGNED, carla.id)}  # a person's choice


async def test_a_drivers_route_ends_by_her_hours(db: Database):
    """On shift without an end of her own, her route ends when her hours do (else 10 hours
    after her start): an order she could only reach later is left for someone else."""
    clock = FixedClock(local(9))
    wanda = await on_shift(db, "Wanda West", 1, WEST)
    async with db.transaction() as session:
        saved = await session.get(Driver, wanda.id)
        assert saved is not None
        saved.hours_from, saved.hours_until = time(8), time(12)
        session.add(saved)
    fits = await order_at(db, "F1", near(WEST, 1), utc_hours(10, 11.5))
    after = await order_at(db, "A1", near(WEST, 2), utc_hours(13, 15))
    autopilot = pilot(db, clock)
    await autopilot.run_once()
    placed = await drivers_of(db, [fits, after])
    assert placed["F1"] == (S.ASSIGNED, wanda.id)
    assert placed["A1"][0] is S.NEW


async def test_a_driver_sets_shows_and_removes_her_hours_in_chat(db: Database, tmp_path: Path):
    settings = Settings(app={"data_dir": tmp_path, "timezone": "Europe/Berlin"}, _env_file=None)  # type: ignore[call-arg]
    svc = Services.build(settings, db, clock=FixedClock(local(7)))
    try:
        chat, _ = await participant(db, "Dana", [Role.DRIVER])
        dana = Person("Dana")

        async def say(args: str) -> list[str]:
            return [r.text for r in await handle(svc, chat, dana, Command("hours", args))]

        async def saved() -> tuple[time | None, time | None]:
            async with db.reads() as session:
                driver = (await session.exec(select(Driver))).one()
            return driver.hours_from, driver.hours_until

        assert await say("") == [t("hours.none", "en")]
        assert await say("8-16") == [t("hours.set", "en", starts="08:00", ends="16:00")]
        assert await saved() == (time(8), time(16))
        for bad, key in (("16-8", "hours.backwards"), ("soon", "hours.invalid")):
            assert await say(bad) == [t(key, "en", text=bad)]
            assert await saved() == (time(8), time(16))  # unchanged
        assert await say("") == [t("hours.show", "en", starts="08:00", ends="16:00")]
        assert await say("off") == [t("hours.off", "en")]
        assert await saved() == (None, None)
    finally:
        await svc.close()
