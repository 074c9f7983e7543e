"""Writing a plan that was solved from data read earlier.

Every write (dispatch, optimize, re-plan, insertion, a manual placement) happens in one
transaction that first locks the drivers and orders it touches — drivers, then orders, each in id
order, so two writers never deadlock — and compares each order with what the plan read. An order
that changed meanwhile (assigned by hand, started, cancelled …) is left as it is and reported;
the route is saved without it. So a manual choice is never overridden, and a route saved for a
driver holds only orders that are hers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.dispatch.world import MOVING, OPEN, World, order_of
from core.drivers import rests
from core.drivers.visits import open_rows
from core.models import (
    Driver,
    Order,
    OrderStatus,
    Route,
    RouteStatus,
    RouteStop,
    ShiftState,
    StopKind,
)
from core.orders import lifecycle
from core.orders.lifecycle import Actor, Change, TransitionRefused
from core.routing.check import simulate
from core.routing.plan import RoutePlan
from core.texts import t

S = OrderStatus


def version(order: Order) -> tuple[OrderStatus, int | None, bool, datetime]:
    """What a plan must find unchanged before it writes over an order."""
    return order.status, order.driver_id, order.driver_locked, order.updated_at


@dataclass
class Locked:
    drivers: dict[int, Driver]  # the drivers asked for, as they are now
    orders: dict[int, Order]

    def planned(self, world: World, driver_id: int) -> bool:
        """Whether a plan read as `world` may still give her stops: she is on shift, or she was
        expected before her shift then (her working hours) and has neither started nor ended
        one since."""
        now = self.drivers.get(driver_id)
        if now is None or now.shift_state is ShiftState.ON:
            return now is not None
        seen = world.drivers.get(str(driver_id))
        return (
            seen is not None
            and seen.shift_state is ShiftState.OFF
            and seen.shift_started_at == now.shift_started_at
            and now.hours_from is not None
        )


async def lock(session: AsyncSession, drivers: Iterable[int], orders: Iterable[int]) -> Locked:
    """Lock drivers, then orders, each in id order; return them."""
    driver_rows: dict[int, Driver] = {}
    if driver_ids := sorted(set(drivers)):
        statement = (
            select(Driver)
            .where(col(Driver.id).in_(driver_ids))
            .order_by(col(Driver.id))
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: pings' inserts still pass
        )
        driver_rows = {d.id: d for d in await session.exec(statement) if d.id is not None}
    locked: dict[int, Order] = {}
    if order_ids := sorted(set(orders)):
        order_rows = (
            select(Order)
            .where(col(Order.id).in_(order_ids))
            .order_by(col(Order.id))
            .with_for_update()
        )
        locked = {o.id: o for o in await session.exec(order_rows) if o.id is not None}
    return Locked(driver_rows, locked)


def orders_of(routes: Iterable[RoutePlan]) -> list[int]:
    return list(dict.fromkeys(order_of(s) for route in routes for s in route.stops))


@dataclass
class Written:
    assigned: list[tuple[int, int]] = field(default_factory=list)  # (order, driver)
    skipped: dict[int, str] = field(default_factory=dict)  # order -> why it was left as it is
    refused: dict[int, str] = field(default_factory=dict)  # order -> why the lifecycle said no
    saved: dict[str, list[str]] = field(default_factory=dict)  # vehicle -> the stops written


async def write_routes(
    session: AsyncSession,
    world: World,
    routes: Iterable[RoutePlan],
    actor: Actor,
    locked: Locked,
    *,
    max_attempts: int,
    fresh: Collection[int] = (),
    why: dict[int, str] | None = None,
    extra: dict[str, object] | None = None,
    whole: bool = False,
) -> Written:
    """Assign and save each route, leaving out orders that changed since `world` was read.
    `locked` comes from `lock()` over these routes' drivers and orders; `fresh`: orders this
    transaction has already changed itself (a manual assignment), taken as they are now;
    `extra`: data for every assignment event this write makes; `whole`: a route with any order
    changed since the read is not written at all (its times were planned from stale data: a
    stop she has just picked up or delivered), every order of it skipped, to be placed again
    from a fresh read."""
    written = Written()
    kept: list[tuple[RoutePlan, set[int]]] = []
    for route in routes:
        driver_id = int(route.vehicle)
        if not locked.planned(world, driver_id):
            name = world.names.get(route.vehicle, route.vehicle)
            for order_id in orders_of([route]):
                written.skipped[order_id] = t("dispatch.off_shift", driver=name)
            continue
        if whole and any(
            _changed(world, locked, order_id, fresh) for order_id in orders_of([route])
        ):
            for order_id in orders_of([route]):
                written.skipped[order_id] = t("dispatch.changed")
            continue
        if await _given_since(session, world, driver_id, route):
            for order_id in orders_of([route]):  # her route without it would be out of order
                written.skipped[order_id] = t("dispatch.changed")
            continue
        keep = set()
        for order_id in orders_of([route]):
            now = locked.orders.get(order_id)
            if now is None or _changed(world, locked, order_id, fresh):
                written.skipped[order_id] = t("dispatch.changed")
                continue
            if now.driver_id != driver_id:
                data = {
                    **(extra or {}),
                    **({"why": why[order_id]} if why and order_id in why else {}),
                }
                try:
                    async with session.begin_nested():
                        await lifecycle.transition(
                            session, order_id, S.ASSIGNED, actor,
                            Change(driver_id=driver_id, extra=data), max_attempts=max_attempts,
                        )  # fmt: skip
                except TransitionRefused as exc:
                    written.refused[order_id] = str(exc)
                    continue
                written.assigned.append((order_id, driver_id))
            keep.add(order_id)
        kept.append((route, keep))
    for route, keep in kept:  # after every move of this write: whose each order is is known
        stops = await _her_stops(session, world, route, keep)
        if stops != list(route.stops):
            vehicle = world.problem.vehicle_by_id[route.vehicle]
            route, _ = simulate(world.problem, vehicle, stops)
        await save_route(session, world, route)
        written.saved[route.vehicle] = list(route.stops)
    return written


def _changed(world: World, locked: Locked, order_id: int, fresh: Collection[int]) -> bool:
    """Whether the order changed since `world` was read (gone, or another version)."""
    now = locked.orders.get(order_id)
    if now is None:
        return True
    return order_id not in fresh and version(now) != version(world.orders[order_id])


async def _her_stops(
    session: AsyncSession, world: World, route: RoutePlan, keep: set[int]
) -> list[str]:
    """The route's stops of the orders it may write, and every other open order still hers (a
    move away from her this write could not make) where her route had it: saved without them,
    their stops would keep old numbers among the renumbered ones."""
    stops = [s for s in route.stops if order_of(s) in keep]
    statement = select(Order).where(
        Order.driver_id == int(route.vehicle), col(Order.status).in_(OPEN)
    )
    left = {o.id: o for o in await session.exec(statement) if o.id not in keep}
    for stop in world.sequences.get(route.vehicle, []):
        order = left.get(order_of(stop))
        if order is None or (stop.endswith("p") and order.status is not S.ASSIGNED):
            continue
        before = world.sequences[route.vehicle]
        earlier = [s for s in before[: before.index(stop)] if s in stops]
        stops.insert(stops.index(earlier[-1]) + 1 if earlier else 0, stop)
    return stops


async def _given_since(
    session: AsyncSession, world: World, driver_id: int, route: RoutePlan
) -> bool:
    """Whether she has open orders that this plan did not know as hers (given to her since it
    was read, by another writer): her route written without them would leave their stops out
    of order. Her row is locked (`lock()`), so no writer gives her one meanwhile."""
    known = {o for o, order in world.orders.items() if order.driver_id == driver_id}
    known.update(orders_of([route]))
    statement = select(Order.id).where(Order.driver_id == driver_id, col(Order.status).in_(OPEN))
    return any(order_id not in known for order_id in await session.exec(statement))


async def save_route(session: AsyncSession, world: World, route: RoutePlan) -> None:
    """Write a driver's planned stops (sequence, planned times, ETAs) for today. Each order's
    open stop is moved and re-timed, never doubled: a stop being visited keeps its arrival."""
    driver_id = int(route.vehicle)
    day = world.epoch.date()
    statement = select(Route).where(Route.driver_id == driver_id, Route.service_date == day)
    saved = (await session.exec(statement)).first()
    if saved is None:
        saved = Route(driver_id=driver_id, service_date=day)
    saved.engine = "dispatch"
    saved.planned_distance_m = route.distance
    saved.planned_duration_s = route.duration
    saved.planned_drive_s = route.drive
    if any(world.orders[order_of(s)].status in MOVING for s in route.stops):
        saved.status = RouteStatus.ACTIVE
    session.add(saved)
    await session.flush()
    assert saved.id is not None
    current = {(r.order_id, r.kind): r for r in await open_rows(session, orders_of([route]))}
    for sequence, visit in enumerate(route.visits):
        kind = StopKind.PICKUP if visit.stop.endswith("p") else StopKind.DELIVERY
        order_id = order_of(visit.stop)
        row = current.pop((order_id, kind), None) or RouteStop(
            route_id=saved.id, order_id=order_id, kind=kind, sequence=sequence
        )
        row.route_id = saved.id
        row.sequence = sequence
        row.planned_arrival = row.eta = world.at(visit.arrival)
        row.planned_departure = world.at(visit.departure)
        session.add(row)
    for row in current.values():  # a stop the plan no longer has (its pickup is done)
        if row.actual_arrival is None:
            await session.delete(row)
    await rests.remember(session, driver_id, world.epoch, _breaks(world, route))


def _breaks(world: World, route: RoutePlan) -> list[tuple[datetime, int]]:
    """The breaks the route has her take (start, seconds); a wait long enough to be one is
    not among them: it is where the route waits anyway."""
    breaks = world.problem.breaks
    if breaks is None:
        return []
    waits = {v.arrival for v in route.visits if v.start - v.arrival >= breaks.length}
    return [(world.at(start), breaks.length) for start in route.breaks if start not in waits]
