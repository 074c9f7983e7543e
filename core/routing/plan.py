"""A solved plan: routes with their schedules, the stops left out and why, and its cost."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Visit:
    stop: str
    arrival: int  # seconds from the problem's epoch
    start: int  # service starts (after any wait for the window)
    departure: int
    load: tuple[int, ...]  # on board when leaving


@dataclass(frozen=True)
class RoutePlan:
    vehicle: str
    visits: tuple[Visit, ...]
    departure: int  # leaves its start
    end: int  # reaches its end depot, or leaves its last stop on an open route
    distance: int  # metres
    duration: int  # seconds, departure to end (paid time: driving, service, waits, breaks)
    drive: int = 0  # seconds behind the wheel
    breaks: tuple[int, ...] = ()  # when each break starts (a long enough wait is one)

    @property
    def stops(self) -> list[str]:
        return [visit.stop for visit in self.visits]


@dataclass(frozen=True)
class Phases:
    """Where a `solve()` call spent its budget (seconds, wall clock)."""

    budget: float  # the whole call's limit, counted from when it started
    prepare: float = 0.0  # before the engine: stops no vehicle can serve, the engine's view
    engine_data: float = 0.0  # the engine's own model of the problem
    first_plan: float | None = None  # since the call started: the engine's first whole plan
    first_feasible: float | None = None  # ... and its first plan without broken rules
    search: float = 0.0  # the engine's search from its first plan on
    search_limit: float = 0.0  # the engine's share of the budget (its data and search)
    check: float = 0.0  # our checker: repair, placing the stops left out, re-checking
    total: float = 0.0
    budget_spent: bool = False  # the search was cut short by the budget


@dataclass(frozen=True)
class Plan:
    routes: tuple[RoutePlan, ...]
    unassigned: dict[str, str] = field(default_factory=dict)  # stop id -> reason
    cost: int = 0
    distance: int = 0
    duration: int = 0
    engine: str = ""
    phases: Phases | None = field(default=None, compare=False)

    def route_of(self, stop_id: str) -> RoutePlan | None:
        return next((r for r in self.routes if stop_id in r.stops), None)

    def visit(self, stop_id: str) -> Visit | None:
        route = self.route_of(stop_id)
        return next(v for v in route.visits if v.stop == stop_id) if route else None

    @property
    def sequences(self) -> dict[str, list[str]]:
        return {route.vehicle: route.stops for route in self.routes}
