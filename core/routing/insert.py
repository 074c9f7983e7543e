"""Insert one new stop (or a pickup→delivery pair) at its cheapest feasible position.

Every vehicle and every position after its locked prefix is tried, with a lean forward pass
(times, loads, windows, shift end, max stops) instead of the full checker; the winner is then
scheduled and checked by `check.simulate`, like every plan. The answer says why: which vehicle,
what it adds, and why the nearest vehicle was not the one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.routing.check import simulate
from core.routing.plan import RoutePlan
from core.routing.problem import Problem, Vehicle
from core.texts import t


@dataclass(frozen=True)
class Insertion:
    stop: str
    vehicle: str | None
    sequence: tuple[str, ...] = ()  # the vehicle's new sequence
    added_seconds: int = 0
    added_metres: int = 0
    route: RoutePlan | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # vehicle -> why not
    reason: str = ""


class _Lean:
    """Fast forward passes for one vehicle, over only the locations its route can touch."""

    def __init__(self, problem: Problem, vehicle: Vehicle, stop_ids: Sequence[str]) -> None:
        self.problem, self.vehicle = problem, vehicle
        stops = [problem.stop_by_id[s] for s in stop_ids]
        start, end = problem.start_location(vehicle), problem.end_location(vehicle)
        locations = list(dict.fromkeys([start, *(s.location for s in stops)]
                                       + ([end] if end is not None else [])))  # fmt: skip
        local = {location: i for i, location in enumerate(locations)}
        grid = np.ix_(locations, locations)
        self.durations = problem.durations[grid].tolist()
        self.distances = problem.distances[grid].tolist()
        self.start, self.end = local[start], (None if end is None else local[end])
        self.shift = problem.shift(vehicle)
        self.stop = {}
        for stop in stops:
            sign = 1 if stop.id in problem.pickups else -1
            self.stop[stop.id] = (
                local[stop.location],
                stop.service,
                [(w.start, w.end) for w in problem.windows(stop)],
                [sign * a for a in problem.load(stop)],
                stop.id in problem.partner,
            )

    def cost(self, sequence: Sequence[str], *, late: bool = False) -> tuple[int, int, int] | None:
        """(cost, duration, distance) of the route, or None if it breaks a rule. `late`: a
        depot start leaves as late as it can, as the checker schedules it (else at shift start;
        with traffic or breaks this is an estimate, the checker has the last word)."""
        vehicle = self.vehicle
        if vehicle.max_stops is not None and len(sequence) > vehicle.max_stops:
            return None
        capacity = vehicle.capacity
        load = [0] * len(self.problem.dimensions)
        if capacity:
            for stop_id in sequence:
                _, _, _, delta, paired = self.stop[stop_id]
                if not paired:
                    for d, amount in enumerate(delta):
                        load[d] -= amount  # plain deliveries ride from the start
            if any(a > c for a, c in zip(load, capacity, strict=True)):
                return None
        durations, distances = self.durations, self.distances
        traffic, breaks = self.problem.traffic, self.problem.breaks
        here, time, metres = self.start, self.shift.start, 0
        rested, waited, slack = self.problem.rested(vehicle, time), 0, self.shift.end - time
        driving = vehicle.start is not None and not vehicle.parked  # on her first leg already
        for index, stop_id in enumerate(sequence):
            location, service, windows, delta, _ = self.stop[stop_id]
            free = durations[here][location]
            leg = free if traffic is None else -(-free * traffic.factor(time) // 1000)
            if breaks is not None and time > rested and not (driving and index == 0):
                start = _start(time + leg, windows)
                if start is None:
                    return None
                if start - time - leg < breaks.length and start + service - rested > breaks.after:
                    time += breaks.length
                    rested = time
                    leg = free if traffic is None else -(-free * traffic.factor(time) // 1000)
            arrival = time + leg
            metres += distances[here][location]
            slot = _slot(arrival, windows)
            if slot is None:
                return None
            start = slot[0]
            if breaks is not None and start - arrival >= breaks.length:
                rested = start
            if late:
                waited += start - arrival
                slack = min(slack, waited + slot[1] - start)
            time = start
            if capacity:
                for d, amount in enumerate(delta):
                    load[d] += amount
                    if load[d] > capacity[d]:
                        return None
            time += service
            here = location
        if self.end is not None:
            free = durations[here][self.end]
            leg = free if traffic is None else -(-free * traffic.factor(time) // 1000)
            if breaks is not None and time > rested and time + leg - rested > breaks.after:
                time += breaks.length
                leg = free if traffic is None else -(-free * traffic.factor(time) // 1000)
            time += leg
            metres += distances[here][self.end]
        if time > self.shift.end:
            return None
        duration = time - self.shift.start
        if late and vehicle.start is None:
            duration -= max(0, min(waited, slack, waited + self.shift.end - time))
        objective = self.problem.objective
        return objective.distance * metres + objective.duration * duration, duration, metres


def _start(arrival: int, windows: list[tuple[int, int]]) -> int | None:
    """When service starts: in the first window still open at `arrival`, or None."""
    for start, end in windows:
        if arrival <= end:
            return max(arrival, start)
    return None


def _slot(arrival: int, windows: list[tuple[int, int]]) -> tuple[int, int] | None:
    """(when service starts, when its window closes) in the first window still open at
    `arrival`, or None."""
    for start, end in windows:
        if arrival <= end:
            return (start if start > arrival else arrival), end
    return None


def route_cost(
    problem: Problem, vehicle: Vehicle, sequence: Sequence[str]
) -> tuple[int, int, int] | None:
    """(cost, duration, distance) of one route as the checker schedules it (a depot start
    leaves as late as it can), or None if it breaks a rule."""
    if _Lean(problem, vehicle, sequence).cost(sequence) is None:
        return None
    route, violations = simulate(problem, vehicle, sequence)
    if violations:
        return None
    objective = problem.objective
    cost = objective.distance * route.distance + objective.duration * route.duration
    return cost, route.duration, route.distance


def cheapest_insertion(
    problem: Problem,
    routes: Mapping[str, Sequence[str]],
    stop_id: str,
    *,
    locked: Mapping[str, int] | None = None,
    nearest: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Insertion:
    """Where `stop_id` (and its pair partner, if any) fits best. `routes` are the current
    sequences; the first `locked[v]` stops of vehicle v stay where they are. `nearest` names
    the vehicle a person would pick (the closest), so the answer can say why it was not;
    `names` says how to call each vehicle in that answer (a driver's first name)."""
    locked = locked or {}
    names = names or {}
    partner = problem.partner.get(stop_id)
    if partner is not None and stop_id not in problem.pickups:
        stop_id, partner = partner, stop_id  # insert from the pickup
    stop = problem.stop_by_id[stop_id]
    best: tuple[int, str, list[str], int, int] | None = None
    rejected: dict[str, str] = {}
    for vehicle in problem.vehicles:
        if not problem.compatible(vehicle, stop):
            rejected[vehicle.id] = _incompatible(problem, vehicle, stop.id)
            continue
        current = list(routes.get(vehicle.id, ()))
        found = best_position(problem, vehicle, current, stop_id, locked.get(vehicle.id, 0))
        if found is None:
            rejected[vehicle.id] = _why_not(problem, vehicle, current, stop.id, partner)
            continue
        if best is None or found[0] < best[0]:
            best = (found[0], vehicle.id, found[1], found[2], found[3])
    if best is None:
        return Insertion(stop.id, None, rejected=rejected, reason=t("dispatch.no_driver"))
    _, vehicle_id, sequence, seconds, metres = best
    route, violations = simulate(problem, problem.vehicle_by_id[vehicle_id], sequence)
    assert not violations, violations  # the lean pass and the checker agree on the rules
    minutes = max(0, round(seconds / 60))
    if nearest is None or nearest == vehicle_id:
        reason = t("dispatch.nearest", minutes=minutes)
    elif nearest in rejected:
        name = names.get(nearest, nearest)
        reason = t("dispatch.nearest_cannot", nearest=name, why=rejected[nearest], minutes=minutes)
    else:
        name = names.get(nearest, nearest)
        reason = t("dispatch.cheaper_than_nearest", nearest=name, minutes=minutes)
    return Insertion(stop.id, vehicle_id, tuple(sequence), seconds, metres, route, rejected, reason)


def best_position(
    problem: Problem, vehicle: Vehicle, current: Sequence[str], stop_id: str, locked: int = 0
) -> tuple[int, list[str], int, int] | None:
    """The cheapest feasible place for `stop_id` (a pickup brings its delivery along) on this
    vehicle's route after its first `locked` stops: (added cost, the new sequence, added
    seconds, added metres), or None when it fits nowhere."""
    partner = problem.partner.get(stop_id)
    lean = _Lean(problem, vehicle, [*current, stop_id] + ([partner] if partner else []))
    before = lean.cost(current, late=True) or (0, 0, 0)
    found = None
    for i in range(min(locked, len(current)), len(current) + 1):
        ends = range(i + 1, len(current) + 2) if partner else (None,)
        for j in ends:
            candidate = [*current[:i], stop_id, *current[i:]]
            if j is not None and partner is not None:
                candidate.insert(j, partner)
            result = lean.cost(candidate, late=True)
            if result is not None and (found is None or result[0] - before[0] < found[0]):
                found = (result[0] - before[0], candidate, result[1] - before[1],
                         result[2] - before[2])  # fmt: skip
    return found


def _incompatible(problem: Problem, vehicle: Vehicle, stop_id: str) -> str:
    stop = problem.stop_by_id[stop_id]
    if stop.vehicles is not None and vehicle.id not in stop.vehicles:
        return t("dispatch.not_allowed")
    return t("dispatch.lacks", skills=", ".join(sorted(stop.skills - vehicle.skills)))


def _why_not(
    problem: Problem, vehicle: Vehicle, current: list[str], stop_id: str, partner: str | None
) -> str:
    """The first rule the cheapest-looking position breaks, in words."""
    trial = [*current, stop_id] + ([partner] if partner else [])
    _, violations = simulate(problem, vehicle, trial)
    kinds = {v.kind for v in violations}
    if "max_stops" in kinds:
        return t("dispatch.full_stops")
    if "capacity" in kinds:
        return t("dispatch.full_load")
    if "shift_end" in kinds:
        return t("dispatch.shift_over")
    return t("dispatch.no_time")
