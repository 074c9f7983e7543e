"""Re-planning without churn: the periodic re-plan, and the one after an event.

`reoptimize()` is the one entry point: every DISPATCH_REOPTIMIZE_MINUTES (the scheduler), and
after a cancel, a failed stop, a driver ending her shift or ETAs slipping past windows. It reads
the world, runs the sticky re-plan (`core.routing.sticky`) off the event loop and writes only
the routes that changed:
- a stop keeps its driver unless moving it saves more than DISPATCH_MOVE_MIN_SAVING_MINUTES
  (a swap or a chain: that much for each order it moves), compared in the plan's cost
  converted to minutes of paid driver time (the objective's weight of one second of route
  time; with today's duration objective simply route minutes);
  re-ordering within a route is free (above one minute's saving, so noise never re-orders);
- the stop a driver is heading to, a parcel in the van or on board (`Order.loaded_at`) and a
  dispatcher's manual assignment never go to another driver (the world pins them);
- waiting orders are placed at their cheapest feasible place.
Each driver whose route changed (stops added or taken off, a different first stop) gets one
message saying so, in the same transaction, keyed by the change so a retried write never sends
it twice; the order events of the change send the drivers nothing else. With nothing changed
(a frozen clock, nothing new) it writes nothing at all.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from core.dispatch.plan_writes import lock, orders_of, write_routes
from core.dispatch.planner import Planner
from core.dispatch.world import (
    WAITING,
    World,
    delivery_id,
    order_of,
    pickup_id,
)
from core.drivers.stops import ref_of
from core.models import Driver
from core.notify import outbox
from core.notify.rules import ROUTE_MESSAGE, Notice
from core.orders.lifecycle import Actor
from core.routing.check import simulate
from core.routing.sticky import RouteChange, changes

log = logging.getLogger(__name__)


@dataclass
class ReplanReport:
    placed: dict[int, int] = field(default_factory=dict)  # order -> driver
    unplaced: dict[int, str] = field(default_factory=dict)  # order -> why not
    moved: dict[int, tuple[int, int]] = field(default_factory=dict)  # order -> (from, to)
    skipped: dict[int, str] = field(default_factory=dict)  # changed meanwhile: left as it is
    told: list[int] = field(default_factory=list)  # drivers told their route changed

    @property
    def changed(self) -> bool:
        return bool(self.placed or self.moved or self.told)


async def reoptimize(
    planner: Planner,
    actor: Actor,
    *,
    min_saving_minutes: float,
    day: date | None = None,
) -> ReplanReport:
    """Re-plan today from where everyone is now, changing only what is worth changing."""
    world = await planner.world(day=day)
    waiting = [
        stop
        for order_id, order in world.orders.items()
        if order.status in WAITING
        for stop in (pickup_id(order_id), delivery_id(order_id))
        if stop in world.problem.stop_by_id
    ]
    plan = await planner.sticky(world, waiting, world.cost_of_minutes(min_saving_minutes))
    report = ReplanReport(unplaced={order_of(s): why for s, why in plan.unplaced.items()})
    before = {v: list(world.sequences.get(v, [])) for v in plan.sequences}
    changed = {v: stops for v, stops in plan.sequences.items() if stops != before[v]}
    if not changed:
        return report
    problem = world.problem
    routes = [simulate(problem, problem.vehicle_by_id[v], stops)[0] for v, stops in changed.items()]
    for move in plan.moves:
        if move.source != move.target:
            for stop in move.stops:  # a chain moves several orders
                report.moved[order_of(stop)] = (int(move.source), int(move.target))
    for stop, target in plan.rescued.items():  # late where it was: to a driver on time for it
        source = next(v for v, stops in before.items() if stop in stops)
        report.moved[order_of(stop)] = (int(source), int(target))
    async with planner.db.transaction() as session:
        drivers = [int(v) for v in changed]
        locked = await lock(session, drivers, orders_of(routes) + list(report.moved))
        written = await write_routes(
            session, world, routes, actor, locked,
            max_attempts=planner.orders.max_attempts, extra={ROUTE_MESSAGE: True},
        )  # fmt: skip
        report.skipped = {**written.skipped, **written.refused}
        saved = written.saved
        for vehicle, change in changes({v: before[v] for v in saved}, saved).items():
            if await _tell(session, world, int(vehicle), change, before[vehicle], saved[vehicle]):
                report.told.append(int(vehicle))
    placed = {order_of(s): int(v) for s, v in plan.placed.items()}
    report.placed = {o: d for o, d in placed.items() if o not in report.skipped}
    report.moved = {o: m for o, m in report.moved.items() if o not in report.skipped}
    log.info(
        "re-plan: %d placed, %d moved, %d re-ordered routes, %d drivers told",
        len(report.placed), len(report.moved), len(changed), len(report.told),
    )  # fmt: skip
    return report


async def _tell(
    session: AsyncSession,
    world: World,
    driver_id: int,
    change: RouteChange,
    before: list[str],
    after: list[str],
) -> bool:
    """One "your route changed" message to this driver, keyed by the change itself."""
    driver = await session.get(Driver, driver_id)
    if driver is None:
        return False

    def refs(stops: tuple[str, ...]) -> list[str]:
        orders = dict.fromkeys(order_of(s) for s in stops)
        return [ref_of(world.orders[o]) for o in orders if o in world.orders]

    first = world.orders.get(order_of(change.first)) if change.first else None
    params = {
        "added": refs(change.added),
        "removed": refs(change.removed),
        "first": ref_of(first) if first else "",
        "first_address": first.address if first else "",
        "count": len({order_of(s) for s in after}),
    }
    # The change itself names the message: two writers (a retry, a second instance) that make
    # the same change the same day send it once.
    digest = hashlib.sha256(
        f"{world.epoch.date()}|{','.join(before)}|{','.join(after)}".encode()
    ).hexdigest()[:24]
    notice = Notice(driver.member_id, "driver.route_changed", params)
    row = await outbox.add(session, notice, f"route-changed:{driver_id}:{digest}")
    return row is not None
