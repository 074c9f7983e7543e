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
class Plan:
    routes: tuple[RoutePlan, ...]
    unassigned: dict[str, str] = field(default_factory=dict)  # stop id -> reason
    cost: int = 0
    distance: int = 0
    duration: int = 0
    engine: str = ""

    def route_of(self, stop_id: str) -> RoutePlan | None:
        return next((r for r in self.routes if stop_id in r.stops), None)

    def visit(self, stop_id: str) -> Visit | None:
        route = self.route_of(stop_id)
        return next(v for v in route.visits if v.stop == stop_id) if route else None

    @property
    def sequences(self) -> dict[str, list[str]]:
        return {route.vehicle: route.stops for route in self.routes}
