"""A sticky re-plan: the plan in force changes only where a change is worth it.

1. A route that can no longer be kept on time is rebuilt from its own stops (its locked prefix
   first, then each stop at its cheapest feasible place, earliest deadline first; a stop on
   time nowhere where the stops are least late, a late stop weighing `LATE_STOP_S` more); it
   is taken only when it breaks fewer windows than the route in force.
   A stop still late then goes to the driver who can make it in time at the least cost, when
   it may move at all (`_rescue`): a broken promise costs more than a changed driver.
2. Waiting stops are placed one by one at their cheapest feasible place (most important and
   most constrained first); nothing else moves.
3. Every route is re-sequenced (`resequence.py`: or-opt and 2-opt) where that saves more than
   `min_reorder`.
4. A bounded improvement pass (`improve.py`) relocates single stops (a pickup with its
   delivery), swaps two stops between routes and moves chains of consecutive stops: a move
   that gives stops another driver must save more than `min_saving` for each stop it moves, a
   move within a route more than `min_reorder` (both in the problem's cost units). The best
   move is applied, then the next, until no move is worth making or `max_moves` were made.

Stops a vehicle may not give away (`Stop.vehicles`: in the van, on board, a manual assignment)
and each vehicle's first `locked[v]` stops never move to another vehicle; the locked prefix
never moves at all. Every step is deterministic (no time limit decides anything): run again on
the same input, with nothing changed, the result is the plan in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.routing.check import simulate
from core.routing.improve import Move, improve, resequence_routes, unit_of
from core.routing.insert import best_position, route_cost
from core.routing.problem import Problem, Stop
from core.routing.solve import why_alone
from core.texts import t

LATE_STOP_S = 15 * 60  # a stop late at all weighs as much as a quarter of an hour of lateness

__all__ = ["Move", "RouteChange", "StickyPlan", "changes", "sticky_plan"]


@dataclass
class StickyPlan:
    sequences: dict[str, list[str]]
    placed: dict[str, str] = field(default_factory=dict)  # waiting stop -> vehicle
    unplaced: dict[str, str] = field(default_factory=dict)  # waiting stop -> why not
    moves: list[Move] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # vehicles whose late route was rebuilt
    rescued: dict[str, str] = field(default_factory=dict)  # late stop -> vehicle on time for it


@dataclass(frozen=True)
class RouteChange:
    """What a driver needs to hear about her route."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    first: str | None  # the new first stop, when it is a different one


def sticky_plan(
    problem: Problem,
    current: Mapping[str, Sequence[str]],
    *,
    waiting: Iterable[str] = (),
    locked: Mapping[str, int] | None = None,
    min_saving: int,
    min_reorder: int = 60,
    max_moves: int = 50,
    placing_only: bool = False,
) -> StickyPlan:
    """The plan in force (`current`: vehicle -> stops), with `waiting` stops placed and only
    the moves that are worth it made. `placing_only`: re-sequence only the routes that took a
    waiting stop, and make no other move (placing arrivals, not re-planning the day)."""
    locked = dict(locked or {})
    known = problem.stop_by_id
    routes = {v.id: [s for s in current.get(v.id, ()) if s in known] for v in problem.vehicles}
    plan = StickyPlan(routes)
    for vehicle_id in routes:
        if _rebuild(problem, routes, vehicle_id, locked.get(vehicle_id, 0)):
            plan.rebuilt.append(vehicle_id)
    _rescue(problem, routes, locked, plan)
    _place(problem, routes, waiting, locked, plan)
    if placing_only:
        resequence_routes(problem, routes, locked, set(plan.placed.values()), min_reorder)
        return plan
    resequence_routes(problem, routes, locked, routes, min_reorder)
    improve(problem, routes, locked, plan.moves, min_saving, min_reorder, max_moves)
    return plan


def changes(
    before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]
) -> dict[str, RouteChange]:
    """Per vehicle whose route changed in a way worth telling: stops added, stops removed, a
    different first stop. Re-timed or re-ordered further down: nothing to tell."""
    out = {}
    for vehicle in sorted(set(before) | set(after)):
        old, new = list(before.get(vehicle, ())), list(after.get(vehicle, ()))
        added = tuple(s for s in new if s not in old)
        removed = tuple(s for s in old if s not in new)
        first = new[0] if new and (not old or old[0] != new[0]) else None
        if added or removed or first:
            out[vehicle] = RouteChange(added, removed, first)
    return out


# -- the steps -----------------------------------------------------------------------------------


def _late(problem: Problem, vehicle_id: str, sequence: Sequence[str]) -> int:
    vehicle = problem.vehicle_by_id[vehicle_id]
    return len(simulate(problem, vehicle, sequence)[1])


def _rebuild(problem: Problem, routes: dict[str, list[str]], vehicle_id: str, fixed: int) -> bool:
    sequence = routes[vehicle_id]
    broken = _late(problem, vehicle_id, sequence) if sequence else 0
    if not broken:
        return False
    vehicle, known = problem.vehicle_by_id[vehicle_id], problem.stop_by_id
    rebuilt, behind = list(sequence[:fixed]), []
    for stop_id in sorted(sequence[fixed:], key=lambda s: (_deadline(problem, known[s]), s)):
        if _lead(problem, stop_id) != stop_id and problem.partner[stop_id] in sequence[fixed:]:
            continue  # comes with its pickup
        found = best_position(problem, vehicle, rebuilt, stop_id, fixed)
        if found is None:
            behind.append(stop_id)
        else:
            rebuilt = found[1]
    for stop_id in behind:  # on time nowhere: where it is least late, the others as they were
        rebuilt = _least_late(problem, vehicle_id, rebuilt, stop_id, fixed)
    if _late(problem, vehicle_id, rebuilt) < broken:
        routes[vehicle_id] = rebuilt
        return True
    return False


def _least_late(
    problem: Problem, vehicle_id: str, sequence: list[str], stop_id: str, fixed: int
) -> list[str]:
    """The sequence with `stop_id` (a pickup followed at once by its delivery) where the stops
    are least late: each late stop counts `LATE_STOP_S` and its seconds late, then the route
    costs least. At the end of the route it could be hours late to keep another stop from being
    a few minutes late."""
    vehicle = problem.vehicle_by_id[vehicle_id]
    unit = [stop_id]
    if (partner := problem.partner.get(stop_id)) and stop_id in problem.pickups:
        unit.append(partner)
    best: tuple[tuple[int, int], list[str]] | None = None
    for at in range(fixed, len(sequence) + 1):
        candidate = [*sequence[:at], *unit, *sequence[at:]]
        route, violations = simulate(problem, vehicle, candidate)
        seconds = sum(
            max(0, visit.start - _deadline(problem, problem.stop_by_id[visit.stop]))
            for visit in route.visits
        )
        rank = (len({v.stop for v in violations}) * LATE_STOP_S + seconds, route.duration)
        if best is None or rank < best[0]:
            best = (rank, candidate)
    assert best is not None
    return best[1]


def _rescue(
    problem: Problem, routes: dict[str, list[str]], locked: Mapping[str, int], plan: StickyPlan
) -> None:
    """A stop its route can no longer reach in time goes to the driver who can reach it in time
    at the least cost (a pickup and its delivery together), when it may: a stop in the van, on
    board, locked by hand or under way stays, late or not."""

    def on_time(vehicle_id: str) -> bool:
        return (
            route_cost(problem, problem.vehicle_by_id[vehicle_id], routes[vehicle_id]) is not None
        )

    takes = {vehicle_id: on_time(vehicle_id) for vehicle_id in routes}  # a late route takes none
    for vehicle_id in sorted(routes):
        sequence = routes[vehicle_id]
        if not sequence:
            continue
        _, violations = simulate(problem, problem.vehicle_by_id[vehicle_id], sequence)
        late = [v.stop for v in violations if v.kind == "time_window" and v.stop]
        for stop_id in dict.fromkeys(_lead(problem, s) for s in late):
            unit = unit_of(problem, stop_id)
            free = routes[vehicle_id][locked.get(vehicle_id, 0) :]
            stops = [problem.stop_by_id[s] for s in unit]
            if any(s not in free for s in unit) or any(stop.vehicles is not None for stop in stops):
                continue
            best = None
            for other in problem.vehicles:
                if other.id == vehicle_id or not all(problem.compatible(other, s) for s in stops):
                    continue
                if not takes[other.id]:
                    continue
                found = best_position(
                    problem, other, routes[other.id], stop_id, locked.get(other.id, 0)
                )
                if found is None or route_cost(problem, other, found[1]) is None:
                    continue
                if best is None or found[0] < best[0]:
                    best = (found[0], other.id, found[1])
            if best is None:
                continue
            routes[vehicle_id] = [s for s in routes[vehicle_id] if s not in unit]
            routes[best[1]] = best[2]
            takes[vehicle_id] = on_time(vehicle_id)
            for s in unit:
                plan.rescued[s] = best[1]


def _deadline(problem: Problem, stop: Stop) -> int:
    return problem.windows(stop)[-1].end


def _place(
    problem: Problem,
    routes: dict[str, list[str]],
    waiting: Iterable[str],
    locked: Mapping[str, int],
    plan: StickyPlan,
) -> None:
    routed = {s for stops in routes.values() for s in stops}
    leads = {_lead(problem, s) for s in waiting if s in problem.stop_by_id and s not in routed}

    def urgency(stop_id: str) -> tuple[int, int, int, str]:
        stop = problem.stop_by_id[stop_id]
        able = sum(problem.compatible(v, stop) for v in problem.vehicles)
        return -stop.priority, able, _deadline(problem, stop), stop_id

    for stop_id in sorted(leads, key=urgency):
        stop = problem.stop_by_id[stop_id]
        best = None
        for vehicle in problem.vehicles:
            if not problem.compatible(vehicle, stop):
                continue
            before = route_cost(problem, vehicle, routes[vehicle.id])
            found = best_position(
                problem, vehicle, routes[vehicle.id], stop_id, locked.get(vehicle.id, 0)
            )
            after = route_cost(problem, vehicle, found[1]) if found is not None else None
            if before is None or after is None or found is None:
                continue  # a late route takes nothing more
            if best is None or after[0] - before[0] < best[0]:
                best = (after[0] - before[0], vehicle.id, found[1])
        stop_ids = unit_of(problem, stop_id)
        if best is None:
            reason = why_alone(problem, stop) or t("routing.reason.full")
            for s in stop_ids:
                plan.unplaced[s] = reason
            continue
        routes[best[1]] = best[2]
        for s in stop_ids:
            plan.placed[s] = best[1]


def _lead(problem: Problem, stop_id: str) -> str:
    partner = problem.partner.get(stop_id)
    return partner if partner and stop_id not in problem.pickups else stop_id
