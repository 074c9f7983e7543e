"""Plans written while someone else changes the same orders: two instances on one database.

Instance A plans (dispatch, optimize, re-plan, insertion) while instance B, with its own engine
and connections, assigns by hand. A manual choice always survives, and every order is on exactly
one route: its driver's. Two dispatchers assigning one order at once: one wins, and the other is
told so only when her choice was not saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import pytest
from sqlmodel import col, select

from core.config import RoutingSettings
from core.db import Database
from core.dispatch.planner import Planner
from core.drivers.stops import Stops, delivery_eta
from core.errors import DomainError
from core.models import Order, OrderEvent, OrderStatus, Route, RouteStop, StopKind
from core.orders.lifecycle import Actor
from core.routing.travel import Matrix, Point, StraightLine
from core.texts import t
from tests.test_dispatch import EAST, NOW, WEST, near, on_shift, order_at

SOLVE_S = 0.5
ROUNDS = 3
DUEL_ROUNDS = 15
ANA, BEA = Actor.member(1), Actor.member(2)  # two dispatchers


class Meanwhile:
    """Straight-line travel times, and a change made by someone else at the moment the planner
    asks for them: right after it has read the database, before it solves and writes (as a
    slow OSRM answer or a long solve leaves time for)."""

    name = "meanwhile"

    def __init__(self) -> None:
        self.straight = StraightLine(speed_kmh=36, detour=1.0)
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime
    ) -> Matrix:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        return await self.straight.matrix(sources, destinations, depart_at)


@asynccontextmanager
async def instance(url: str, travel: object | None = None) -> AsyncIterator[Planner]:
    """A second process's view: its own engine and connection pool on the same database."""
    database = Database(url)
    try:
        yield Planner(
            database,
            travel or StraightLine(speed_kmh=36, detour=1.0),  # type: ignore[arg-type]
            RoutingSettings(time_limit_s=SOLVE_S),
            clock=lambda: NOW,
        )
    finally:
        await database.dispose()


async def open_stops(db: Database) -> list[tuple[int, StopKind, int]]:
    """(order, kind, driver whose route holds it) of every stop not yet visited."""
    async with db.sessions() as session:
        rows = await session.exec(
            select(RouteStop.order_id, RouteStop.kind, Route.driver_id)
            .join(Route, col(Route.id) == RouteStop.route_id)
            .where(col(RouteStop.actual_departure).is_(None))
        )
        return list(rows.all())


async def orders_by_id(db: Database, ids: Sequence[int]) -> dict[int, Order]:
    async with db.sessions() as session:
        return {o.id: o for o in await session.exec(select(Order).where(col(Order.id).in_(ids)))}


async def all_orders(db: Database) -> list[Order]:
    async with db.sessions() as session:
        return list(await session.exec(select(Order)))


async def assert_one_route_each(db: Database, ids: Sequence[int]) -> None:
    """Each assigned order is on exactly one route, its driver's; no other order is on one."""
    orders = await orders_by_id(db, ids)
    stops = [(o, k, d) for o, k, d in await open_stops(db) if o in orders]
    for order_id, order in orders.items():
        mine = [(k, d) for o, k, d in stops if o == order_id]
        if order.driver_id is None:
            assert mine == [], f"order {order_id} has no driver but stops {mine}"
        else:
            assert mine == [(StopKind.DELIVERY, order.driver_id)], (
                f"order {order_id} of driver {order.driver_id} is on {mine}"
            )


PLANS = ["dispatch_day", "optimize", "replan_driver", "insert_order"]


@pytest.mark.parametrize("plan", PLANS)
async def test_a_manual_assignment_made_while_planning_survives(db: Database, plan: str):
    """A plans from data read before solving; meanwhile B, another instance, gives some of those
    orders to Erik by hand. A's write must leave them with Erik, on Erik's route only, and say it
    left them."""
    west = await on_shift(db, "Wanda", 1, WEST)
    east = await on_shift(db, "Erik", 2, EAST)
    overridden, total, misplaced, unreported = 0, 0, [], []
    for round_ in range(ROUNDS):
        made = [await order_at(db, f"R{round_}-{k}", near(WEST, k)) for k in range(1, 5)]
        ids = [o.id for o in made]
        travel = Meanwhile()
        async with instance(db.url, travel) as a, instance(db.url) as b:
            if plan in ("optimize", "replan_driver"):  # these re-plan orders already hers
                for order in made:
                    await b.assign_manually(order.id, west.id, ANA)
                    await b.release(order.id, ANA)
            taken = ids[:1] if plan == "insert_order" else ids[:2]

            async def by_hand(taken: list[int] = taken) -> None:
                for order_id in taken:
                    await b.assign_manually(order_id, east.id, BEA)

            travel.meanwhile = by_hand  # after A has read, before it solves and writes
            if plan == "insert_order":
                insertion = await a.insert_order(taken[0], ANA)
                skipped = set(taken) if insertion.vehicle is None else set()
            else:
                work = {
                    "dispatch_day": lambda: a.dispatch_day(ANA),
                    "optimize": lambda: a.optimize(ANA),
                    "replan_driver": lambda: a.replan_driver(west.id, ANA),
                }[plan]
                skipped = set((await work()).skipped)
            assert travel.meanwhile is None, "the manual assignments landed"
        orders = await orders_by_id(db, ids)
        total += len(taken)
        overridden += sum(
            1 for i in taken if orders[i].driver_id != east.id or not orders[i].driver_locked
        )
        stops = await open_stops(db)
        misplaced += [i for i in taken if [d for o, _, d in stops if o == i] != [east.id]]
        unreported += sorted(set(taken) - skipped)
    assert (overridden, misplaced) == (0, []), (
        f"{overridden} of {total} manual choices overridden; orders {misplaced} of {total} "
        f"not on Erik's route alone"
    )
    assert unreported == [], "A says which orders it left alone"
    await assert_one_route_each(db, [o.id for o in await all_orders(db)])


async def test_two_dispatchers_assigning_one_order_at_once(db: Database):
    """Ana gives an order to Wanda and Bea the same order to Erik, at the same moment, each from
    her own instance. One wins; the other is told only if her choice was not saved; the order is
    on exactly one route, and its ETA is that route's."""
    west = await on_shift(db, "Wanda", 1, WEST)
    east = await on_shift(db, "Erik", 2, EAST)
    names = {west.id: "Wanda", east.id: "Erik"}
    wrong: list[str] = []
    async with instance(db.url) as a, instance(db.url) as b:
        for round_ in range(DUEL_ROUNDS):
            order = await order_at(db, f"D{round_}", near(WEST, round_ % 5 + 1))
            answers = await asyncio.gather(
                a.assign_manually(order.id, west.id, ANA),
                b.assign_manually(order.id, east.id, BEA),
                return_exceptions=True,
            )
            saved = (await orders_by_id(db, [order.id]))[order.id]
            async with db.sessions() as session:
                events = list(
                    await session.exec(
                        select(OrderEvent)
                        .where(OrderEvent.order_id == order.id, OrderEvent.to_status == "assigned")
                        .order_by(col(OrderEvent.id))
                    )
                )
            assigned_by = [e.actor for e in events]
            for who, driver, answer in zip((ANA, BEA), (west.id, east.id), answers, strict=True):
                if isinstance(answer, BaseException):
                    if not isinstance(answer, DomainError) or who.label in assigned_by:
                        wrong.append(f"round {round_}: {who.label} saved but told {answer!r}")
                    elif saved.driver_id == driver:
                        wrong.append(f"round {round_}: {who.label} refused but her choice stands")
                    else:
                        assert names[saved.driver_id] in str(answer), str(answer)
                elif who.label not in assigned_by:
                    wrong.append(f"round {round_}: {who.label} told yes, nothing saved")
            if events and events[-1].data.get("driver_id") != saved.driver_id:
                wrong.append(f"round {round_}: the last assignment is not the saved driver")
            if not saved.driver_locked:
                wrong.append(f"round {round_}: the manual choice is not locked")
            mine = [(o, k, d) for o, k, d in await open_stops(db) if o == order.id]
            if mine != [(order.id, StopKind.DELIVERY, saved.driver_id)]:
                wrong.append(f"round {round_}: driver {saved.driver_id}, stops {mine}")
            async with db.sessions() as session:
                eta = await delivery_eta(session, order.id)
                current = (
                    await session.exec(
                        select(RouteStop.eta)
                        .join(Route, col(Route.id) == RouteStop.route_id)
                        .where(
                            RouteStop.order_id == order.id,
                            Route.driver_id == saved.driver_id,
                            col(RouteStop.actual_departure).is_(None),
                        )
                    )
                ).all()
            if [eta] != current:
                wrong.append(f"round {round_}: ETA {eta} is not the current stop's {current}")
    assert wrong == [], f"{len(wrong)} problems in {DUEL_ROUNDS} rounds:\n" + "\n".join(wrong)


@pytest.mark.parametrize("how", ["place", "insert_order"])
async def test_arrivals_planned_while_she_delivers_a_stop_are_placed_again_from_a_fresh_read(
    db: Database, how: str
):
    """Wanda has A on her route when new orders arrive. While the planner solves from what it
    read, she delivers A (her taps, through another instance). Her route planned from that read
    runs through A and is timed from before it: it is not written. The arrivals come back as
    changed meanwhile (the autopilot places those again) and nothing of hers is touched; placed
    again from a fresh read, they are hers, on a route without A."""
    west = await on_shift(db, "Wanda", 1, WEST)
    first = await order_at(db, "A", near(WEST, 1))
    async with instance(db.url) as b:
        await b.dispatch_day(ANA)
    arrivals = [await order_at(db, f"N{k}", near(WEST, k)) for k in (2, 3)]
    ids = [o.id for o in arrivals][: 1 if how == "insert_order" else 2]
    travel = Meanwhile()

    async def delivers() -> None:
        other = Database(db.url)
        try:
            await Stops(other).deliver(west.id, first.id, Actor.member(west.member_id))
        finally:
            await other.dispose()

    travel.meanwhile = delivers  # after the planner has read, before it solves and writes
    async with instance(db.url, travel) as a:
        if how == "insert_order":
            insertion = await a.insert_order(ids[0], ANA)
            assert insertion.vehicle is None and insertion.reason == t("dispatch.changed")
        else:
            report = await a.place(ids, ANA)
            assert report.assigned == [] and set(ids) <= set(report.skipped)
        assert travel.meanwhile is None, "she delivered A meanwhile"
    orders = await orders_by_id(db, [first.id, *ids])
    assert orders[first.id].status is OrderStatus.DELIVERED
    assert [orders[i].driver_id for i in ids] == [None] * len(ids)
    assert await open_stops(db) == []  # A's stop visited; nothing written from the stale read
    async with instance(db.url) as a:  # the autopilot's next pass: a fresh read
        if how == "insert_order":
            assert (await a.insert_order(ids[0], ANA)).vehicle == str(west.id)
        else:
            assert {x.order_id for x in (await a.place(ids, ANA)).assigned} == set(ids)
    assert sorted(await open_stops(db)) == sorted((i, StopKind.DELIVERY, west.id) for i in ids)
