"""What the plan in force costs from now on: per driver and in total, paid hours (departure to
return, waits and breaks included), drive time, km and cost at the configured rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.dispatch.planner import Planner
from core.routing.check import evaluate
from core.routing.cost import Figures, figures


@dataclass(frozen=True)
class DriverFigures:
    driver_id: int
    name: str  # first name
    figures: Figures


@dataclass(frozen=True)
class PlanFigures:
    at: datetime  # the plan is timed from here
    total: Figures
    drivers: list[DriverFigures]
    cost_per_hour: float
    cost_per_km: float


async def plan_figures(planner: Planner) -> PlanFigures:
    """The figures of every on-shift driver's open stops in their planned order, each leg
    timed at the hour it is driven, from her live position (or depot) now."""
    world = await planner.world(waiting=[])
    sequences = {v: stops for v, stops in world.sequences.items() if stops}
    plan, _ = evaluate(world.problem, sequences)  # a late stop is still driven: count it
    total, each = figures(plan, world.problem.objective)
    drivers = [
        DriverFigures(int(vehicle), world.names.get(vehicle, vehicle), each[vehicle])
        for vehicle in sorted(each, key=int)
    ]
    routing = planner.routing
    return PlanFigures(world.epoch, total, drivers, routing.cost_per_hour, routing.cost_per_km)
