"""What the engines are told about time when legs depend on the hour they are driven.

PyVRP and OR-Tools take one travel time per pair. With a traffic profile the problem keeps
free-flow times, and the engine gets them scaled so that its plans mostly hold when each leg is
timed at its own hour; with breaks, shifts shortened and windows closing earlier by the rests
a driver will have taken by then. Whatever the
engine proposes is then re-timed per leg by the checker, repaired and filled (`solve.py`), so
the plan handed out is on time either way; this only decides how often repair has to act.

- `peak`: every leg at the highest factor of the planning horizon (never optimistic).
- `window`: a leg into a stop at the highest factor of the hours around that stop's windows
  (from an hour before its first opens to its last close); legs into depots at `peak`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core.routing.problem import Problem, Stop, Vehicle, Window

HOUR = 3600
TIMINGS = ("peak", "window")


def for_engine(problem: Problem, timing: str = "window") -> Problem:
    """The problem the engine solves: fixed travel times, no breaks, shifts that leave room
    for the rests. A problem without traffic and breaks is returned as it is."""
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, not {timing!r}")
    if problem.traffic is None and problem.breaks is None:
        return problem
    durations = problem.durations
    if problem.traffic is not None and problem.vehicles:
        durations = _scaled(problem, timing)
    vehicles = tuple(_rested(problem, v) for v in problem.vehicles)
    stops = _rests_before(problem)
    return dataclasses.replace(
        problem, durations=durations, vehicles=vehicles, stops=stops, traffic=None, breaks=None
    )


def _scaled(problem: Problem, timing: str) -> np.ndarray:
    traffic = problem.traffic
    assert traffic is not None
    shifts = [problem.shift(v) for v in problem.vehicles]
    first, last = min(s.start for s in shifts), max(s.end for s in shifts)
    peak = traffic.highest(first, last)
    factors = np.full(problem.size, peak, dtype=np.int64)
    if timing == "window":
        seen: set[int] = set()
        for stop in problem.stops:
            windows = problem.windows(stop)
            opens = max(first, windows[0].start - HOUR)
            closes = min(last, windows[-1].end)
            factor = traffic.highest(opens, max(opens, closes))
            here = stop.location
            factors[here] = factor if here not in seen else max(factors[here], factor)
            seen.add(here)
        for depot in problem.depots:
            factors[depot.location] = peak
        for vehicle in problem.vehicles:
            if vehicle.start is not None:
                factors[vehicle.start] = peak
    # ceil(free-flow × factor / 1000), in place: one new matrix, frozen so that the engine's
    # problem takes it without a copy
    scaled = problem.durations * factors[None, :]
    np.negative(scaled, out=scaled)
    np.floor_divide(scaled, 1000, out=scaled)
    np.negative(scaled, out=scaled)
    scaled.setflags(write=False)
    return scaled


def _rests_before(problem: Problem) -> tuple[Stop, ...]:
    """Each stop with its windows closing earlier by the rests a driver may have taken by
    then (one per `after` since the earliest shift start), so that the engine's arrivals
    still hold once the rests are in."""
    breaks = problem.breaks
    if breaks is None or not problem.vehicles:
        return problem.stops
    first = min(problem.rested(v, problem.shift(v).start) for v in problem.vehicles)
    out = []
    for stop in problem.stops:
        windows = []
        for window in stop.windows:
            rests = max(0, window.end - first) // breaks.after
            cut = min(rests, 24 * HOUR // breaks.after) * breaks.length
            windows.append(Window(window.start, max(window.start, window.end - cut)))
        out.append(dataclasses.replace(stop, windows=tuple(windows)) if windows else stop)
    return tuple(out)


def _rested(problem: Problem, vehicle: Vehicle) -> Vehicle:
    """The vehicle with its shift shortened by the rests a shift that long needs."""
    breaks = problem.breaks
    if breaks is None:
        return vehicle
    shift = problem.shift(vehicle)
    length = min(shift.end - problem.rested(vehicle, shift.start), 24 * HOUR)
    rests = max(0, (length - 1) // breaks.after) if length > breaks.after else 0
    if not rests:
        return vehicle
    end = max(shift.start, shift.end - rests * breaks.length)
    return dataclasses.replace(
        vehicle, shift=Window(vehicle.shift.start, min(vehicle.shift.end, end))
    )
