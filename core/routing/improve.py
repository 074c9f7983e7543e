"""The sticky re-plan's improvement pass: moves between and within routes, each taken only
when it is worth it.

Moves: a stop (a pickup with its delivery) relocated to its best place on another route or in
its own; a swap of two stops between routes; a chain of consecutive stops moved to another
route (`exchange.py`); after each move the two routes are re-sequenced (`resequence.py`). A move
that gives stops another driver must save more than `min_saving` for each stop (unit) it moves;
a move within a route more than `min_reorder`. The best move is applied, then the next, until
no move is worth making or `max_moves` were made. Deterministic: no clock decides anything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.routing import exchange
from core.routing.exchange import Exchange
from core.routing.insert import best_position, route_cost
from core.routing.problem import Problem
from core.routing.resequence import resequence

NEIGHBOURS = 8  # a stop is tried on the vehicles that serve its nearest stops (and its own)
STARTS = 3  # … and on the vehicles that start nearest to it (an empty route too)
SWAP_NEIGHBOURS = 4  # a stop is swapped with one of its nearest stops on another route


@dataclass(frozen=True)
class Move:
    stops: tuple[str, ...]  # a stop, or a pickup and its delivery
    source: str
    target: str
    saving: int  # in the problem's cost units (of the whole move, a swap or chain included)
    kind: str = "relocate"  # or "swap" (two moves: one each way), "chain"


def improve(
    problem: Problem,
    routes: dict[str, list[str]],
    locked: Mapping[str, int],
    moves: list[Move],
    min_saving: int,
    min_reorder: int,
    max_moves: int,
) -> None:
    """Apply the best move worth making, then the next (appended to `moves`)."""
    near, starts = _near_stops(problem), _near_starts(problem)
    version = dict.fromkeys(routes, 0)
    cost_of: dict[tuple[str, int], int | None] = {}
    tried: dict[tuple, Any] = {}  # per route version: what each move gives

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
        best: tuple[int, list[Move], str, str, list[str], list[str]] | None = None

        def consider(saving: int, moved: list[Move], source, target, new_source, new_target):
            nonlocal best
            if best is None or saving > best[0]:
                best = (saving, moved, source, target, new_source, new_target)

        for source in sorted(routes):
            before = current_cost(source)
            if before is None:
                continue
            stops = routes[source]
            for stop_id in stops[locked.get(source, 0) :]:
                if stop_id in problem.partner and stop_id not in problem.pickups:
                    continue  # a delivery moves with its pickup
                unit = unit_of(problem, stop_id)
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
                    if saving > needed:
                        move = Move(unit, source, target, saving)
                        consider(saving, [move], source, target, found[1], found[2])
        for trade in _exchanges(problem, routes, locked, owner, near, starts, version, tried,
                                   current_cost, cost, min_saving):  # fmt: skip
            source, target = trade.source, trade.target
            saving = current_cost(source) + current_cost(target) - trade.after  # type: ignore[operator]
            if saving > min_saving * trade.moved:
                moved = [Move(trade.out, source, target, saving, trade.kind)]
                if trade.back:
                    moved.append(Move(trade.back, target, source, saving, trade.kind))
                consider(saving, moved, source, target, trade.new_source, trade.new_target)
        if best is None:
            return
        saving, moved, source, target, new_source, new_target = best
        routes[source] = new_source
        routes[target] = new_target
        resequence_routes(problem, routes, locked, {source, target}, min_reorder)
        version[source] += 1
        version[target] += 1
        moves.extend(moved)


def _exchanges(problem, routes, locked, owner, near, starts, version, tried, current_cost, cost,
               min_saving) -> Iterator[Exchange]:  # fmt: skip
    """Swaps and chains between routes with stops near each other, or to an empty route
    starting near (cached per route version)."""
    firsts: dict[tuple[str, str], set[str]] = {}
    for stop_id, source in owner.items():
        targets = {owner.get(other) for other in near.get(stop_id, ())}
        targets |= {v for v in starts.get(stop_id, ()) if not routes[v]}  # an empty route
        for target in targets:
            if target is not None and target != source:
                firsts.setdefault((source, target), set()).add(stop_id)
    for (source, target), starting in sorted(firsts.items()):
        if current_cost(source) is None or current_cost(target) is None:
            continue
        touched = current_cost(source) + current_cost(target)
        versions = (source, version[source], target, version[target])
        key: tuple[Any, ...] = ("chains", *versions)
        if key not in tried:
            tried[key] = list(exchange.chains(
                problem, routes, locked, source, target, starting, near,
                functools.partial(_budget, touched, min_saving), cost,
            ))  # fmt: skip
        yield from tried[key]
        if source > target:
            continue  # a swap is the same either way round
        for a in sorted(starting):
            for b in near.get(a, ())[:SWAP_NEIGHBOURS]:
                if owner.get(b) != target:
                    continue
                key = ("swap", a, b, *versions)
                if key not in tried:
                    tried[key] = exchange.swap(
                        problem, routes, locked, source, a, target, b,
                        touched - 2 * min_saving, cost,
                    )  # fmt: skip
                if tried[key] is not None:
                    yield tried[key]


def resequence_routes(
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


def unit_of(problem: Problem, stop_id: str) -> tuple[str, ...]:
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


def _budget(touched: int, min_saving: int, length: int) -> int:
    """What a chain of `length` stops moved between two routes costing `touched` may cost at
    most: each stop moved must save `min_saving`."""
    return touched - length * min_saving
