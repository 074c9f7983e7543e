"""Re-sequencing one route: a local search over the order of its own stops.

Moves: a chain of up to `CHAIN` consecutive stops taken out and put back elsewhere in the
route (or-opt), and a stretch of the route driven the other way round (2-opt). Each candidate
is costed by the lean forward pass (`insert._Lean`, leaving the depot as late as it can, like
the checker); the best one that saves more than `min_saving` is checked by the checker
(`route_cost`) and taken, then the next, until no move is worth making. The first `fixed`
stops never move; a pickup stays before its delivery. Deterministic: the same route in gives
the same route out, and a route it returns comes back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from core.routing.insert import _Lean, route_cost
from core.routing.problem import Problem, Vehicle

CHAIN = 3  # the longest chain of consecutive stops moved as one
TRIES = 3  # candidates the checker looks at per step, best first by the lean pass


def resequence(
    problem: Problem,
    vehicle: Vehicle,
    sequence: Sequence[str],
    *,
    fixed: int = 0,
    min_saving: int = 0,
    max_steps: int = 50,
) -> list[str]:
    """The route in the best order this search finds (itself when nothing saves enough)."""
    route = list(sequence)
    if len(route) - fixed < 2:
        return route
    found = route_cost(problem, vehicle, route)
    if found is None:
        return route  # a late route is rebuilt elsewhere, not polished here
    cost = found[0]
    lean = _Lean(problem, vehicle, route)
    for _ in range(max_steps):
        candidates = []
        for candidate in _neighbours(route, fixed):
            if not _in_order(problem, candidate):
                continue
            estimate = lean.cost(candidate, late=True)
            if estimate is not None and estimate[0] < cost - min_saving:
                candidates.append((estimate[0], candidate))
        candidates.sort(key=lambda c: c[0])  # stable: ties keep the order they were made in
        for _, candidate in candidates[:TRIES]:
            checked = route_cost(problem, vehicle, candidate)
            if checked is not None and checked[0] < cost - min_saving:
                route, cost = candidate, checked[0]
                break
        else:
            return route
    return route


def _neighbours(route: list[str], fixed: int) -> Iterator[list[str]]:
    n = len(route)
    for length in range(1, CHAIN + 1):
        for i in range(fixed, n - length + 1):
            chain = route[i : i + length]
            rest = route[:i] + route[i + length :]
            for j in range(fixed, len(rest) + 1):
                if j != i:
                    yield rest[:j] + chain + rest[j:]
    for i in range(fixed, n - 1):
        for j in range(i + 2, n + 1):
            if j - i > 2:  # two stops swapped: already a chain move
                yield route[:i] + route[i:j][::-1] + route[j:]


def _in_order(problem: Problem, route: list[str]) -> bool:
    """Every pickup on this route comes before its delivery."""
    if not problem.pairs:
        return True
    position = {stop: i for i, stop in enumerate(route)}
    return all(
        position[stop] < position[partner]
        for stop in route
        if stop in problem.pickups and (partner := problem.partner[stop]) in position
    )
