"""Dispatch: who takes which order, in which order, arriving when.

- `dispatch_day`: plan every waiting order of the day across the drivers on shift;
- `optimize`: re-plan everything not yet in a van, and say what it saves against the current plan;
- `insert_order`: put one new order at its cheapest feasible place, and say why there;
- `replan_driver`: re-order one driver's remaining stops from where she is now;
- `refresh_etas` / `eta` / `is_near`: arrival times from the live position;
- `assign_manually` / `release`: a dispatcher's choice wins until released.

The stop a driver is on her way to, and stops already done, never move. Reading, solving and
writing are separate steps: solving runs off the event loop with no transaction open, and each
write goes through the lifecycle, which refuses an order that changed in the meantime.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import lifecycle
from core.config import OrdersSettings, RoutingSettings
from core.db import Database
from core.errors import DomainError
from core.lifecycle import Actor, Change, TransitionRefused
from core.models import (
    Driver,
    Order,
    OrderStatus,
    Route,
    RouteStatus,
    RouteStop,
    StopKind,
    utcnow,
)
from core.routing.check import evaluate, simulate
from core.routing.insert import Insertion, cheapest_insertion
from core.routing.plan import Plan, RoutePlan
from core.routing.problem import Problem, Window
from core.routing.solve import solve_async
from core.routing.travel import Point, TravelProvider, haversine_m
from core.services.stops import delivery_eta
from core.services.world import (
    OPEN,
    World,
    delivery_id,
    load_world,
    order_of,
    unlocated,
)
from core.texts import t

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass(frozen=True)
class Assignment:
    order_id: int
    driver_id: int
    driver: str  # first name
    reason: str = ""


@dataclass
class DispatchReport:
    assigned: list[Assignment] = field(default_factory=list)
    unassigned: dict[int, str] = field(default_factory=dict)  # order id -> why
    before: Plan | None = None  # the current plan, for /optimize
    after: Plan | None = None
    engine: str = ""  # what planned it: pyvrp, ortools, or current (the plan in force stayed)

    @property
    def seconds_saved(self) -> int:
        return (self.before.duration - self.after.duration) if self.before and self.after else 0

    @property
    def metres_saved(self) -> int:
        return (self.before.distance - self.after.distance) if self.before and self.after else 0


class Dispatcher:
    def __init__(
        self,
        db: Database,
        travel: TravelProvider,
        routing: RoutingSettings | None = None,
        orders: OrdersSettings | None = None,
        *,
        executor: Executor | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.travel = travel
        self.routing = routing or RoutingSettings()
        self.orders = orders or OrdersSettings()
        self.executor = executor
        self.clock = clock

    async def world(self, **options: object) -> World:
        async with self.db.reads() as session:
            return await load_world(session, self.travel, self.routing, now=self.clock(), **options)  # type: ignore[arg-type]

    # -- planning ----------------------------------------------------------------------

    async def dispatch_day(self, actor: Actor, day: date | None = None) -> DispatchReport:
        """Assign every waiting order of the day; existing assignments may be re-planned."""
        world = await self.world(day=day)
        plan = await self._solve(world)
        report = await self._apply(world, plan, actor)
        async with self.db.reads() as session:
            for order_id in await unlocated(session, day or world.epoch.date()):
                report.unassigned[order_id] = t("dispatch.no_location")
        return report

    async def optimize(self, actor: Actor, day: date | None = None) -> DispatchReport:
        """Re-plan what is not yet in a van (waiting orders included) and report the saving
        against the current plan."""
        world = await self.world(day=day)
        current = {v: list(stops) for v, stops in world.sequences.items() if stops}
        before, _ = evaluate(world.problem, current)
        plan = await self._solve(world)
        report = await self._apply(world, plan, actor)
        routed = {s for stops in current.values() for s in stops}
        kept = {s for r in plan.routes for s in r.stops if s in routed}
        if kept == routed:  # compare like with like: the same stops, before and after
            after_same, _ = evaluate(
                world.problem, {r.vehicle: [s for s in r.stops if s in routed] for r in plan.routes}
            )
            report.before, report.after = before, after_same
        return report

    async def replan_driver(self, driver_id: int, actor: Actor) -> DispatchReport:
        """Re-order one driver's remaining stops from her live position."""
        world = await self.world(only_driver=driver_id, waiting=[])
        vehicle = str(driver_id)
        if vehicle not in world.problem.vehicle_by_id:
            raise DomainError("dispatch.not_on_shift", driver=driver_id)
        stops = [world.problem.stop_by_id[s] for s in world.sequences.get(vehicle, [])]
        pinned = [dataclasses.replace(s, vehicles=frozenset({vehicle})) for s in stops]
        world.problem = dataclasses.replace(world.problem, stops=tuple(pinned))
        plan = await self._solve(world)
        if plan.unassigned:
            # Her own stops that can no longer be on time stay hers: after the ones that still
            # can be, earliest deadline first, so they keep ETAs and the others stay on time.
            def deadline(stop_id: str) -> int:
                return world.problem.windows(world.problem.stop_by_id[stop_id])[-1].end

            late = sorted(plan.unassigned, key=deadline)
            sequence = [*plan.sequences.get(vehicle, []), *late]
            route, _ = simulate(world.problem, world.problem.vehicle_by_id[vehicle], sequence)
            plan = dataclasses.replace(plan, routes=(route,), unassigned={})
        return await self._apply(world, plan, actor)

    async def insert_order(self, order_id: int, actor: Actor) -> Insertion:
        """Put a new order at its cheapest feasible place among the drivers on shift."""
        world = await self.world(waiting=[order_id])
        stop_id = delivery_id(order_id)
        if stop_id not in world.problem.stop_by_id:
            raise DomainError("dispatch.not_waiting", order=order_id)
        insertion = cheapest_insertion(
            world.problem,
            world.sequences,
            stop_id,
            locked=world.locked,
            nearest=world.nearest_driver(stop_id),
            names=world.names,
        )
        async with self.db.transaction() as session:
            if insertion.vehicle is None:
                reasons = "; ".join(
                    f"{world.names.get(v, v)}: {why}" for v, why in insertion.rejected.items()
                )
                reason = f"{insertion.reason} ({reasons})" if reasons else insertion.reason
                insertion = dataclasses.replace(insertion, reason=reason)
                await lifecycle.note(session, order_id, "unassignable", actor, {"reason": reason})
                return insertion
            driver_id = int(insertion.vehicle)
            await lifecycle.transition(
                session, order_id, S.ASSIGNED, actor, Change(driver_id=driver_id,
                                                             extra={"why": insertion.reason}),
                max_attempts=self.orders.max_attempts,
            )  # fmt: skip
            assert insertion.route is not None
            await _save_route(session, world, insertion.route)
        return insertion

    async def _solve(self, world: World) -> Plan:
        """Solve with each moving driver's next stop pinned first, then re-check the whole."""
        problem, prefix = _pin_prefixes(world)
        current = {v: [s for s in stops if s not in prefix.values()]
                   for v, stops in world.sequences.items()}  # fmt: skip
        plan = await solve_async(
            problem,
            executor=self.executor,
            time_limit_s=self.routing.time_limit_s,
            seed=1,
            current=current,
        )
        if not prefix:
            return plan
        sequences = plan.sequences
        for vehicle, first in prefix.items():
            sequences[vehicle] = [first, *sequences.get(vehicle, [])]
        full, violations = evaluate(world.problem, sequences, plan.unassigned, engine=plan.engine)
        if violations:  # the pinned stop itself is late: still keep it first, never reorder it
            log.info("re-plan keeps late pinned stops: %s", violations[0].message)
        return full

    async def _apply(self, world: World, plan: Plan, actor: Actor) -> DispatchReport:
        report = DispatchReport(engine=plan.engine)
        async with self.db.transaction() as session:
            for route in plan.routes:
                driver_id = int(route.vehicle)
                for stop_id in route.stops:
                    order_id = order_of(stop_id)
                    order = world.orders[order_id]
                    if stop_id.endswith("p") or order.driver_id == driver_id:
                        continue
                    try:
                        async with session.begin_nested():
                            await lifecycle.transition(
                                session, order_id, S.ASSIGNED, actor,
                                Change(driver_id=driver_id), max_attempts=self.orders.max_attempts,
                            )  # fmt: skip
                    except TransitionRefused as exc:
                        report.unassigned[order_id] = str(exc)
                        continue
                    report.assigned.append(
                        Assignment(order_id, driver_id, world.names.get(route.vehicle, ""))
                    )
                await _save_route(session, world, route)
        for stop_id, reason in plan.unassigned.items():
            report.unassigned.setdefault(order_of(stop_id), reason)
        return report

    # -- manual choices ----------------------------------------------------------------

    async def assign_manually(self, order_id: int, driver_id: int, actor: Actor) -> None:
        """A dispatcher's choice: later plans keep this order with this driver."""
        async with self.db.transaction() as session:
            order = await session.get(Order, order_id)
            if order is not None and order.status is S.ASSIGNED and order.driver_id == driver_id:
                order.driver_locked = True  # already hers: just lock it
                session.add(order)
                return
            await lifecycle.transition(
                session, order_id, S.ASSIGNED, actor, Change(driver_id=driver_id),
                max_attempts=self.orders.max_attempts,
            )  # fmt: skip
            order = await session.get(Order, order_id)
            assert order is not None
            order.driver_locked = True
            session.add(order)
        await self._place(driver_id, order_id)

    async def _place(self, driver_id: int, order_id: int) -> None:
        """Put a (manually) assigned order at its cheapest place in the driver's route."""
        world = await self.world(only_driver=driver_id, waiting=[])
        vehicle = str(driver_id)
        if vehicle not in world.problem.vehicle_by_id:
            return  # not on shift yet: it joins her route when she starts
        stop_id = delivery_id(order_id)
        others = [s for s in world.sequences.get(vehicle, []) if order_of(s) != order_id]
        insertion = cheapest_insertion(
            world.problem, {vehicle: others}, stop_id, locked=world.locked
        )
        sequence = list(insertion.sequence) or [*others, *world.sequences[vehicle][len(others) :]]
        route, _ = simulate(world.problem, world.problem.vehicle_by_id[vehicle], sequence)
        async with self.db.transaction() as session:
            await _save_route(session, world, route)

    async def release(self, order_id: int, actor: Actor) -> None:
        async with self.db.transaction() as session:
            order = await session.get(Order, order_id)
            if order is None:
                raise DomainError("error.order_not_found", order=order_id)
            if order.driver_locked:
                order.driver_locked = False
                session.add(order)
                await lifecycle.note(session, order_id, "lock_released", actor)

    # -- ETAs ----------------------------------------------------------------------------

    async def on_location(self, driver_id: int, actor: Actor) -> dict[int, datetime]:
        """What a location ping sets off: fresh ETAs, and when a stop is now predicted late,
        a re-plan of her remaining stops (the one she is heading to stays first)."""
        etas, late = await self._refresh(driver_id)
        if late:
            log.info("driver %s runs late for %s: re-planning", driver_id, ", ".join(late))
            await self.replan_driver(driver_id, actor)
            etas, _ = await self._refresh(driver_id)
        return etas

    async def refresh_etas(self, driver_id: int) -> dict[int, datetime]:
        """Arrival times of a driver's open stops from where she is now."""
        return (await self._refresh(driver_id))[0]

    async def _refresh(self, driver_id: int) -> tuple[dict[int, datetime], list[str]]:
        world = await self.world(only_driver=driver_id, waiting=[])
        vehicle = world.problem.vehicle_by_id.get(str(driver_id))
        sequence = world.sequences.get(str(driver_id), [])
        if vehicle is None or not sequence:
            return {}, []
        from_now = dataclasses.replace(vehicle, shift=Window(0, vehicle.shift.end))
        route, violations = simulate(world.problem, from_now, sequence)  # late is still an ETA
        late = [v.stop for v in violations if v.kind == "time_window" and v.stop]
        etas: dict[int, datetime] = {}
        async with self.db.transaction() as session:
            orders = {order_of(visit.stop) for visit in route.visits}
            statement = select(RouteStop).where(col(RouteStop.order_id).in_(orders))
            rows = {(r.order_id, r.kind): r for r in await session.exec(statement)}
            for visit in route.visits:
                order_id = order_of(visit.stop)
                kind = StopKind.PICKUP if visit.stop.endswith("p") else StopKind.DELIVERY
                eta = world.at(visit.arrival)
                if row := rows.get((order_id, kind)):
                    row.eta = eta
                    session.add(row)
                if kind is StopKind.DELIVERY:
                    etas[order_id] = eta
        return etas, late

    async def eta(self, order_id: int) -> datetime | None:
        async with self.db.reads() as session:
            return await delivery_eta(session, order_id)

    async def is_near(
        self, order_id: int, *, minutes: float | None = None, metres: float | None = None
    ) -> bool:
        """Is the order's driver within `minutes` (by ETA) or `metres` (straight line)?"""
        async with self.db.reads() as session:
            order = await session.get(Order, order_id)
            if order is None or order.status not in OPEN or order.driver_id is None:
                return False
            driver = await session.get(Driver, order.driver_id)
        if metres is not None and driver and driver.last_lat is not None and order.lat is not None:
            here = Point(driver.last_lat, driver.last_lon)  # type: ignore[arg-type]
            there = Point(order.lat, order.lon)  # type: ignore[arg-type]
            if float(haversine_m([here], [there])[0, 0]) <= metres:
                return True
        if minutes is not None:
            eta = await self.eta(order_id)
            return eta is not None and eta - self.clock() <= timedelta(minutes=minutes)
        return False


def _pin_prefixes(world: World) -> tuple[Problem, dict[str, str]]:
    """Each moving driver's next stop is fixed: she starts, in the problem, from that stop at
    the time she will leave it, and the stop itself leaves the problem."""
    problem = world.problem
    if not world.locked:
        return problem, {}
    prefix: dict[str, str] = {}
    vehicles = []
    for vehicle in problem.vehicles:
        sequence = world.sequences.get(vehicle.id, [])
        if not world.locked.get(vehicle.id) or not sequence:
            vehicles.append(vehicle)
            continue
        first = sequence[0]
        route, _ = simulate(problem, vehicle, [first])
        leave = route.visits[0].departure
        stop = problem.stop_by_id[first]
        vehicles.append(
            dataclasses.replace(
                vehicle,
                start=stop.location,
                shift=Window(min(leave, vehicle.shift.end), vehicle.shift.end),
                max_stops=None if vehicle.max_stops is None else max(0, vehicle.max_stops - 1),
            )
        )
        prefix[vehicle.id] = first
    pinned = set(prefix.values())
    reduced = dataclasses.replace(
        problem,
        vehicles=tuple(vehicles),
        stops=tuple(s for s in problem.stops if s.id not in pinned),
        pairs=tuple(p for p in problem.pairs if p.pickup not in pinned),
    )
    return reduced, prefix


async def _save_route(session: AsyncSession, world: World, route: RoutePlan) -> None:
    """Write a driver's planned stops (sequence, planned times, ETAs) for today."""
    driver_id = int(route.vehicle)
    day = world.epoch.date()
    statement = select(Route).where(Route.driver_id == driver_id, Route.service_date == day)
    saved = (await session.exec(statement)).first()
    if saved is None:
        saved = Route(driver_id=driver_id, service_date=day)
    saved.engine = "dispatch"
    saved.planned_distance_m = route.distance
    saved.planned_duration_s = route.duration
    if any(world.orders[order_of(s)].status in (S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED)
           for s in route.stops):  # fmt: skip
        saved.status = RouteStatus.ACTIVE
    session.add(saved)
    await session.flush()
    orders = list({order_of(s) for s in route.stops})
    await session.exec(
        sa.delete(RouteStop).where(
            col(RouteStop.order_id).in_(orders), col(RouteStop.actual_arrival).is_(None)
        )
    )
    for sequence, visit in enumerate(route.visits):
        arrival = world.at(visit.arrival)
        session.add(
            RouteStop(
                route_id=saved.id,
                order_id=order_of(visit.stop),
                kind=StopKind.PICKUP if visit.stop.endswith("p") else StopKind.DELIVERY,
                sequence=sequence,
                planned_arrival=arrival,
                planned_departure=world.at(visit.departure),
                eta=arrival,
            )
        )
