"""How PyVRP is told which vehicles may serve a stop (skills, zones, manual locks, parcels in a
van): by routing profiles, by lock dimensions, or not at all (the stop is then placed later).

- A profile per class of vehicles puts the stops that class may not serve out of reach. Each is
  a full pair of matrices, so their number is bounded by memory; restrictions shared by many
  vehicles (zones, skills) get them first.
- Past that budget, restrictions become lock dimensions: capacity dimensions in which only the
  allowed vehicles have room, and which the restricted stop loads, so any other vehicle would be
  over capacity. Stops allowed on one vehicle share a code: each such vehicle gets its own set
  of dimensions, all sets of one size (none lies inside another), so 8 dimensions tell 70
  vehicles apart; any other allowed set gets a dimension of its own. Exact and light on memory;
  each dimension slows PyVRP's search a little, so there are at most MAX_LOCK_DIMENSIONS.
- What neither can express (several windows on a pickup or delivery, allowed sets past both
  budgets) is odd: left out of the model and placed after the solve.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass

from core.routing.problem import Problem

MAX_PROFILES = 16  # the base profile and at most 15 cut ones
PROFILE_BYTES = 256 * 2**20  # memory for the cut profiles (our copies and PyVRP's)
MAX_LOCK_DIMENSIONS = 12


@dataclass(frozen=True)
class Restrictions:
    cut: dict[str, frozenset[str]]  # vehicle id -> stops out of reach in its profile
    loads: dict[str, tuple[int, ...]]  # stop id -> the lock dimensions it loads
    room: dict[str, frozenset[int]]  # vehicle id -> the lock dimensions it has room in
    width: int  # how many lock dimensions
    odd: frozenset[str]  # stops the model leaves out


_known: weakref.WeakKeyDictionary[Problem, Restrictions] = weakref.WeakKeyDictionary()


def restrictions(problem: Problem) -> Restrictions:
    """How this problem's restrictions are modelled (worked out once per problem: the engine
    asks for its odd stops, then for the model)."""
    if (known := _known.get(problem)) is None:
        known = _known[problem] = _restrictions(problem)
    return known


def _restrictions(problem: Problem) -> Restrictions:
    odd = {
        stop_id
        for pair in problem.pairs
        if len(problem.stop_by_id[pair.pickup].windows) > 1
        or len(problem.stop_by_id[pair.delivery].windows) > 1
        for stop_id in (pair.pickup, pair.delivery)
    }
    allowed_sets: dict[frozenset[str], list[str]] = {}
    for stop in problem.stops:
        if problem.unrestricted(stop):
            continue
        allowed = frozenset(v.id for v in problem.able(stop))
        if stop.id not in odd and len(allowed) < len(problem.vehicles):
            allowed_sets.setdefault(allowed, []).append(stop.id)
    cells = (problem.size + sum(map(len, allowed_sets.values()))) ** 2
    budget = min(MAX_PROFILES - 1, PROFILE_BYTES // (32 * cells))
    classes: dict[str, tuple[bool, ...]] = {v.id: () for v in problem.vehicles}
    profiled: list[frozenset[str]] = []
    singles: list[frozenset[str]] = []
    shared: list[frozenset[str]] = []
    for allowed in sorted(allowed_sets, key=lambda a: (-len(a), -len(allowed_sets[a]), sorted(a))):
        trial = {vehicle: (*kept, vehicle in allowed) for vehicle, kept in classes.items()}
        if len({kept for kept in trial.values() if not all(kept)}) <= budget:
            classes = trial
            profiled.append(allowed)
        else:
            (singles if len(allowed) == 1 else shared).append(allowed)
    code = _code_width(len(singles))
    shared.sort(key=lambda a: -len(allowed_sets[a]))
    fit = max(0, MAX_LOCK_DIMENSIONS - code)
    for allowed in shared[fit:]:
        odd.update(allowed_sets[allowed])
    shared = shared[:fit]
    dimensions = dict(zip(singles, itertools.combinations(range(code), _ones(code)), strict=False))
    dimensions |= {a: (code + i,) for i, a in enumerate(shared)}
    loads = {stop: dims for a, dims in dimensions.items() for stop in allowed_sets[a]}
    for pair in problem.pairs:  # a pair is modelled, or placed, whole
        ends = (pair.pickup, pair.delivery)
        if odd & set(ends) or loads.get(pair.pickup) != loads.get(pair.delivery):
            odd.update(ends)
    room: dict[str, set[int]] = {v.id: set() for v in problem.vehicles}
    for allowed, dims in dimensions.items():
        for vehicle in allowed:
            room[vehicle].update(dims)
    return Restrictions(
        cut={
            vehicle.id: frozenset(
                s for a in profiled if vehicle.id not in a for s in allowed_sets[a] if s not in odd
            )
            for vehicle in problem.vehicles
        },
        loads={stop: dims for stop, dims in loads.items() if stop not in odd},
        room={vehicle: frozenset(dims) for vehicle, dims in room.items()},
        width=code + len(shared),
        odd=frozenset(odd),
    )


def _code_width(count: int) -> int:
    """The fewest dimensions whose equal-size subsets give `count` distinct codes."""
    return next(w for w in itertools.count() if math.comb(w, _ones(w)) >= count)


def _ones(width: int) -> int:
    return max(1, width // 2)
