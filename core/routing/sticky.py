"""A sticky re-plan: the plan in force changes only where a change is worth it.

1. A route that can no longer be kept on time is rebuilt from its own stops (its locked prefix
   first, then each stop at its cheapest feasible place, earliest deadline first); it is taken
   only when it breaks fewer windows than the route in force.
2. Waiting stops are placed one by one at their cheapest feasible place (most important and
   most constrained first); nothing else moves.
3. A bounded improvement pass relocates single stops (a pickup with its delivery): to another
   vehicle only when that saves more than `min_saving`, within the stop's own route when it
   saves more than `min_reorder` (both in the problem's cost units). The best move is applied,
   then the next, until no move is worth making or `max_moves` were made.

Stops a vehicle may not give away (`Stop.vehicles`: in the van, on board, a manual assignment)
and each vehicle's first `locked[v]` stops never move to another vehicle; the locked prefix
never moves at all. Every step is deterministic (no time limit decides anything): run again on
the same input, with nothing changed, the result is the plan in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.routing.check import simulate
from core.routing.insert import best_position, route_cost
from core.routing.problem import Problem, Stop
from core.routing.resequence import resequence
from core.routing.solve import why_alone
from core.texts import t

NEIGHBOURS = 8  # a stop is tried on the vehicles that serve its nearest stops (and its own)
STARTS = 3  # … and on the vehicles that start nearest to it (an empty route too)


@dataclass(frozen=True)
class Move:
    stops: tuple[str, ...]  # a stop, or a pickup and its delivery
    source: str
    target: str
    saving: int  # in the problem's cost units


@dataclass
class StickyPlan:
    sequences: dict[str, list[str]]
    placed: dict[str, str] = field(default_factory=dict)  # waiting stop -> vehicle
    unplaced: dict[str, str] = field(default_factory=dict)  # waiting stop -> why not
    moves: list[Move] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # vehicles whose late route was rebuilt


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
) -> StickyPlan:
    """The plan in force (`current`: vehicle -> stops), with `waiting` stops placed and only
    the moves that are worth it made."""
    locked = dict(locked or {})
    known = problem.stop_by_id
    routes = {v.id: [s for s in current.get(v.id, ()) if s in known] for v in problem.vehicles}
    plan = StickyPlan(routes)
    for vehicle_id in routes:
        if _rebuild(problem, routes, vehicle_id, locked.get(vehicle_id, 0)):
            plan.rebuilt.append(vehicle_id)
    _place(problem, routes, waiting, locked, plan)
    _resequence(problem, routes, locked, routes, min_reorder)
    _improve(problem, routes, locked, plan, min_saving, min_reorder, max_moves)
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
            if (partner := problem.partner.get(stop_id)) and stop_id in problem.pickups:
                behind.append(partner)
        else:
            rebuilt = found[1]
    rebuilt += behind
    if _late(problem, vehicle_id, rebuilt) < broken:
        routes[vehicle_id] = rebuilt
        return True
    return False


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
            if before is None or after is None:
                continue  # a late route takes nothing more
            if best is None or after[0] - before[0] < best[0]:
                best = (after[0] - before[0], vehicle.id, found[1])
        stop_ids = _unit(problem, stop_id)
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


def _improve(
    problem: Problem,
    routes: dict[str, list[str]],
    locked: Mapping[str, int],
    plan: StickyPlan,
    min_saving: int,
    min_reorder: int,
    max_moves: int,
) -> None:
    near, starts = _near_stops(problem), _near_starts(problem)
    version = dict.fromkeys(routes, 0)
    cost_of: dict[tuple[str, int], int | None] = {}
    tried: dict[tuple, tuple[int, list[str], list[str]] | None] = {}

    def cost(vehicle_id: str, sequence: list[str]) -> int | None:
        found = route_cost(problem, problem.vehicle_by_id[vehicle_id], sequence)
        return None if found is None else found[0]

    def current_cost(vehicle_id: str) -> int | None:
        key = (vehicle_id, version[vehicle_id])
        if key not in cost_of:
            cost_of[key] = cost(vehicle_id, routes[vehicle_id])
        return cost_of[key]

    for _ in range(max_moves):
        owner = {s: v for v, stops in routes.items() for s in stops}
        best: tuple[int, tuple[str, ...], str, str, list[str], list[str]] | None = None
        for source in sorted(routes):
            before = current_cost(source)
            if before is None:
                continue
            stops = routes[source]
            for stop_id in stops[locked.get(source, 0) :]:
                if stop_id in problem.partner and stop_id not in problem.pickups:
                    continue  # a delivery moves with its pickup
                unit = _unit(problem, stop_id)
                if any(s in stops[: locked.get(source, 0)] for s in unit):
                    continue
                stop = problem.stop_by_id[stop_id]
                targets = {source, *starts.get(stop_id, ())}
                targets |= {owner[s] for s in near.get(stop_id, ()) if s in owner}
                for target in sorted(targets):
                    vehicle = problem.vehicle_by_id[target]
                    if target != source and not problem.compatible(vehicle, stop):
                        continue
                    key = (unit, source, version[source], target, version[target])
                    if key not in tried:
                        tried[key] = _try(problem, routes, unit, source, target, locked, cost)
                    found = tried[key]
                    if found is None:
                        continue
                    touched = before if target == source else before + (current_cost(target) or 0)
                    if target != source and current_cost(target) is None:
                        continue  # a late route takes nothing more
                    saving = touched - found[0]
                    needed = min_reorder if target == source else min_saving
                    if saving > needed and (best is None or saving > best[0]):
                        best = (saving, unit, source, target, found[1], found[2])
        if best is None:
            return
        saving, unit, source, target, new_source, new_target = best
        routes[source] = new_source
        routes[target] = new_target
        _resequence(problem, routes, locked, {source, target}, min_reorder)
        version[source] += 1
        version[target] += 1
        plan.moves.append(Move(unit, source, target, saving))


def _resequence(
    problem: Problem,
    routes: dict[str, list[str]],
    locked: Mapping[str, int],
    vehicle_ids: Iterable[str],
    min_saving: int,
) -> None:
    """Each of these routes in the best order `resequence` finds (its locked prefix kept)."""
    for vehicle_id in sorted(vehicle_ids):
        routes[vehicle_id] = resequence(
            problem,
            problem.vehicle_by_id[vehicle_id],
            routes[vehicle_id],
            fixed=locked.get(vehicle_id, 0),
            min_saving=min_saving,
        )


def _try(
    problem: Problem,
    routes: Mapping[str, list[str]],
    unit: tuple[str, ...],
    source: str,
    target: str,
    locked: Mapping[str, int],
    cost,
) -> tuple[int, list[str], list[str]] | None:
    """Take `unit` off `source` and put it at its best place on `target`: (the cost of the
    routes touched afterwards, source's new sequence, target's new sequence), or None."""
    rest = [s for s in routes[source] if s not in unit]
    base = rest if target == source else routes[target]
    vehicle = problem.vehicle_by_id[target]
    found = best_position(problem, vehicle, base, unit[0], locked.get(target, 0))
    if found is None:
        return None
    if target == source:
        after = cost(source, found[1])
        return None if after is None else (after, found[1], found[1])
    left = cost(source, rest)
    after = cost(target, found[1])
    if left is None or after is None:
        return None
    return left + after, rest, found[1]


def _near_stops(problem: Problem) -> dict[str, list[str]]:
    """Each stop's nearest other stops by travel time (either way)."""
    stops = problem.stops
    if len(stops) < 2:
        return {}
    locations = np.array([s.location for s in stops])
    times = problem.durations[np.ix_(locations, locations)]
    times = np.minimum(times, times.T).astype(float)
    np.fill_diagonal(times, np.inf)
    k = min(NEIGHBOURS, len(stops) - 1)
    nearest = np.argsort(times, axis=1, kind="stable")[:, :k]
    return {stops[i].id: [stops[j].id for j in row] for i, row in enumerate(nearest)}


def _unit(problem: Problem, stop_id: str) -> tuple[str, ...]:
    """What moves together: a stop, or a pickup and its delivery."""
    partner = problem.partner.get(stop_id)
    return (stop_id,) if partner is None else (stop_id, partner)


def _near_starts(problem: Problem) -> dict[str, list[str]]:
    """Each stop's vehicles that start nearest to it."""
    vehicles = problem.vehicles
    if not vehicles or not problem.stops:
        return {}
    starts = np.array([problem.start_location(v) for v in vehicles])
    locations = np.array([s.location for s in problem.stops])
    times = problem.durations[np.ix_(locations, starts)]
    nearest = np.argsort(times, axis=1, kind="stable")[:, :STARTS]
    return {problem.stops[i].id: [vehicles[j].id for j in row] for i, row in enumerate(nearest)}
