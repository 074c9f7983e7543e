"""What a plan costs the business, and its figures: paid hours, drive time, km, cost.

The engines need integer unit costs, so money is counted in `SCALE`ths of the currency unit
(1/100,000: 20 an hour is 556 a second, 0.30 a km is 30 a metre) here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from core.routing.plan import Plan, RoutePlan
from core.routing.problem import Objective, Problem

SCALE = 100_000  # cost units per currency unit


def objective(cost_per_hour: float, cost_per_km: float) -> Objective:
    """The objective for these rates: paid time (the route's whole duration, waits and breaks
    included) per second and distance per metre. Both zero: duration alone, as before."""
    per_second = round(cost_per_hour * SCALE / 3600)
    per_metre = round(cost_per_km * SCALE / 1000)
    if per_second == 0 and per_metre == 0:
        return Objective(duration=1)
    return Objective(distance=per_metre, duration=per_second)


def in_engine_units(problem: Problem) -> Problem:
    """The problem in small cost units for the engines: the same ratios (within 1 %), the
    smallest unit cost 1 or 2. PyVRP bounds its penalty for lateness per second, so with unit
    costs in the hundreds its search stays in late plans (measured: 41 late of 203)."""
    objective = problem.objective
    units = [c for c in (objective.distance, objective.duration) if c > 0]
    smallest = min(units, default=1)
    if smallest <= 2:
        return problem
    factor = next(
        Fraction(m, smallest)
        for m in (1, 2, 3, 4, 5, 10)
        if all(abs(round(c * m / smallest) * smallest - c * m) <= 0.01 * c * m for c in units)
        or m == 10
    )

    def scaled(value: int) -> int:
        return math.ceil(value * factor)

    return dataclasses.replace(
        problem,
        objective=Objective(
            round(objective.distance * factor),
            round(objective.duration * factor),
            scaled(objective.vehicle),
        ),
        vehicles=tuple(
            dataclasses.replace(v, fixed_cost=scaled(v.fixed_cost)) for v in problem.vehicles
        ),
        stops=tuple(
            s if s.penalty is None else dataclasses.replace(s, penalty=scaled(s.penalty))
            for s in problem.stops
        ),
    )


@dataclass(frozen=True)
class Figures:
    """One route's or a whole plan's figures."""

    vans: int
    stops: int
    paid_s: int  # departure to end, waits and breaks included
    drive_s: int
    metres: int
    cost: float  # in the currency unit

    @property
    def paid_hours(self) -> float:
        return self.paid_s / 3600

    @property
    def drive_hours(self) -> float:
        return self.drive_s / 3600

    @property
    def km(self) -> float:
        return self.metres / 1000


def route_figures(route: RoutePlan, rates: Objective) -> Figures:
    cost = (rates.duration * route.duration + rates.distance * route.distance) / SCALE
    return Figures(
        1, len(route.visits), route.duration, route.drive, route.distance, round(cost, 2)
    )


def figures(plan: Plan, rates: Objective) -> tuple[Figures, dict[str, Figures]]:
    """The plan's totals and each vehicle's figures (the routes with stops)."""
    routes = {r.vehicle: route_figures(r, rates) for r in plan.routes if r.visits}
    each = list(routes.values())
    total = Figures(
        len(each),
        sum(f.stops for f in each),
        sum(f.paid_s for f in each),
        sum(f.drive_s for f in each),
        sum(f.metres for f in each),
        round(sum(f.cost for f in each), 2),
    )
    return total, routes
