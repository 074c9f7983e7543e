"""The time limit of `solve()` is a limit on the whole call, and a big day costs no more matrix
copies than it needs (issue 16, item 6). Outcomes are asserted from what the plan reports
(`Plan.phases`), never from wall time."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from core.routing.check import check
from core.routing.problem import Depot, Problem, Stop, Vehicle, Window
from core.routing.solve import solve
from core.routing.travel import ROWS, Point, StraightLine, TrafficProfile, haversine_m
from core.texts import t
from tests.test_odd_days import city_day

NOT_PLANNED = t("routing.reason.not_planned")


def assert_whole(problem: Problem, plan) -> None:
    """Checked clean, and every stop either on a route or left out with a reason."""
    assert check(problem, plan) == []
    routed = {stop for route in plan.routes for stop in route.stops}
    for stop in problem.stops:
        assert (stop.id in routed) != (stop.id in plan.unassigned), stop.id
        if stop.id in plan.unassigned:
            assert plan.unassigned[stop.id], stop.id


def test_the_engine_gets_only_what_is_left_of_the_budget():
    day = city_day(orders=120, drivers=8)
    # the caller spent 15 s of a 20 s budget before calling (say, fetching the matrix)
    plan = solve(day, time_limit_s=20, seed=1, started=time.perf_counter() - 15)
    phases = plan.phases
    assert phases is not None and phases.budget == 20
    # 20 - 15 already spent - a little kept for the checker: under 5 s for the engine
    assert 0 < phases.search_limit < 5
    assert phases.budget_spent  # the search ended on the budget, not on its own
    assert phases.first_plan is not None and phases.first_plan >= 15
    assert_whole(day, plan)
    assert len(plan.routes) > 0


def test_a_budget_spent_before_the_call_stops_the_search_at_once():
    day = city_day(orders=120, drivers=8)
    plan = solve(day, time_limit_s=30, seed=1, started=time.perf_counter() - 60)
    phases = plan.phases
    assert phases is not None
    assert phases.search_limit == 0
    assert phases.budget_spent
    assert_whole(day, plan)  # the best plan so far: checked, nothing silently dropped
    # past the deadline nothing more is placed: what the engine's first plan left out is
    # "not planned this time", never claimed to be "full"
    assert set(plan.unassigned.values()) <= {NOT_PLANNED}


def test_iterations_stop_the_search_before_the_budget_and_repeat_exactly():
    day = city_day(orders=60, drivers=5)
    first = solve(day, time_limit_s=120, seed=1, max_iterations=50)
    again = solve(day, time_limit_s=120, seed=1, max_iterations=50)
    assert first.phases is not None and not first.phases.budget_spent
    assert first.phases.search_limit > 100  # the budget was not what stopped it
    assert first.sequences == again.sequences and first.cost == again.cost
    assert_whole(day, first)


def test_a_budget_on_ortools_bounds_its_search_too():
    day = city_day(orders=60, drivers=5)
    plan = solve(day, engine="ortools", time_limit_s=5, seed=1, started=time.perf_counter() - 4)
    assert plan.phases is not None
    assert plan.phases.search_limit < 1  # 5 - 4 spent - a little kept
    assert_whole(day, plan)


# -- matrices: one copy, not several ---------------------------------------------------------


def city_points(n: int) -> list[Point]:
    rng = np.random.default_rng(7)
    lat = 52.52 + rng.uniform(-0.1, 0.1, n)
    lon = 13.405 + rng.uniform(-0.15, 0.15, n)
    return [Point(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


def test_straight_lines_in_blocks_equal_the_whole_matrix_at_once():
    points = city_points(2 * ROWS + 17)  # three blocks, the last one short
    rush = TrafficProfile.parse("7-9:1.35")
    provider = StraightLine(25, 1.3, rush)
    eight = datetime(2026, 11, 24, 8, tzinfo=UTC)
    matrix = asyncio.run(provider.matrix(points, points, eight))
    metres = haversine_m(points, points) * 1.3
    assert np.array_equal(matrix.distances, np.ceil(metres).astype(np.int64))
    assert np.array_equal(matrix.durations, np.ceil(metres / (25 / 3.6) * 1.35).astype(np.int64))
    assert matrix.durations.dtype == np.int64 and matrix.distances.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        matrix.durations[0, 1] = 1
    # fewer sources than destinations: one new point's row
    row = asyncio.run(provider.matrix(points[:1], points, eight))
    assert np.array_equal(row.durations, matrix.durations[:1])


def test_a_problem_takes_a_providers_matrix_without_a_copy_and_copies_anything_else():
    points = city_points(5)
    matrix = asyncio.run(StraightLine().matrix(points, points, None))
    stops = [Stop(f"s{i}", i, (Window(0, 10_000),)) for i in range(1, 5)]
    depots, vehicles = (Depot("hub", 0),), (Vehicle("van", depot="hub"),)
    shared = Problem(matrix.durations, matrix.distances, vehicles, tuple(stops), depots)
    assert shared.durations is matrix.durations and shared.distances is matrix.distances
    # a narrower problem made from it shares them too
    fewer = dataclasses.replace(shared, stops=tuple(stops[:2]))
    assert fewer.durations is shared.durations
    # a writable matrix is copied: changing it afterwards changes nothing in the problem
    writable = np.array(matrix.durations)
    copied = Problem(writable, writable, vehicles, tuple(stops), depots)
    writable[0, 1] += 1000
    assert copied.durations[0, 1] == matrix.durations[0, 1]
    # a frozen view of someone else's array is copied as well (its owner could change it)
    view = np.array(matrix.durations)[:, :]
    view.setflags(write=False)
    assert not np.shares_memory(Problem(view, view, vehicles, tuple(stops), depots).durations, view)


# -- a big day's start -----------------------------------------------------------------------


def test_a_big_day_starts_from_clusters_with_every_stop_once(monkeypatch):
    from core.routing.engines import pyvrp as engine
    from core.routing.engines.pyvrp_model import build

    day = city_day(orders=150, drivers=9)
    data, client_ids, _, fleet = build(day, soft=False)
    start = engine._clustered(day, data, client_ids, fleet, np.random.default_rng(1))
    visited = [a.idx for route in start.routes() for a in route if a.is_client()]
    assert sorted(visited) == list(range(len(client_ids)))  # each stop on exactly one route
    per_type = [sum(r.vehicle_type() == k for r in start.routes()) for k in range(len(fleet))]
    assert all(used <= len(ids) for used, ids in zip(per_type, fleet, strict=True))
    # from that start the product's plan is whole and clean (the day counts as big here)
    monkeypatch.setattr(engine, "CLUSTER_FROM", 100)
    plan = solve(day, time_limit_s=60, seed=1, max_iterations=200)
    assert_whole(day, plan)
    assert not plan.unassigned
