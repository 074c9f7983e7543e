"""Legs timed at the hour they are driven, drivers' breaks, and the cost objective."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from core.dispatch.planner import Planner, _pin_prefixes
from core.dispatch.world import World
from core.routing import cost
from core.routing.check import evaluate, simulate
from core.routing.insert import cheapest_insertion
from core.routing.problem import (
    Breaks,
    Depot,
    Objective,
    Problem,
    ProblemError,
    Stop,
    Traffic,
    Vehicle,
    Window,
)
from core.routing.solve import solve
from core.routing.timing import for_engine
from core.routing.travel import StraightLine

MINUTE, HOUR = 60, 3600
RUSH = [1.0] * 24
RUSH[7:9] = [1.5, 1.5]
RUSH[16:19] = [1.45] * 3


def line(n: int, seconds: int) -> np.ndarray:
    """Points 0..n-1 on a line, `seconds` apart."""
    where = np.arange(n)
    return np.abs(where[:, None] - where[None, :]) * seconds


def live(shift: Window) -> Vehicle:
    """A van that leaves from where it stands (location 0) when its shift starts."""
    return Vehicle("van", start=0, open_end=True, shift=shift)


def test_a_leg_in_rush_hour_takes_longer_than_the_same_leg_at_noon():
    matrix = line(2, 30 * MINUTE)
    p = Problem(matrix, matrix * 10, (live(Window(0, 24 * HOUR)),), (Stop("a", 1),),
                traffic=Traffic.of(RUSH))  # fmt: skip
    rush = dataclasses.replace(p.vehicles[0], shift=Window(7 * HOUR + 30 * MINUTE, 24 * HOUR))
    noon = dataclasses.replace(p.vehicles[0], shift=Window(12 * HOUR, 24 * HOUR))
    at_rush, _ = simulate(p, rush, ["a"])
    at_noon, _ = simulate(p, noon, ["a"])
    assert at_noon.visits[0].arrival - at_noon.departure == 30 * MINUTE
    assert at_rush.visits[0].arrival - at_rush.departure == 45 * MINUTE
    assert at_rush.drive == 45 * MINUTE and at_noon.drive == 30 * MINUTE
    # the hour the leg is left decides: 08:59 is rush (1.5), 09:00 is not
    late_rush = dataclasses.replace(p.vehicles[0], shift=Window(9 * HOUR - 1, 24 * HOUR))
    assert simulate(p, late_rush, ["a"])[0].drive == 45 * MINUTE
    # the epoch's local time shifts the profile: an epoch at 07:00 makes time 0 rush hour
    at_seven = dataclasses.replace(p, traffic=Traffic.of(RUSH, offset=7 * HOUR))
    assert simulate(at_seven, p.vehicles[0], ["a"])[0].drive == 45 * MINUTE


def test_bad_traffic_and_breaks_are_refused():
    with pytest.raises(ProblemError, match="24 hourly factors"):
        Traffic.of([1.0] * 23)
    with pytest.raises(ProblemError, match="24 hourly factors"):
        Traffic.of([0.0] * 24)
    with pytest.raises(ProblemError, match="above 0"):
        Breaks(0, 1800)


def _city(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, list[Stop]]:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 20, (n + 1, 2))
    points[0] = (10, 10)
    km = np.abs(points[:, None, :] - points[None, :, :]).sum(axis=-1)
    free = np.ceil(km / 25 * 3600).astype(np.int64)  # 25 km/h free flow
    stops = []
    for i in range(1, n + 1):
        opens = int(rng.uniform(8, 17)) * HOUR
        stops.append(Stop(f"s{i}", i, (Window(opens, opens + HOUR),), service=3 * MINUTE))
    return free, np.ceil(km * 1000).astype(np.int64), stops


def _late_when_driven(free: np.ndarray, p: Problem, sequences: dict[str, list[str]],
                      departures: dict[str, int]) -> list[str]:  # fmt: skip
    """Drive each route again, on its own: every leg at the rush-hour factor of the hour it
    starts (integer thousandths, rounded up), waiting for windows; the stops reached late."""
    factors = [round(f * 1000) for f in RUSH]
    late = []
    for vehicle_id, stop_ids in sequences.items():
        here, now = 0, departures[vehicle_id]
        for stop_id in stop_ids:
            stop = p.stop_by_id[stop_id]
            now += -(-int(free[here, stop.location]) * factors[now // HOUR % 24] // 1000)
            if now > stop.windows[0].end:
                late.append(stop_id)
            now = max(now, stop.windows[0].start) + stop.service
            here = stop.location
    return late


def test_a_plan_made_at_half_past_seven_holds_through_rush_hour_when_re_driven_per_leg():
    free, metres, stops = _city(7, 60)
    vans = tuple(Vehicle(f"v{k}", depot="hub", shift=Window(7 * HOUR + 30 * MINUTE, 20 * HOUR))
                 for k in range(8))  # fmt: skip
    per_leg = Problem(free, metres, vans, tuple(stops), (Depot("hub", 0),),
                      traffic=Traffic.of(RUSH))  # fmt: skip
    plan = solve(per_leg, time_limit_s=1)
    departures = {r.vehicle: r.departure for r in plan.routes}
    assert _late_when_driven(free, per_leg, plan.sequences, departures) == []
    assert len(plan.unassigned) == 0
    # the old way: one factor for the whole matrix, the one of the hour the plan is made
    # (10:30: free flow), gives a plan that is late once legs are driven in rush hour
    one_factor = dataclasses.replace(per_leg, traffic=None)
    old = solve(one_factor, time_limit_s=1)
    departures = {r.vehicle: r.departure for r in old.routes}
    assert _late_when_driven(free, per_leg, old.sequences, departures) != []


def test_without_a_profile_or_breaks_a_plan_is_what_it_was():
    free, metres, stops = _city(3, 25)
    vans = tuple(Vehicle(f"v{k}", depot="hub", shift=Window(8 * HOUR, 20 * HOUR))
                 for k in range(4))  # fmt: skip
    p = Problem(free, metres, vans, tuple(stops), (Depot("hub", 0),))
    assert for_engine(p) is p
    flat = dataclasses.replace(p, traffic=Traffic.of([1.0] * 24))
    plan = solve(p, time_limit_s=1, max_iterations=300)
    again = solve(flat, time_limit_s=1, max_iterations=300)
    assert plan.sequences == again.sequences
    assert [r.visits for r in plan.routes] == [r.visits for r in again.routes]
    for route in plan.routes:
        assert route.breaks == ()


def _four_hours(breaks: Breaks | None, windows: dict[str, Window] | None = None) -> Problem:
    """A van on a line of four stops an hour apart, leaving at time 0."""
    windows = windows or {}
    matrix = line(5, HOUR)
    stops = tuple(Stop(f"s{i}", i, tuple(filter(None, [windows.get(f"s{i}")])))
                  for i in range(1, 5))  # fmt: skip
    return Problem(matrix, matrix * 10, (live(Window(0, 24 * HOUR)),), stops, breaks=breaks)


def test_a_long_route_gets_a_break_and_the_times_after_it_are_later_by_it():
    order = ["s1", "s2", "s3", "s4"]
    without, _ = simulate(_four_hours(None), live(Window(0, 24 * HOUR)), order)
    rested = _four_hours(Breaks(after=150 * MINUTE, length=30 * MINUTE))
    route, violations = simulate(rested, rested.vehicles[0], order)
    assert violations == []
    assert [v.arrival for v in without.visits] == [1 * HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]
    # after s2 (2 h of work) the next leg would end past 2.5 h: she rests first
    assert route.breaks == (2 * HOUR,)
    assert [v.arrival for v in route.visits] == [1 * HOUR, 2 * HOUR, 3.5 * HOUR, 4.5 * HOUR]
    assert route.duration == without.duration + 30 * MINUTE
    assert route.drive == without.drive == 4 * HOUR
    # the checker enforces it: a window that only a driver without a rest could make is late
    tight = _four_hours(
        Breaks(150 * MINUTE, 30 * MINUTE), {"s3": Window(0, 3 * HOUR + 10 * MINUTE)}
    )
    _, broken = simulate(tight, tight.vehicles[0], order)
    assert [(v.kind, v.stop) for v in broken] == [("time_window", "s3")]
    # insertion agrees with the checker (it asserts so) and puts a new stop where it fits
    placed = cheapest_insertion(rested, {"van": ["s1", "s2", "s3"]}, "s4")
    assert placed.vehicle == "van" and placed.route is not None
    assert placed.route.visits[-1].arrival == 4.5 * HOUR


def test_a_wait_long_enough_is_the_break():
    windows = {"s3": Window(3.5 * HOUR, 5 * HOUR)}  # arrives at 3 h, waits 30 min
    order = ["s1", "s2", "s3", "s4"]
    plain = _four_hours(None, windows)
    rested = _four_hours(Breaks(150 * MINUTE, 30 * MINUTE), windows)
    without, _ = simulate(plain, plain.vehicles[0], order)
    route, violations = simulate(rested, rested.vehicles[0], order)
    assert violations == []
    assert [v.arrival for v in route.visits] == [v.arrival for v in without.visits]
    assert route.visits[-1].arrival == 4.5 * HOUR and route.breaks == (3 * HOUR,)
    # a wait shorter than the break does not count: she rests before the leg instead (and
    # so no longer waits there)
    short = _four_hours(
        Breaks(150 * MINUTE, 30 * MINUTE), {"s3": Window(3 * HOUR + 20 * MINUTE, 5 * HOUR)}
    )
    route, _ = simulate(short, short.vehicles[0], order)
    assert route.breaks == (2 * HOUR,) and route.visits[2].arrival == 3.5 * HOUR


def test_a_driver_at_work_before_the_plan_rests_after_the_stop_she_is_driving_to():
    """Re-planned mid-day: she began work 2 h before the plan (`rested`), so her 2.5 h are up
    half an hour in; she is on her first leg already, so she rests after that stop, not
    before it (a rest put before it would never be taken, and made every stop look late)."""
    order = ["s1", "s2", "s3", "s4"]
    fresh = _four_hours(Breaks(150 * MINUTE, 30 * MINUTE))
    at_work = dataclasses.replace(fresh.vehicles[0], rested=-2 * HOUR)
    problem = dataclasses.replace(fresh, vehicles=(at_work,))
    route, violations = simulate(problem, at_work, order)
    assert violations == []
    assert route.breaks == (1 * HOUR, 3.5 * HOUR)
    assert [v.arrival for v in route.visits] == [1 * HOUR, 2.5 * HOUR, 3.5 * HOUR, 5 * HOUR]
    # insertion agrees with the checker (it asserts so) on the same rests
    placed = cheapest_insertion(problem, {"van": ["s1", "s2", "s3"]}, "s4")
    assert placed.route is not None and placed.route.visits[-1].arrival == 5 * HOUR
    # from a depot (not yet on the road) she rests before her first leg instead
    parked = dataclasses.replace(at_work, start=None, depot="d", open_end=True)
    depot = dataclasses.replace(problem, vehicles=(parked,), depots=(Depot("d", 0),))
    route, _ = simulate(depot, parked, order)
    assert route.breaks[0] == 0 and route.visits[0].arrival == 1.5 * HOUR


def test_a_high_cost_per_km_plan_drives_fewer_km_than_cost_per_hour_alone():
    # Time and distance disagree: fast roads are long, short roads are slow.
    rng = np.random.default_rng(5)
    n = 7
    durations = rng.integers(5, 60, (n, n)) * MINUTE
    distances = rng.integers(1, 30, (n, n)) * 1000
    for matrix in (durations, distances):
        np.fill_diagonal(matrix, 0)
    stops = tuple(Stop(f"s{i}", i) for i in range(1, n))
    p = Problem(durations, distances, (Vehicle("van", depot="hub"),), stops, (Depot("hub", 0),))
    by_hour = dataclasses.replace(p, objective=cost.objective(20, 0))
    by_km = dataclasses.replace(p, objective=cost.objective(20, 5))

    def best(q: Problem) -> tuple[int, int]:
        tours = (evaluate(q, {"van": list(o)})[0] for o in itertools.permutations(
            [s.id for s in stops]))  # fmt: skip
        return min((t.cost, t.distance) for t in tours)

    assert best(by_km)[1] < best(by_hour)[1]  # the instance does tell the two apart
    hourly = solve(by_hour, time_limit_s=1)
    per_km = solve(by_km, time_limit_s=1)
    assert per_km.distance < hourly.distance
    assert per_km.duration > hourly.duration
    assert (per_km.cost, per_km.distance) == best(by_km)
    assert hourly.cost == best(by_hour)[0]


def test_the_figures_of_a_small_plan_are_right():
    # depot (0) -> stop 20 min away -> back; 4 min service; 20 km each way
    durations = np.array([[0, 20 * MINUTE], [20 * MINUTE, 0]])
    distances = np.array([[0, 20_000], [20_000, 0]])
    rates = cost.objective(cost_per_hour=20, cost_per_km=0.30)
    assert rates == Objective(distance=30, duration=556)
    p = Problem(durations, distances, (Vehicle("van", depot="hub"),),
                (Stop("a", 1, service=4 * MINUTE),), (Depot("hub", 0),),
                objective=rates)  # fmt: skip
    plan = solve(p, time_limit_s=1)
    total, each = cost.figures(plan, p.objective)
    assert total == each["van"]
    assert (total.vans, total.stops, total.paid_s, total.drive_s, total.metres) == (
        1, 1, 44 * MINUTE, 40 * MINUTE, 40_000)  # fmt: skip
    # 44 min at 20/h (556 units a second) + 40 km at 0.30/km
    assert total.cost == round((556 * 44 * 60 + 30 * 40_000) / cost.SCALE, 2) == 26.68
    assert total.paid_hours == pytest.approx(44 / 60) and total.km == 40.0
    assert cost.objective(0, 0) == Objective(duration=1)


def test_what_the_engines_are_told():
    free, metres, stops = _city(11, 12)
    vans = (Vehicle("v", depot="hub", shift=Window(8 * HOUR, 19 * HOUR)),)
    p = Problem(free, metres, vans, tuple(stops), (Depot("hub", 0),), traffic=Traffic.of(RUSH),
                breaks=Breaks(int(4.5 * HOUR), 30 * MINUTE))  # fmt: skip
    peak, window = for_engine(p, "peak"), for_engine(p, "window")
    for view in (peak, window):
        assert view.traffic is None and view.breaks is None
        # a shift of 11 h needs two rests: it ends an hour earlier for the engine
        assert view.shift(view.vehicles[0]) == Window(8 * HOUR, 18 * HOUR)
    # peak: every leg at 1.5 (08:xx is in the shift), never shorter than at any hour
    assert (peak.durations == -(-free * 1500 // 1000)).all()
    hours = range(8 * HOUR, 19 * HOUR, HOUR)
    for a, b in [(0, 1), (3, 7), (12, 0)]:
        assert all(int(peak.durations[a, b]) >= p.leg(a, b, at) for at in hours)
    # window: a leg into a stop whose window is at noon is free flow
    noon = next(s for s in stops if 11 * HOUR <= s.windows[0].start <= 12 * HOUR)
    assert window.durations[0, noon.location] == free[0, noon.location]
    # windows close earlier by the rests taken by then (one per 4.5 h since 08:00)
    for before, after in zip(p.stops, window.stops, strict=True):
        rests = (before.windows[0].end - 8 * HOUR) // int(4.5 * HOUR)
        expected = max(before.windows[0].start, before.windows[0].end - rests * 30 * MINUTE)
        assert after.windows[0] == Window(before.windows[0].start, expected)
    with pytest.raises(ValueError, match="timing must be one of"):
        for_engine(p, "guess")


def test_the_engines_get_the_cost_in_small_units_with_the_same_ratios():
    free, metres, stops = _city(2, 3)
    stops[0] = dataclasses.replace(stops[0], penalty=1_000_000)
    p = Problem(free, metres, (Vehicle("v", depot="hub", fixed_cost=50_000),), tuple(stops),
                (Depot("hub", 0),), objective=cost.objective(20, 0.30))  # fmt: skip
    small = cost.in_engine_units(p)
    assert small.objective == Objective(distance=2, duration=37)  # 556/30 = 18.53 ≈ 37/2
    factor = 2 / 30
    assert small.stops[0].penalty == math.ceil(1_000_000 * factor)
    assert small.vehicles[0].fixed_cost == math.ceil(50_000 * factor)
    unit = dataclasses.replace(p, objective=Objective(duration=1))
    assert cost.in_engine_units(unit) is unit


async def test_a_replan_pinning_her_next_stop_plans_the_break_due_right_after_it(db):
    """Re-planned on her way to s1 (pinned: she is driving to it), with her 2.5 h of work up
    just after it: the solver starts her from s1 and must rest her before the next leg as the
    full check does. Without that it gives her s2 (10 min away, due by 0:30), which the full
    check then finds late behind her break; Bea (25 min away, fresh) is on time for it."""
    durations = np.array(
        [
            [0, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE],
            [5 * MINUTE, 0, 10 * MINUTE, 30 * MINUTE],
            [15 * MINUTE, 10 * MINUTE, 0, 25 * MINUTE],
            [30 * MINUTE, 30 * MINUTE, 25 * MINUTE, 0],
        ]
    )
    ann = Vehicle("ann", start=0, open_end=True, shift=Window(0, 8 * HOUR), rested=-140 * MINUTE)
    bea = Vehicle("bea", start=3, open_end=True, shift=Window(0, 8 * HOUR))
    problem = Problem(
        durations=durations,
        distances=durations * 10,
        vehicles=(ann, bea),
        stops=(
            Stop("s1", 1, service=3 * MINUTE),
            Stop("s2", 2, windows=(Window(0, 30 * MINUTE),), service=3 * MINUTE),
        ),
        breaks=Breaks(after=150 * MINUTE, length=30 * MINUTE),
    )
    world = World(
        problem,
        datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        {},
        {},
        {},
        sequences={"ann": ["s1"], "bea": []},
        locked={"ann": 1},
    )
    planner = Planner(db, StraightLine(), clock=lambda: world.epoch)
    plan = await planner._solve(world)
    _, violations = evaluate(problem, plan.sequences, plan.unassigned)
    assert violations == []
    assert plan.sequences["ann"][0] == "s1" and "s2" not in plan.unassigned
    assert plan.sequences["bea"] == ["s2"]
    # a wait at s1 long enough to be her rest counts: she leaves it with a fresh stretch
    waits = dataclasses.replace(problem.stops[0], windows=(Window(45 * MINUTE, 2 * HOUR),))
    world.problem = dataclasses.replace(problem, stops=(waits, problem.stops[1]))
    reduced, prefix = _pin_prefixes(world)
    assert prefix == {"ann": "s1"}
    assert reduced.vehicles[0].rested == 45 * MINUTE and reduced.vehicles[0].parked
    assert reduced.vehicles[0].shift.start == 48 * MINUTE
