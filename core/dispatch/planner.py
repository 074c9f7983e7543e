"""Dispatch: who takes which order, in which order, arriving when.

- `dispatch_day`: plan every waiting order of the day across the drivers on shift;
- `optimize`: re-plan everything not yet in a van, and say what it saves against the current plan;
- `insert_order`: put one new order at its cheapest feasible place, and say why there;
- `replan_driver`: re-order one driver's remaining stops from where she is now;
- `on_location` / `refresh_etas` / `eta`: arrival times from the live position, computed once
  per ping with what the position notices need (`Eta`);
- `assign_manually` / `release`: a dispatcher's choice wins until released.

The stop a driver is on her way to, and stops already done, never move. Reading, solving and
writing are separate steps: solving runs off the event loop with no transaction open, and each
write (`plan_writes`) locks what it touches and leaves out, and reports, every order that changed
in the meantime — so a manual choice made while solving stands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.clock import Clock
from core.config import OrdersSettings, RoutingSettings
from core.db import Database
from core.dispatch.plan_writes import lock, orders_of, version, write_routes
from core.dispatch.world import (
    BIG,
    REORDER_MIN_MINUTES,
    World,
    delivery_id,
    load_world,
    order_of,
    unlocated,
)
from core.drivers.stops import delivery_eta, driver_names, first_name, ref_of
from core.drivers.visits import open_rows
from core.errors import DomainError, NotFound
from core.models import Order, OrderStatus, StopKind
from core.orders import lifecycle
from core.orders.lifecycle import Actor, Change
from core.routing.check import evaluate, simulate
from core.routing.insert import Insertion, cheapest_insertion
from core.routing.plan import Plan, RoutePlan
from core.routing.problem import Problem, Vehicle, Window
from core.routing.solve import left_out_weight, solve_async
from core.routing.sticky import StickyPlan, sticky_plan
from core.routing.travel import Point, TravelProvider, haversine_m
from core.texts import t

log = logging.getLogger(__name__)
S = OrderStatus
LATE_REPLAN_EVERY = timedelta(minutes=10)  # a driver running late: re-planned at most so often
FEW = 12  # arrivals up to this many: the batch solve is checked against placing them one by one


@dataclass(frozen=True)
class Assignment:
    order_id: int
    driver_id: int
    driver: str  # first name
    reason: str = ""


@dataclass(frozen=True)
class Eta:
    """A driver's open delivery as seen from where she is now: when she will be there, and
    what the position notices need, from the same reading."""

    at: datetime
    heading: bool  # out for delivery: she is driving to it
    attempt: int  # which delivery attempt (a notice is sent once per attempt)
    window_end: datetime | None  # the end of its last delivery window
    metres: float | None  # straight line from her last position to the door


@dataclass
class DispatchReport:
    assigned: list[Assignment] = field(default_factory=list)
    unassigned: dict[int, str] = field(default_factory=dict)  # order id -> why
    skipped: dict[int, str] = field(default_factory=dict)  # changed while solving: left as is
    before: Plan | None = None  # the current plan, for /optimize
    after: Plan | None = None
    engine: str = ""  # what planned it: pyvrp, ortools, or current (the plan in force stayed)

    @property
    def seconds_saved(self) -> int:
        return (self.before.duration - self.after.duration) if self.before and self.after else 0

    @property
    def metres_saved(self) -> int:
        return (self.before.distance - self.after.distance) if self.before and self.after else 0


class Planner:
    def __init__(
        self,
        db: Database,
        travel: TravelProvider,
        routing: RoutingSettings | None = None,
        orders: OrdersSettings | None = None,
        *,
        executor: Executor | None = None,
        clock: Clock | None = None,
        zone: str = "UTC",
    ) -> None:
        self.db = db
        self.zone = ZoneInfo(zone)
        self.travel = travel
        self.routing = routing or RoutingSettings()
        self.orders = orders or OrdersSettings()
        self.executor = executor
        self.clock: Clock = clock or db.now
        self._late_replans: dict[int, datetime] = {}  # driver -> when she was last re-planned
        # who re-plans a late driver instead of `replan_driver` (the autopilot, in auto mode)
        self.on_late: Callable[[int], None] | None = None

    async def world(self, **options: object) -> World:
        async with self.db.reads() as session:
            return await load_world(
                session,
                self.travel,
                self.routing,
                now=self.clock(),
                zone=self.zone,
                **options,  # type: ignore[arg-type]
            )

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

    async def place(self, order_ids: list[int], actor: Actor) -> DispatchReport:
        """Plan these waiting orders together in one solve, every stop already on a route kept
        with its driver (re-sequenced at most): arrivals in bulk move nobody's stops to another
        driver."""
        world = await self.world(waiting=order_ids)
        arriving = set(order_ids)
        kept = []
        for stop in world.problem.stops:
            order = world.orders[order_of(stop.id)]
            if order.id not in arriving and order.driver_id is not None:
                stop = dataclasses.replace(stop, vehicles=frozenset({str(order.driver_id)}))
            kept.append(stop)
        world.problem = dataclasses.replace(world.problem, stops=tuple(kept))
        plan = await self._solve(world)
        if len(arriving) <= FEW:
            plan = await self._or_one_by_one(world, plan, arriving)
        # A route whose orders changed while solving (a stop picked up or delivered) was timed
        # from stale data: not written; its arrivals come back skipped, placed again afresh.
        return await self._apply(world, plan, actor, whole=True)

    async def _or_one_by_one(self, world: World, solved: Plan, arriving: set[int]) -> Plan:
        """The batch solve, unless placing the few arrivals one by one into the routes in force
        (nobody's stop moved to another driver) keeps more windows, leaves out less or costs
        less: a solve cut short by its time limit can leave out or make late stops that the
        routes in force keep."""
        waiting = [s.id for s in world.problem.stops if order_of(s.id) in arriving]
        sticky = await self.sticky(world, waiting, BIG, placing_only=True)
        one_by_one = evaluate(world.problem, sticky.sequences, sticky.unplaced, engine="insertion")

        def rank(checked: tuple[Plan, list]) -> tuple[int, int]:
            """Broken promises (a stop late or left out: a stop of a route in force that a
            plan leaves out stays with its driver, late), then cost."""
            plan, violations = checked
            late = {v.stop for v in violations}
            return len(late) + left_out_weight(world.problem, plan), plan.cost

        batch = evaluate(world.problem, solved.sequences, solved.unassigned, engine=solved.engine)
        if rank(one_by_one) < rank(batch):
            log.info("arrivals placed one by one: %s better than the batch solve's %s",
                     rank(one_by_one), rank(batch))  # fmt: skip
            return one_by_one[0]
        return solved

    async def sticky(
        self, world: World, waiting: list[str], min_saving: int, *, placing_only: bool = False
    ) -> StickyPlan:
        """The sticky re-plan (`core.routing.sticky`) of this world, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor,
            lambda: sticky_plan(
                world.problem,
                world.sequences,
                waiting=waiting,
                locked=world.locked,
                min_saving=min_saving,
                min_reorder=world.cost_of_minutes(REORDER_MIN_MINUTES),
                placing_only=placing_only,
            ),
        )

    async def insert_order(self, order_id: int, actor: Actor, *, note: bool = True) -> Insertion:
        """Put a new order at its cheapest feasible place among the drivers on shift. `note`:
        record (and alert) when nobody can take it; the autopilot does that itself, once."""
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
            routes = [insertion.route] if insertion.route is not None else []
            locked = await lock(session, [int(r.vehicle) for r in routes],
                                [order_id, *orders_of(routes)])  # fmt: skip
            order = locked.orders.get(order_id)
            if order is None or version(order) != version(world.orders[order_id]):
                return _unplaced(insertion, t("dispatch.changed"))
            if insertion.vehicle is None:
                reasons = "; ".join(
                    f"{world.names.get(v, v)}: {why}" for v, why in insertion.rejected.items()
                )
                reason = f"{insertion.reason} ({reasons})" if reasons else insertion.reason
                insertion = dataclasses.replace(insertion, reason=reason)
                if note:
                    data = {"reason": reason}
                    await lifecycle.note(session, order_id, "unassignable", actor, data)
                return insertion
            written = await write_routes(
                session, world, routes, actor, locked, whole=True,
                max_attempts=self.orders.max_attempts, why={order_id: insertion.reason},
            )  # fmt: skip
            if why := written.skipped.get(order_id) or written.refused.get(order_id):
                return _unplaced(insertion, why)
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

    async def _apply(
        self, world: World, plan: Plan, actor: Actor, *, whole: bool = False
    ) -> DispatchReport:
        report = DispatchReport(engine=plan.engine)
        async with self.db.transaction() as session:
            drivers = [int(route.vehicle) for route in plan.routes]
            locked = await lock(session, drivers, orders_of(plan.routes))
            written = await write_routes(
                session, world, plan.routes, actor, locked,
                max_attempts=self.orders.max_attempts, whole=whole,
            )  # fmt: skip
        report.assigned = [
            Assignment(order_id, driver_id, world.names.get(str(driver_id), ""))
            for order_id, driver_id in written.assigned
        ]
        report.unassigned.update(written.refused)
        report.skipped = written.skipped
        for stop_id, reason in plan.unassigned.items():
            report.unassigned.setdefault(order_of(stop_id), reason)
        return report

    # -- manual choices ----------------------------------------------------------------

    async def assign_manually(self, order_id: int, driver_id: int, actor: Actor) -> str:
        """A dispatcher's choice: later plans keep this order with this driver. The assignment
        and its place on her route are one transaction. Refused, saving nothing, when another
        dispatcher's choice for this order landed since it was read. Returns the driver's name."""
        async with self.db.reads() as session:
            seen = await session.get(Order, order_id)
            if seen is None:
                raise NotFound("error.order_not_found", order=order_id)
        world = await self.world(only_driver=driver_id, waiting=[], manual=order_id)
        route = _placement(world, driver_id, order_id)
        routes = [route] if route is not None else []
        async with self.db.transaction() as session:
            locked = await lock(session, [driver_id], [order_id, *orders_of(routes)])
            order = locked.orders[order_id]
            hers = order.status is S.ASSIGNED and order.driver_id == driver_id
            names = await driver_names(session, {driver_id, order.driver_id or driver_id})
            if version(order) != version(seen) and order.driver_locked and not hers:
                winner = first_name(names.get(order.driver_id or 0, "?"))
                raise DomainError("dispatch.taken", ref=ref_of(order), driver=winner)
            if not hers:
                await lifecycle.transition(
                    session, order_id, S.ASSIGNED, actor, Change(driver_id=driver_id),
                    max_attempts=self.orders.max_attempts,
                )  # fmt: skip
            order.driver_locked = True
            order.updated_at = self.db.now()
            session.add(order)
            await write_routes(
                session, world, routes, actor, locked,
                max_attempts=self.orders.max_attempts, fresh={order_id},
            )  # fmt: skip
        return names.get(driver_id, "?")

    async def release(self, order_id: int, actor: Actor) -> None:
        async with self.db.transaction() as session:
            order = await session.get(Order, order_id)
            if order is None:
                raise DomainError("error.order_not_found", order=order_id)
            if order.driver_locked:
                order.driver_locked = False
                order.updated_at = self.db.now()  # plans read before this see it changed
                session.add(order)
                await lifecycle.note(session, order_id, "lock_released", actor)

    # -- ETAs ----------------------------------------------------------------------------

    async def on_location(self, driver_id: int, actor: Actor) -> dict[int, Eta]:
        """What a location ping sets off: fresh ETAs, and when a stop is now predicted late,
        a re-plan: asked of `on_late` when someone listens (the autopilot's re-plan of the
        day, which may give a late stop to a driver on time for it), else her remaining stops
        re-ordered here (the one she is heading to stays first)."""
        etas, late = await self._refresh(driver_id)
        if late and self._may_replan(driver_id):
            log.info("driver %s runs late for %s: re-planning", driver_id, ", ".join(late))
            if self.on_late is not None:
                self.on_late(driver_id)
                return etas
            await self.replan_driver(driver_id, actor)
            etas, _ = await self._refresh(driver_id)
        return etas

    def _may_replan(self, driver_id: int) -> bool:
        """A driver running late is re-planned at most every `LATE_REPLAN_EVERY` of the
        service's time: a stop that cannot be on time stays late, and re-solving her route at
        every ping only reshuffles it (and costs a solve each time)."""
        now, last = self.clock(), self._late_replans.get(driver_id)
        if last is not None and timedelta(0) <= now - last < LATE_REPLAN_EVERY:
            return False
        self._late_replans[driver_id] = now
        return True

    async def refresh_etas(self, driver_id: int) -> dict[int, Eta]:
        """Arrival times of a driver's open deliveries from where she is now."""
        return (await self._refresh(driver_id))[0]

    async def _refresh(self, driver_id: int) -> tuple[dict[int, Eta], list[str]]:
        world = await self.world(only_driver=driver_id, waiting=[])
        vehicle = world.problem.vehicle_by_id.get(str(driver_id))
        sequence = world.sequences.get(str(driver_id), [])
        if vehicle is None or not sequence:
            return {}, []
        from_now = dataclasses.replace(vehicle, shift=Window(0, vehicle.shift.end))
        route, violations = simulate(world.problem, from_now, sequence)  # late is still an ETA
        late = [v.stop for v in violations if v.kind == "time_window" and v.stop]
        driver = world.drivers[str(driver_id)]
        here = None
        if driver.last_lat is not None and driver.last_lon is not None:
            here = Point(driver.last_lat, driver.last_lon)
        etas: dict[int, Eta] = {}
        async with self.db.transaction() as session:
            orders = list({order_of(visit.stop) for visit in route.visits})
            rows = {(r.order_id, r.kind): r for r in await open_rows(session, orders)}
            for visit in route.visits:
                order_id = order_of(visit.stop)
                kind = StopKind.PICKUP if visit.stop.endswith("p") else StopKind.DELIVERY
                at = world.at(visit.arrival)
                if row := rows.get((order_id, kind)):
                    row.eta = at
                    session.add(row)
                if kind is StopKind.DELIVERY:
                    etas[order_id] = _eta(world, order_id, at, here)
        return etas, late

    async def eta(self, order_id: int) -> datetime | None:
        async with self.db.reads() as session:
            return await delivery_eta(session, order_id)


def _pin_prefixes(world: World) -> tuple[Problem, dict[str, str]]:
    """Each moving driver's next stop is fixed: she starts, in the problem, from that stop at
    the time she will leave it, having worked since she did on the way there (a rest taken or
    waited out before it counts), and the stop itself leaves the problem."""
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
        visit = route.visits[0]
        stop = problem.stop_by_id[first]
        vehicles.append(
            dataclasses.replace(
                vehicle,
                start=stop.location,
                parked=True,  # she leaves it: a break due then comes before the next leg
                shift=Window(min(visit.departure, vehicle.shift.end), vehicle.shift.end),
                max_stops=None if vehicle.max_stops is None else max(0, vehicle.max_stops - 1),
                rested=_rested_at(problem, vehicle, route),
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


def _rested_at(problem: Problem, vehicle: Vehicle, route: RoutePlan) -> int | None:
    """When her stretch of work began, as she leaves the one stop of `route`: as it began for
    the route, or later by a rest she took before the stop or a wait there long enough."""
    if problem.breaks is None:
        return vehicle.rested
    visit = route.visits[0]
    rested = problem.rested(vehicle, route.departure)
    for start in route.breaks:
        if start < visit.arrival:
            rested = start + problem.breaks.length
        elif start == visit.arrival and visit.start - visit.arrival >= problem.breaks.length:
            rested = visit.start
    return rested


def _eta(world: World, order_id: int, at: datetime, here: Point | None) -> Eta:
    order = world.orders[order_id]
    metres = None
    if here is not None and order.lat is not None and order.lon is not None:
        metres = float(haversine_m([here], [Point(order.lat, order.lon)])[0, 0])
    heading = order.status is S.OUT_FOR_DELIVERY
    return Eta(at, heading, order.attempts, world.window_ends.get(order_id), metres)


def _unplaced(insertion: Insertion, why: str) -> Insertion:
    return dataclasses.replace(insertion, vehicle=None, sequence=(), route=None, reason=why)


def _placement(world: World, driver_id: int, order_id: int) -> RoutePlan | None:
    """Her route with the order at its cheapest place (at the end if it fits nowhere); None when
    she is not on shift or the order has no map point."""
    vehicle = str(driver_id)
    sequence = world.sequences.get(vehicle, [])
    given = [s for s in sequence if order_of(s) == order_id]
    if vehicle not in world.problem.vehicle_by_id or not given:
        return None
    others = [s for s in sequence if order_of(s) != order_id]
    insertion = cheapest_insertion(
        world.problem, {vehicle: others}, delivery_id(order_id), locked=world.locked
    )
    stops = list(insertion.sequence) or [*others, *given]
    return simulate(world.problem, world.problem.vehicle_by_id[vehicle], stops)[0]
