"""Route solving: known optimal answers, every plan re-checked, clear reasons and errors."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import numpy as np
import pytest

from core.routing.check import evaluate
from core.routing.engines import ortools as ortools_engine
from core.routing.engines import pyvrp as pyvrp_engine
from core.routing.problem import (
    Depot,
    Objective,
    Pair,
    Problem,
    ProblemError,
    Stop,
    Vehicle,
    Window,
)
from core.routing.solve import ENGINES as ENGINES_BY_NAME
from core.routing.solve import choose_engine, solve, solve_async

ENGINES = [pyvrp_engine.NAME, ortools_engine.NAME]
MINUTE = 60


def grid(points: list[tuple[int, int]], seconds_per_unit: int = MINUTE) -> np.ndarray:
    """Manhattan travel times between integer grid points."""
    coords = np.asarray(points)
    return np.abs(coords[:, None, :] - coords[None, :, :]).sum(axis=-1) * seconds_per_unit


def problem(
    points: list[tuple[int, int]],
    stops: list[Stop],
    vehicles: list[Vehicle] | None = None,
    **kwargs,
) -> Problem:
    matrix = grid(points)
    return Problem(
        durations=matrix,
        distances=matrix * 10,
        vehicles=tuple([Vehicle("van", depot="hub")] if vehicles is None else vehicles),
        stops=tuple(stops),
        depots=(Depot("hub", 0),),
        **kwargs,
    )


def brute_force(p: Problem, vehicle: Vehicle) -> int:
    """The cheapest feasible single-route duration, by trying every order."""
    best = None
    for order in itertools.permutations([s.id for s in p.stops]):
        plan, violations = evaluate(p, {vehicle.id: list(order)})
        if not violations and (best is None or plan.cost < best):
            best = plan.cost
    assert best is not None
    return best


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tour_of_a_square_is_optimal(engine: str):
    points = [(0, 0), (0, 4), (4, 4), (4, 0), (2, 5), (5, 2)]
    p = problem(points, [Stop(f"s{i}", i, service=120) for i in range(1, 6)])
    plan = solve(p, time_limit_s=1, engine=engine)
    assert plan.unassigned == {} and plan.engine == engine
    assert plan.cost == brute_force(p, p.vehicles[0]) == 20 * MINUTE + 5 * 120


@pytest.mark.parametrize("engine", ENGINES)
def test_time_windows_beat_geometry(engine: str):
    # On a line the near stop would come first, but the far one closes early.
    points = [(0, 0), (1, 0), (5, 0)]
    stops = [
        Stop("near", 1, windows=(Window(20 * MINUTE, 60 * MINUTE),)),
        Stop("far", 2, windows=(Window(0, 6 * MINUTE),)),
    ]
    plan = solve(problem(points, stops), time_limit_s=1, engine=engine)
    assert plan.routes[0].stops == ["far", "near"]
    far, near = plan.routes[0].visits
    # It leaves a minute late (the far window's slack) to wait less, and still waits at near.
    assert plan.routes[0].departure == MINUTE
    assert far.arrival == 6 * MINUTE and near.arrival == 10 * MINUTE
    assert near.start == 20 * MINUTE


@pytest.mark.parametrize("engine", ENGINES)
def test_capacity_splits_the_work_optimally(engine: str):
    points = [(0, 0), (0, 3), (0, 4), (3, 0), (4, 0)]
    stops = [Stop(f"s{i}", i, demand=(5,)) for i in range(1, 5)]
    vans = [Vehicle(v, depot="hub", capacity=(10,)) for v in ("a", "b")]
    plan = solve(
        problem(points, stops, vans, dimensions=("kg",)),
        time_limit_s=1,
        engine=engine,
    )
    assert sorted(sorted(r.stops) for r in plan.routes) == [["s1", "s2"], ["s3", "s4"]]
    assert plan.duration == 2 * 8 * MINUTE
    assert all(r.visits[0].load == (5,) for r in plan.routes)  # 10 loaded, 5 left after one


@pytest.mark.parametrize("engine", ENGINES)
def test_pickup_comes_before_delivery_on_one_vehicle(engine: str):
    # The delivery is on the way to the pickup; a solver ignoring precedence would do it first.
    points = [(0, 0), (6, 0), (2, 0), (3, 1)]
    stops = [
        Stop("pick", 1, demand=(1,)),
        Stop("drop", 2, demand=(1,)),
        Stop("other", 3, demand=(1,)),
    ]
    vans = [Vehicle(v, depot="hub", capacity=(2,)) for v in ("a", "b")]
    p = problem(points, stops, vans, pairs=(Pair("pick", "drop"),), dimensions=("parcels",))
    plan = solve(p, time_limit_s=1, engine=engine)
    route = plan.route_of("pick")
    assert route is plan.route_of("drop")
    assert route.stops.index("pick") < route.stops.index("drop")
    assert plan.unassigned == {}


def test_same_seed_gives_the_same_plan():
    rng = np.random.default_rng(7)
    points = [(0, 0), *[tuple(int(c) for c in rng.integers(0, 20, 2)) for _ in range(25)]]
    stops = [Stop(f"s{i}", i, demand=(1,), service=60) for i in range(1, 26)]
    vans = [Vehicle(v, depot="hub", capacity=(9,)) for v in "abcd"]
    p = problem(points, stops, vans, dimensions=("parcels",))
    first = solve(p, seed=3, max_iterations=300, time_limit_s=30)
    second = solve(p, seed=3, max_iterations=300, time_limit_s=30)
    assert first.sequences == second.sequences and first.cost == second.cost


def test_the_engine_is_chosen_by_what_the_problem_needs():
    points = [(0, 0), (1, 0), (2, 0)]
    plain = problem(points, [Stop("a", 1), Stop("b", 2)])
    assert choose_engine(plain) == "pyvrp"
    two_windows = problem(points, [Stop("a", 1, windows=(Window(0, 5), Window(10, 20)))])
    assert choose_engine(two_windows) == "pyvrp"  # a client per window, in a client group
    vans = [Vehicle("x", depot="hub"), Vehicle("y", depot="hub", skills=frozenset({"fridge"}))]
    chilled = problem(points, [Stop("a", 1, skills=frozenset({"fridge"})), Stop("b", 1)], vans)
    assert choose_engine(chilled) == "pyvrp"  # one profile per vehicle class
    for engine in ENGINES:
        plan = solve(chilled, time_limit_s=1, engine=engine)
        assert plan.route_of("a").vehicle == "y" and plan.engine == engine
        assert plan.unassigned == {}
    many = [Vehicle(f"v{i}", depot="hub", skills=frozenset({f"s{i}"})) for i in range(20)]
    classes = [Stop(f"c{i}", 1 + i % 2, skills=frozenset({f"s{i}"})) for i in range(20)]
    twenty = problem(points, classes, many)
    assert choose_engine(twenty) == "pyvrp"  # 15 profiles, then lock dimensions
    plan = solve(twenty, time_limit_s=1)
    assert plan.engine == "pyvrp" and plan.unassigned == {}
    assert all(plan.route_of(f"c{i}").vehicle == f"v{i}" for i in range(20))
    counted = [Vehicle("x", depot="hub", max_stops=3)]
    paired = problem(points, [Stop("p", 1), Stop("d", 2)], counted, pairs=(Pair("p", "d"),))
    assert choose_engine(paired) == "ortools"  # a shipment cannot also count stops in PyVRP


def test_several_windows_per_stop():
    points = [(0, 0), (2, 0)]
    stop = Stop("a", 1, windows=(Window(0, MINUTE), Window(30 * MINUTE, 40 * MINUTE)))
    plan = solve(problem(points, [stop]), time_limit_s=1)
    assert plan.visit("a").start == 30 * MINUTE  # 2 min away: missed the first, waits


def test_live_start_and_open_end():
    points = [(0, 0), (5, 0), (6, 0), (9, 0)]
    driver = Vehicle("dana", start=1, open_end=True, shift=Window(1000, 100_000))
    p = problem(points, [Stop("a", 2), Stop("b", 3)], [driver])
    plan = solve(p, time_limit_s=1)
    route = plan.routes[0]
    assert route.stops == ["a", "b"] and route.departure == 1000  # leaves now, from where she is
    assert route.end == 1000 + 4 * MINUTE  # no drive home


def test_impossible_stops_come_back_with_reasons():
    points = [(0, 0), (1, 0), (50, 0), (2, 0), (3, 0)]
    van = Vehicle("van", depot="hub", capacity=(10,), shift=Window(0, 60 * MINUTE))
    stops = [
        Stop("ok", 1, demand=(1,)),
        Stop("far", 2, demand=(1,)),
        Stop("huge", 3, demand=(11,)),
        Stop("cold", 4, demand=(1,), skills=frozenset({"fridge"})),
        Stop("late", 1, demand=(1,), windows=(Window(0, 10),)),
    ]
    plan = solve(problem(points, stops, [van], dimensions=("kg",)), time_limit_s=1)
    assert plan.routes[0].stops == ["ok"]
    assert plan.unassigned == {
        "far": "no driver can reach it within its time window and shift",
        "huge": "it is bigger than every vehicle that could take it",
        "cold": "no driver on shift has fridge",
        "late": "no driver can reach it within its time window and shift",
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_an_overfull_day_leaves_stops_out_instead_of_breaking_rules(engine: str):
    points = [(0, 0), *[(i, 0) for i in range(1, 9)]]
    stops = [Stop(f"s{i}", i, service=10 * MINUTE) for i in range(1, 9)]
    van = Vehicle("van", depot="hub", shift=Window(0, 60 * MINUTE))
    plan = solve(problem(points, stops, [van]), time_limit_s=1, engine=engine)
    assert plan.routes and plan.unassigned
    assert set(plan.unassigned.values()) == {
        "no room: every route is full (time windows, capacity or shift ends)"
    }
    assert plan.routes[0].end <= 60 * MINUTE
    assert len(plan.routes[0].stops) + len(plan.unassigned) == 8


def test_optional_stops_are_skipped_when_not_worth_it():
    points = [(0, 0), (1, 0), (30, 0)]
    stops = [Stop("near", 1, penalty=10_000), Stop("remote", 2, penalty=60)]
    plan = solve(problem(points, stops), time_limit_s=1)
    assert plan.routes[0].stops == ["near"]
    assert plan.unassigned == {"remote": "left out: serving it would cost more than it is worth"}


def test_no_vehicles_means_everything_unassigned():
    plan = solve(problem([(0, 0), (1, 0)], [Stop("a", 1)], []), time_limit_s=1)
    assert plan.routes == () and plan.unassigned == {"a": "no driver is on shift"}


async def test_solving_off_the_event_loop_keeps_it_answering():
    rng = np.random.default_rng(1)
    points = [(0, 0), *[tuple(int(c) for c in rng.integers(0, 30, 2)) for _ in range(60)]]
    p = problem(points, [Stop(f"s{i}", i) for i in range(1, 61)], [Vehicle("v", depot="hub")])
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    plan = await solve_async(p, time_limit_s=1.0)
    beat.cancel()
    assert len(plan.routes[0].stops) == 60
    assert ticks >= 10  # the loop kept running while the solver worked for a second


# -- the checker catches each kind of violation ---------------------------------------------


def checker_problem() -> Problem:
    points = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]
    vans = [
        Vehicle("a", depot="hub", capacity=(2,), max_stops=3, shift=Window(0, 20 * MINUTE)),
        Vehicle("b", depot="hub", capacity=(2,), skills=frozenset({"fridge"})),
    ]
    stops = [
        Stop("s1", 1, demand=(1,)),
        Stop("s2", 2, demand=(1,), windows=(Window(0, 150),)),
        Stop("cold", 3, demand=(0,), skills=frozenset({"fridge"})),
        Stop("only_b", 4, demand=(0,), vehicles=frozenset({"b"})),
        Stop("pick", 1, demand=(1,)),
        Stop("drop", 4, demand=(1,)),
        Stop("s3", 3, demand=(1,), service=30 * MINUTE),
    ]
    return problem(points, stops, vans, pairs=(Pair("pick", "drop"),), dimensions=("kg",))


VIOLATIONS = {
    "duplicate": {"a": ["s1"], "b": ["s1"]},
    "unknown": {"a": ["nope"]},
    "capacity": {"a": ["pick", "s1", "s2", "drop"]},  # 2 loaded at the start, then a pickup
    "time_window": {"b": ["s3", "s2"]},
    "shift_end": {"a": ["s3"]},
    "skill": {"a": ["cold"]},
    "vehicle": {"a": ["only_b"]},
    "max_stops": {"a": ["pick", "drop", "cold", "s1"]},
    "precedence": {"b": ["drop", "pick"]},
    "pair_split": {"a": ["pick"], "b": ["drop"]},
}


@pytest.mark.parametrize("kind", list(VIOLATIONS))
def test_the_checker_catches(kind: str):
    p = checker_problem()
    _, violations = evaluate(p, VIOLATIONS[kind])
    assert kind in {v.kind for v in violations}, violations


def test_the_checker_accepts_a_good_plan():
    p = checker_problem()
    _, violations = evaluate(p, {"a": ["s2", "s1"], "b": ["pick", "cold", "only_b", "drop"]})
    assert violations == []


# -- bad input is refused with a clear message ------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: Stop("x", 1, demand=(-1,)), "stop x has a negative demand"),
        (lambda: Window(100, 50), "A time window ends (50) before it starts (100)."),
        (lambda: Vehicle("v", depot="nowhere"), "vehicle v names depot 'nowhere'"),
        (lambda: Stop("x", 99), "stop x is at location 99, but there are only 3 locations"),
        (lambda: Stop("a", 1), "Two of the stops have the id 'a'"),
        (lambda: Stop("x", 1, demand=(1, 2)), "one amount per capacity dimension"),
        (lambda: Stop("x", 1, vehicles=frozenset({"ghost"})), "vehicle 'ghost'"),
        (
            lambda: Stop("x", 1, windows=(Window(0, 10), Window(5, 20))),
            "time windows of stop x overlap",
        ),
        (lambda: Vehicle("free", start=1), "has no depot, so it needs a start position"),
    ],
)
def test_bad_input_is_refused(change, message):
    def build():
        item = change()
        base = dict(
            points=[(0, 0), (1, 0), (2, 0)],
            stops=[Stop("a", 1, demand=(1,))],
            dimensions=("kg",),
        )
        if isinstance(item, Stop):
            base["stops"] = [*base["stops"], item]
        elif isinstance(item, Vehicle):
            base["vehicles"] = [item]
        return problem(**base)

    with pytest.raises(ProblemError) as error:
        build()
    assert message in str(error.value)


def test_bad_matrices_and_pairs_are_refused():
    ok = problem(
        [(0, 0), (1, 0)], [Stop("a", 1, demand=(1,)), Stop("b", 1, demand=(2,))], dimensions=("kg",)
    )
    with pytest.raises(ProblemError, match="must be square"):
        dataclasses.replace(ok, durations=np.zeros((2, 3)))
    with pytest.raises(ProblemError, match="negative entries"):
        dataclasses.replace(ok, distances=-np.ones((2, 2)))
    with pytest.raises(ProblemError, match="must carry the same load"):
        dataclasses.replace(ok, pairs=(Pair("a", "b"),))
    with pytest.raises(ProblemError, match="names stop 'zzz'"):
        dataclasses.replace(ok, pairs=(Pair("a", "zzz"),))


def test_the_problem_is_immutable():
    p = problem([(0, 0), (1, 0)], [Stop("a", 1)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.stops = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        p.durations[0, 1] = 5


def test_duration_objective_leaves_the_depot_as_late_as_useful():
    points = [(0, 0), (5, 0)]
    p = problem(
        points,
        [Stop("a", 1, windows=(Window(60 * MINUTE, 70 * MINUTE),))],
        objective=Objective(duration=1),
    )
    plan = solve(p, time_limit_s=1)
    route = plan.routes[0]
    assert route.departure == 55 * MINUTE and route.visits[0].arrival == 60 * MINUTE
    assert route.duration == 10 * MINUTE


def test_a_replan_never_returns_worse_than_the_current_plan(monkeypatch):
    points = [(0, 0), (1, 0), (2, 0), (3, 0)]
    stops = [
        Stop("a", 1, service=MINUTE),
        Stop("b", 2, service=MINUTE),
        Stop("c", 3, service=MINUTE, priority=100),  # c is already in the van
    ]
    van = Vehicle("van", depot="hub", shift=Window(0, 8 * MINUTE))  # time for two of the three
    p = problem(points, stops, [van])
    current = {"van": ["a", "c"]}

    def drops_the_parcel_in_the_van(sub, **options):
        return {"van": ["a", "b"]}  # a worse plan: leaves the parcel in the van behind

    monkeypatch.setitem(ENGINES_BY_NAME, "pyvrp", drops_the_parcel_in_the_van)
    full = "no room: every route is full (time windows, capacity or shift ends)"
    alone = solve(p, time_limit_s=1)  # without a current plan: c fits nowhere after a and b
    assert alone.unassigned == {"c": full}
    kept = solve(p, time_limit_s=1, current=current)
    assert kept.sequences == current and kept.unassigned == {"b": full}  # a true reason
    assert kept.engine == "current"
