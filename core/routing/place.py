"""Stops placed after the engine: those it could not model, and those it left out.

Each goes to its cheapest feasible position, most important and most constrained first, with
the same lean check as on-demand insertion; nothing already placed moves. So a stop left out
here fits nowhere: "every route is full" is then true. An optional stop that fits but costs more
than its penalty is "not worth it"; a stop not tried before the deadline is "not planned this
time".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from core.routing.insert import best_position
from core.routing.problem import Problem
from core.texts import t


def place(
    problem: Problem,
    sequences: Mapping[str, Sequence[str]],
    stop_ids: Iterable[str],
    *,
    deadline: float,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The sequences with the stops placed, and the reason for each stop left out."""
    routes = {vehicle: list(stops) for vehicle, stops in sequences.items()}
    reasons: dict[str, str] = {}
    pending = {_lead(problem, stop_id) for stop_id in stop_ids}
    for stop_id in sorted(pending, key=lambda s: _urgency(problem, s)):
        stop = problem.stop_by_id[stop_id]
        if time.perf_counter() > deadline:
            reason = t("routing.reason.not_planned")
        elif (found := _cheapest(problem, routes, stop_id)) is None:
            reason = t("routing.reason.full")
        elif stop.penalty is not None and found[0] >= stop.penalty:
            reason = t("routing.reason.optional")
        else:
            routes[found[1]] = found[2]
            continue
        reasons[stop_id] = reason
        if partner := problem.partner.get(stop_id):
            reasons[partner] = t("routing.reason.partner", stop=stop_id)
    return routes, reasons


def _lead(problem: Problem, stop_id: str) -> str:
    """A pair is placed from its pickup."""
    partner = problem.partner.get(stop_id)
    return partner if partner and stop_id not in problem.pickups else stop_id


def _urgency(problem: Problem, stop_id: str) -> tuple[int, int, int, str]:
    stop = problem.stop_by_id[stop_id]
    able = len(problem.able(stop))
    return -stop.priority, able, problem.windows(stop)[-1].end, stop_id


def _cheapest(
    problem: Problem, routes: Mapping[str, Sequence[str]], stop_id: str
) -> tuple[int, str, list[str]] | None:
    """(added cost, vehicle, its new sequence) of the cheapest feasible place, or None."""
    stop = problem.stop_by_id[stop_id]
    best = None
    for vehicle in problem.vehicles:
        if problem.compatible(vehicle, stop):
            found = best_position(problem, vehicle, routes.get(vehicle.id, ()), stop_id)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], vehicle.id, found[1])
    return best
