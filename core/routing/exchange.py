"""Moves between two routes beyond a single relocation, for the sticky re-plan.

- a swap: a stop of route A and a nearby stop of route B change routes, each put at its
  cheapest place on its new route;
- a chain: up to `CHAIN` consecutive stops of route A go to route B together, in their order
  or the other way round, at the cheapest place there.
Paired stops (a pickup with its delivery) are left to the single relocation. Each candidate is
estimated by the lean forward pass and only the promising ones are checked by the checker
(`route_cost`). A move changes the driver of several stops, so it must save more than the
threshold for each of them (the caller's rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from core.routing.insert import _Lean, best_position
from core.routing.problem import Problem

CHAIN = 3  # the longest chain moved as one (a chain of one is the single relocation)

Cost = Callable[[str, list[str]], int | None]


@dataclass(frozen=True)
class Exchange:
    kind: str  # "swap" | "chain"
    source: str
    target: str
    out: tuple[str, ...]  # stops going source -> target
    back: tuple[str, ...]  # stops going target -> source (a swap)
    new_source: list[str]
    new_target: list[str]
    after: int  # the two routes' cost afterwards

    @property
    def moved(self) -> int:
        return len(self.out) + len(self.back)


def _free(problem: Problem, route: Sequence[str], fixed: int, stop_id: str) -> bool:
    return stop_id in route[fixed:] and stop_id not in problem.partner


def swap(
    problem: Problem,
    routes: Mapping[str, list[str]],
    locked: Mapping[str, int],
    source: str,
    a: str,
    target: str,
    b: str,
    budget: int,
    cost: Cost,
) -> Exchange | None:
    """`a` (on source) and `b` (on target) change routes, if the two routes then cost less
    than `budget` by the lean estimate and are feasible by the checker."""
    one, other = routes[source], routes[target]
    fixed_one, fixed_other = locked.get(source, 0), locked.get(target, 0)
    if not (_free(problem, one, fixed_one, a) and _free(problem, other, fixed_other, b)):
        return None
    vehicle_one, vehicle_other = problem.vehicle_by_id[source], problem.vehicle_by_id[target]
    if not problem.compatible(vehicle_one, problem.stop_by_id[b]):
        return None
    if not problem.compatible(vehicle_other, problem.stop_by_id[a]):
        return None
    rest_one = [s for s in one if s != a]
    rest_other = [s for s in other if s != b]
    into_one = best_position(problem, vehicle_one, rest_one, b, fixed_one)
    into_other = best_position(problem, vehicle_other, rest_other, a, fixed_other)
    if into_one is None or into_other is None:
        return None
    estimate = _lean(problem, source, into_one[1]) + _lean(problem, target, into_other[1])
    if estimate >= budget:
        return None
    after_one, after_other = cost(source, into_one[1]), cost(target, into_other[1])
    if after_one is None or after_other is None:
        return None
    return Exchange(
        "swap", source, target, (a,), (b,), into_one[1], into_other[1], after_one + after_other
    )


def chains(
    problem: Problem,
    routes: Mapping[str, list[str]],
    locked: Mapping[str, int],
    source: str,
    target: str,
    firsts: set[str],
    near: Mapping[str, Sequence[str]],
    budget_for: Callable[[int], int],
    cost: Cost,
) -> Iterator[Exchange]:
    """Each chain of 2..CHAIN consecutive free stops of `source` starting at one of `firsts`
    put as a block at its cheapest place on `target`, when the two routes then cost less than
    `budget_for(len(chain))` (the lean estimate first, then the checker)."""
    one, other = routes[source], routes[target]
    fixed_one, fixed_other = locked.get(source, 0), locked.get(target, 0)
    vehicle_other = problem.vehicle_by_id[target]
    lean_other = _Lean(problem, vehicle_other, [*other, *one])
    lean_one = _Lean(problem, problem.vehicle_by_id[source], one)
    for length in range(2, CHAIN + 1):
        for i in range(fixed_one, len(one) - length + 1):
            if one[i] not in firsts or any(
                s in problem.partner or not problem.compatible(vehicle_other, problem.stop_by_id[s])
                for s in one[i : i + length]
            ):
                continue
            rest = one[:i] + one[i + length :]
            left = lean_one.cost(rest, late=True)
            if left is None:
                continue
            best = None
            around = {*near.get(one[i], ()), *near.get(one[i + length - 1], ())}
            places = [
                j
                for j in range(min(fixed_other, len(other)), len(other) + 1)
                if not other
                or (j and other[j - 1] in around)
                or (j < len(other) and other[j] in around)
            ]
            for chain in (one[i : i + length], one[i : i + length][::-1]):  # either way round
                for j in places:
                    candidate = [*other[:j], *chain, *other[j:]]
                    found = lean_other.cost(candidate, late=True)
                    if found is not None and (best is None or found[0] < best[0]):
                        best = (found[0], candidate)
            if best is None or left[0] + best[0] >= budget_for(length):
                continue
            after_one, after_other = cost(source, rest), cost(target, best[1])
            if after_one is None or after_other is None:
                continue
            taken = tuple(one[i : i + length])
            yield Exchange(
                "chain", source, target, taken, (), rest, best[1], after_one + after_other
            )


def _lean(problem: Problem, vehicle_id: str, route: list[str]) -> int:
    found = _Lean(problem, problem.vehicle_by_id[vehicle_id], route).cost(route, late=True)
    return 1 << 62 if found is None else found[0]
