"""Our own feasibility checker. Every plan passes through it before anyone sees it.

`simulate()` drives one vehicle through its stops and returns the schedule and every rule the
route breaks; `evaluate()` does that for a whole plan and adds the rules across routes (each
stop at most once, pickup before delivery on the same vehicle). Engines only propose sequences;
times, loads and cost always come from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.routing.plan import Plan, RoutePlan, Visit
from core.routing.problem import Problem, Stop, Vehicle


@dataclass(frozen=True)
class Violation:
    kind: str  # duplicate, unknown, capacity, time_window, shift_end, skill, vehicle,
    #            max_stops, precedence, pair_split
    message: str
    vehicle: str | None = None
    stop: str | None = None


class InfeasiblePlan(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(v.message for v in violations[:5]))


def _starting_load(problem: Problem, stops: Sequence[Stop]) -> list[int]:
    """Plain deliveries are loaded at the start; paired loads are picked up on the way."""
    load = [0] * len(problem.dimensions)
    for stop in stops:
        if stop.id not in problem.partner:
            for dim, amount in enumerate(problem.load(stop)):
                load[dim] += amount
    return load


@dataclass
class _Pass:
    """One forward pass: the schedule and what it costs."""

    visits: list[Visit]
    end: int
    distance: int
    violations: list[Violation]
    waited: int  # total wait for windows
    slack: int  # how much later it could leave without breaking a window
    drive: int  # seconds behind the wheel
    rests: list[int]  # when each break starts


def _rest_first(problem: Problem, time: int, rested: int, leg: int, start: int, busy: int) -> bool:
    """Whether the driver must rest before this leg: it ends (with the wait and the `busy`
    seconds of service after it) past her work limit, she has worked since her last rest, and
    the wait before the window is not long enough to be the rest itself."""
    breaks = problem.breaks
    if breaks is None or time <= rested:
        return False
    arrival = time + leg
    return start - arrival < breaks.length and start + busy - rested > breaks.after


def _schedule(problem: Problem, vehicle: Vehicle, stops: Sequence[Stop], departure: int) -> _Pass:
    """Forward pass: each leg at the traffic of its hour, a break where work runs long (never
    before the first leg of a live start: she is driving it already, and rests after it)."""
    distances = problem.distances
    shift = problem.shift(vehicle)
    location, time, distance = problem.start_location(vehicle), departure, 0
    load = _starting_load(problem, stops)
    capacity = vehicle.capacity
    violations: list[Violation] = []
    visits: list[Visit] = []
    waited, slack, drive = 0, shift.end - departure, 0
    rested = problem.rested(vehicle, departure)
    rests: list[int] = []

    def over(amounts: list[int]) -> bool:
        return bool(capacity) and any(a > c for a, c in zip(amounts, capacity, strict=True))

    def window_of(arrival: int, stop: Stop):
        return next((w for w in problem.windows(stop) if w.end >= arrival), None)

    if over(load):
        violations.append(
            Violation("capacity", f"vehicle {vehicle.id} starts overloaded: {load}", vehicle.id)
        )
    driving = vehicle.start is not None and not vehicle.parked  # on her first leg already
    for index, stop in enumerate(stops):
        leg = problem.leg(location, stop.location, time)
        if problem.breaks is not None and not (driving and index == 0):  # rests after it
            window = window_of(time + leg, stop)
            start = time + leg if window is None else max(time + leg, window.start)
            if _rest_first(problem, time, rested, leg, start, stop.service):
                rests.append(time)
                time += problem.breaks.length
                rested = time
                leg = problem.leg(location, stop.location, time)
        arrival = time + leg
        drive += leg
        distance += int(distances[location, stop.location])
        window = window_of(arrival, stop)
        if window is None:
            last = problem.windows(stop)[-1].end
            violations.append(
                Violation(
                    "time_window",
                    f"vehicle {vehicle.id} reaches stop {stop.id} at {arrival}, "
                    f"after its window closes at {last}",
                    vehicle.id,
                    stop.id,
                )
            )
            start = arrival
        else:
            start = max(arrival, window.start)
            waited += start - arrival
            slack = min(slack, waited + window.end - start)
        if problem.breaks is not None and start - arrival >= problem.breaks.length:
            rests.append(arrival)  # the wait is the rest
            rested = start
        sign = 1 if stop.id in problem.pickups else -1
        for dim, amount in enumerate(problem.load(stop)):
            load[dim] += sign * amount
        if over(load):
            violations.append(
                Violation(
                    "capacity",
                    f"vehicle {vehicle.id} carries {load} after stop {stop.id}, "
                    f"more than its capacity {list(capacity)}",
                    vehicle.id,
                    stop.id,
                )
            )
        time = start + stop.service
        location = stop.location
        visits.append(Visit(stop.id, arrival, start, time, tuple(load)))
    end_location = problem.end_location(vehicle)
    if end_location is not None:
        leg = problem.leg(location, end_location, time)
        if _rest_first(problem, time, rested, leg, time + leg, 0):
            assert problem.breaks is not None
            rests.append(time)
            time += problem.breaks.length
            leg = problem.leg(location, end_location, time)
        time += leg
        drive += leg
        distance += int(distances[location, end_location])
    if time > shift.end:
        violations.append(
            Violation(
                "shift_end",
                f"vehicle {vehicle.id} finishes at {time}, after its shift ends at {shift.end}",
                vehicle.id,
                stops[-1].id if stops else None,
            )
        )
    slack = min(slack, waited + shift.end - time)
    return _Pass(visits, time, distance, violations, waited, slack, drive, rests)


def simulate(
    problem: Problem, vehicle: Vehicle, stop_ids: Sequence[str]
) -> tuple[RoutePlan, list[Violation]]:
    """Schedule one route; a depot start leaves as late as it can without being late anywhere
    (less waiting, same arrivals where it matters); a live position leaves now."""
    stops = [problem.stop_by_id[stop_id] for stop_id in stop_ids]
    shift = problem.shift(vehicle)
    departure = shift.start
    forward = _schedule(problem, vehicle, stops, departure)
    later = min(forward.waited, forward.slack)
    if vehicle.start is None and stops and not forward.violations and later > 0:
        delayed = _schedule(problem, vehicle, stops, departure + later)
        # with traffic or breaks leaving later can break a window or add a rest: then not
        if not delayed.violations and delayed.end - later <= forward.end:
            forward, departure = delayed, departure + later
    violations = forward.violations
    for stop in stops:
        if stop.vehicles is not None and vehicle.id not in stop.vehicles:
            violations.append(
                Violation(
                    "vehicle",
                    f"stop {stop.id} may not go on vehicle {vehicle.id}",
                    vehicle.id,
                    stop.id,
                )
            )
        elif not stop.skills <= vehicle.skills:
            missing = ", ".join(sorted(stop.skills - vehicle.skills))
            violations.append(
                Violation(
                    "skill",
                    f"stop {stop.id} needs {missing}, which vehicle {vehicle.id} lacks",
                    vehicle.id,
                    stop.id,
                )
            )
    if vehicle.max_stops is not None and len(stops) > vehicle.max_stops:
        violations.append(
            Violation(
                "max_stops",
                f"vehicle {vehicle.id} has {len(stops)} stops, more than its {vehicle.max_stops}",
                vehicle.id,
                stops[vehicle.max_stops].id,
            )
        )
    route = RoutePlan(
        vehicle.id,
        tuple(forward.visits),
        departure,
        forward.end,
        forward.distance,
        forward.end - departure,
        forward.drive,
        tuple(forward.rests),
    )
    return route, violations


def evaluate(
    problem: Problem,
    sequences: Mapping[str, Sequence[str]],
    unassigned: Mapping[str, str] | Iterable[str] = (),
    *,
    engine: str = "",
) -> tuple[Plan, list[Violation]]:
    """Schedule and cost every route, and list every rule the plan breaks."""
    violations: list[Violation] = []
    seen: dict[str, str] = {}  # stop -> vehicle
    position: dict[str, int] = {}  # stop -> index on its route
    routes = []
    for vehicle_id, stop_ids in sequences.items():
        vehicle = problem.vehicle_by_id.get(vehicle_id)
        if vehicle is None:
            violations.append(Violation("unknown", f"there is no vehicle {vehicle_id}"))
            continue
        known: list[str] = []
        for stop_id in stop_ids:
            if stop_id not in problem.stop_by_id:
                violations.append(
                    Violation("unknown", f"there is no stop {stop_id}", vehicle_id, stop_id)
                )
            elif stop_id in seen:
                violations.append(
                    Violation(
                        "duplicate",
                        f"stop {stop_id} is on vehicle {seen[stop_id]} and on {vehicle_id}",
                        vehicle_id,
                        stop_id,
                    )
                )
            else:
                seen[stop_id] = vehicle_id
                position[stop_id] = len(known)
                known.append(stop_id)
        if not known:
            continue
        route, broken = simulate(problem, vehicle, known)
        routes.append(route)
        violations += broken
    reasons = dict(unassigned) if isinstance(unassigned, Mapping) else dict.fromkeys(unassigned, "")
    for stop_id in reasons:
        if stop_id in seen:
            violations.append(
                Violation("duplicate", f"stop {stop_id} is both routed and left out", None, stop_id)
            )
    for stop in problem.stops:
        if stop.id not in seen and stop.id not in reasons:
            reasons[stop.id] = "not planned"
    violations += _precedence(problem, seen, position)

    distance = sum(route.distance for route in routes)
    duration = sum(route.duration for route in routes)
    objective = problem.objective
    cost = objective.distance * distance + objective.duration * duration
    cost += sum(objective.vehicle + problem.vehicle_by_id[r.vehicle].fixed_cost for r in routes)
    cost += sum(problem.stop_by_id[s].penalty or 0 for s in reasons if s in problem.stop_by_id)
    plan = Plan(tuple(routes), reasons, cost, distance, duration, engine)
    return plan, violations


def _precedence(
    problem: Problem, seen: Mapping[str, str], position: Mapping[str, int]
) -> list[Violation]:
    violations = []
    for pair in problem.pairs:
        on_pickup, on_delivery = seen.get(pair.pickup), seen.get(pair.delivery)
        if on_pickup is None and on_delivery is None:
            continue
        if on_pickup != on_delivery:
            violations.append(
                Violation(
                    "pair_split",
                    f"pickup {pair.pickup} and delivery {pair.delivery} are not on one vehicle",
                    on_pickup or on_delivery,
                    pair.delivery,
                )
            )
        elif position[pair.pickup] > position[pair.delivery]:
            violations.append(
                Violation(
                    "precedence",
                    f"delivery {pair.delivery} comes before its pickup {pair.pickup}",
                    on_pickup,
                    pair.delivery,
                )
            )
    return violations


def check(problem: Problem, plan: Plan) -> list[Violation]:
    """Re-check a finished plan from its sequences alone."""
    return evaluate(problem, plan.sequences, plan.unassigned)[1]
