"""Dispatch benchmarks on a generated city.

    python -m bench.dispatch day [--seed 1] [--orders 400] [--drivers 15]
    python -m bench.dispatch latency [--drivers 50] [--stops 500] [--samples 200]

`day`: 3 depots, 15 drivers (08:00–19:00), 400 orders with 1–3 h windows; 250 are known at
07:00 (parcels at the depots), 150 arrive during the day as pickup→delivery jobs. Lastmile plans
the morning, inserts each new job when it arrives (stops done and the stop a driver is driving to
never move) and re-optimizes the rest every hour. The baseline is how a person dispatches: each
order to the nearest available driver, stops driven in the order they were assigned. Reports
drive time and on-time rate for both.

`latency`: time to insert one new order with 50 drivers and 500 open stops (p50/p95/max),
including the travel-matrix update for the new point.

Both print a table and write JSON (bench/results/dispatch-<mode>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.routing.check import evaluate, simulate
from core.routing.insert import cheapest_insertion
from core.routing.problem import (
    ON_BOARD,
    Depot,
    Objective,
    Pair,
    Problem,
    Stop,
    Vehicle,
    Window,
)
from core.routing.solve import solve
from core.routing.travel import Cached, Point, StraightLine, TrafficProfile

HOUR = 3600
DAY_START = 8 * HOUR  # seconds from midnight; the problem's epoch is midnight
SERVICE = 180
CENTER = (52.52, 13.405)


def city_points(rng: np.random.Generator, n: int, radius_km: float = 12.0) -> list[Point]:
    angles = rng.uniform(0, 2 * np.pi, n)
    radii = radius_km * np.sqrt(rng.uniform(0, 1, n))
    lat = CENTER[0] + radii * np.sin(angles) / 111.0
    lon = CENTER[1] + radii * np.cos(angles) / (111.0 * np.cos(np.radians(CENTER[0])))
    return [Point(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


RUSH = "7-9:1.35,16-19:1.45"  # the product's default profile


async def matrices(points: list[Point], traffic: str = RUSH) -> tuple[np.ndarray, np.ndarray]:
    """Times at 08:00 under `traffic` ("" for free flow) and distances."""
    provider = StraightLine(25, 1.3, TrafficProfile.parse(traffic))
    matrix = await provider.matrix(points, points, datetime(2026, 11, 24, 8, tzinfo=UTC))
    return matrix.durations, matrix.distances


# -- the day ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Job:
    stops: tuple[str, ...]  # (delivery,) or (pickup, delivery)
    release: int  # when dispatch learns about it


def build_day(
    seed: int, n_orders: int, n_drivers: int, traffic: str = RUSH
) -> tuple[Problem, list[Job]]:
    rng = np.random.default_rng(seed)
    n_dynamic = n_orders * 3 // 8
    n_known = n_orders - n_dynamic
    depots_at = city_points(rng, 3, radius_km=8)
    points = [*depots_at, *city_points(rng, n_known + 2 * n_dynamic)]
    durations, distances = asyncio.run(matrices(points, traffic))
    depots = tuple(Depot(f"d{i}", i) for i in range(3))
    vehicles = tuple(
        Vehicle(f"v{k}", depot=f"d{k % 3}", start=k % 3, shift=Window(DAY_START, 19 * HOUR))
        for k in range(n_drivers)
    )
    stops, pairs, jobs = [], [], []
    location = 3
    for i in range(n_known):
        start = int(rng.uniform(8, 16)) * HOUR
        width = int(rng.integers(1, 4)) * HOUR
        stops.append(Stop(f"k{i}", location, (Window(start, start + width),), SERVICE))
        jobs.append(Job((f"k{i}",), 7 * HOUR))
        location += 1
    for i in range(n_dynamic):
        release = int(rng.uniform(8, 15.5) * HOUR)
        ready = release + 20 * 60
        width = int(rng.integers(1, 4)) * HOUR
        stops.append(Stop(f"p{i}", location, (Window(ready, ready + width),), SERVICE))
        stops.append(Stop(f"q{i}", location + 1, (Window(ready, ready + width + HOUR),), SERVICE))
        pairs.append(Pair(f"p{i}", f"q{i}"))
        jobs.append(Job((f"p{i}", f"q{i}"), release))
        location += 2
    problem = Problem(
        durations=durations,
        distances=distances,
        vehicles=vehicles,
        stops=tuple(stops),
        depots=depots,
        pairs=tuple(pairs),
        objective=Objective(duration=1),
    )
    jobs.sort(key=lambda job: job.release)
    return problem, jobs


def drive_seconds(problem: Problem, sequences: dict[str, list[str]]) -> int:
    total = 0
    for vehicle_id, stops in sequences.items():
        vehicle = problem.vehicle_by_id[vehicle_id]
        path = [problem.start_location(vehicle)]
        path += [problem.stop_by_id[s].location for s in stops]
        path.append(problem.end_location(vehicle))
        total += sum(int(problem.durations[a, b]) for a, b in itertools.pairwise(path))
    return total


def on_time(problem: Problem, sequences: dict[str, list[str]]) -> tuple[int, int]:
    """(stops served inside a window, stops in the problem)."""
    good = 0
    for vehicle_id, stops in sequences.items():
        route, _ = simulate(problem, problem.vehicle_by_id[vehicle_id], stops)
        for visit in route.visits:
            windows = problem.windows(problem.stop_by_id[visit.stop])
            good += any(w.start <= visit.start <= w.end for w in windows)
    return good, len(problem.stops)


def naive(problem: Problem, jobs: list[Job]) -> dict[str, list[str]]:
    """Each job to the nearest driver (where she is when it arrives), queued at the end."""
    queues: dict[str, list[str]] = {v.id: [] for v in problem.vehicles}
    for job in jobs:
        first = problem.stop_by_id[job.stops[0]].location

        def where(vehicle: Vehicle, job: Job = job, first: int = first) -> tuple[int, int]:
            route, _ = simulate(problem, vehicle, queues[vehicle.id])
            done = [v for v in route.visits if v.departure <= job.release]
            here = (
                problem.stop_by_id[done[-1].stop].location
                if done
                else problem.start_location(vehicle)
            )
            waiting = len(queues[vehicle.id]) - len(done)
            return int(problem.durations[here, first]), waiting

        chosen = min(problem.vehicles, key=where)
        queues[chosen.id].extend(job.stops)
    return queues


def position(problem: Problem, vehicle: Vehicle, stops: list[str], at: int) -> int:
    """How many stops are fixed at time `at`: those done and the one she is driving to."""
    route, _ = simulate(problem, vehicle, stops)
    done = sum(1 for visit in route.visits if visit.departure <= at)
    started = at >= route.departure
    return min(len(stops), done + (1 if started and done < len(stops) else 0))


def reoptimize(
    problem: Problem, sequences: dict[str, list[str]], known: set[str], at: int, limit: float
) -> dict[str, list[str]]:
    """Re-plan every known stop that is not fixed at time `at`."""
    fixed = {
        v.id: sequences.get(v.id, [])[: position(problem, v, sequences.get(v.id, []), at)]
        for v in problem.vehicles
    }
    pinned = {s for stops in fixed.values() for s in stops}
    vehicles = []
    for vehicle in problem.vehicles:
        prefix = fixed[vehicle.id]
        if prefix:
            route, _ = simulate(problem, vehicle, prefix)
            last = problem.stop_by_id[prefix[-1]].location
            vehicle = dataclasses.replace(
                vehicle, start=last, shift=Window(route.visits[-1].departure, vehicle.shift.end)
            )
        vehicles.append(vehicle)
    owner = {s: v for v, stops in fixed.items() for s in stops}
    stops = []
    for stop in problem.stops:
        if stop.id in pinned or stop.id not in known:
            continue
        partner = problem.partner.get(stop.id)
        if partner in pinned:  # its pickup is done: the delivery is in that van
            stop = dataclasses.replace(
                stop, vehicles=frozenset({owner[partner]}), priority=ON_BOARD
            )
        stops.append(stop)
    free = {s.id for s in stops}
    sub = dataclasses.replace(
        problem,
        vehicles=tuple(vehicles),
        stops=tuple(stops),
        pairs=tuple(p for p in problem.pairs if p.pickup in free and p.delivery in free),
    )
    current = {v: sequences.get(v, [])[len(fixed[v]) :] for v in fixed}
    plan = solve(sub, time_limit_s=limit, seed=1, current=current)
    return {v.id: fixed[v.id] + plan.sequences.get(v.id, []) for v in problem.vehicles}


def lastmile(problem: Problem, jobs: list[Job], limit: float) -> tuple[dict, dict]:
    known = {s for job in jobs if job.release <= DAY_START for s in job.stops}
    sequences = reoptimize(problem, {}, known, 7 * HOUR, limit * 5)
    stats = {"insert_ms": [], "reoptimizations": 1, "unplaced": 0}
    next_reopt = DAY_START + HOUR
    for job in (j for j in jobs if j.release > DAY_START):
        while job.release >= next_reopt:
            sequences = reoptimize(problem, sequences, known, next_reopt, limit)
            stats["reoptimizations"] += 1
            next_reopt += HOUR
        known |= set(job.stops)
        visible = dataclasses.replace(
            problem,
            stops=tuple(s for s in problem.stops if s.id in known),
            pairs=tuple(p for p in problem.pairs if p.pickup in known),
        )
        locked = {
            v.id: position(problem, v, sequences.get(v.id, []), job.release)
            for v in problem.vehicles
        }
        started = time.perf_counter()
        result = cheapest_insertion(visible, sequences, job.stops[0], locked=locked)
        stats["insert_ms"].append(1000 * (time.perf_counter() - started))
        if result.vehicle is None:
            stats["unplaced"] += 1
            continue
        sequences[result.vehicle] = list(result.sequence)
    return sequences, stats


def run_day(args: argparse.Namespace) -> dict:
    problem, jobs = build_day(args.seed, args.orders, args.drivers)
    started = time.perf_counter()
    base = naive(problem, jobs)
    naive_s = time.perf_counter() - started
    started = time.perf_counter()
    ours, stats = lastmile(problem, jobs, args.time_limit)
    ours_s = time.perf_counter() - started
    _, violations = evaluate(problem, ours)
    assert not violations, violations[:3]  # every stop that was placed is on time, by the checker
    rows = {}
    for name, sequences, seconds in (("naive", base, naive_s), ("lastmile", ours, ours_s)):
        good, total = on_time(problem, sequences)
        rows[name] = {
            "drive_hours": drive_seconds(problem, sequences) / HOUR,
            "on_time_pct": 100 * good / total,
            "served": sum(len(s) for s in sequences.values()),
            "stops": total,
            "seconds": seconds,
        }
    saved = 100 * (1 - rows["lastmile"]["drive_hours"] / rows["naive"]["drive_hours"])
    print(f"{'policy':<10}{'drive h':>9}{'on time %':>11}{'served':>8}{'stops':>7}{'run s':>8}")
    for name, row in rows.items():
        print(
            f"{name:<10}{row['drive_hours']:>9.1f}{row['on_time_pct']:>11.1f}"
            f"{row['served']:>8}{row['stops']:>7}{row['seconds']:>8.1f}"
        )
    insert = stats.pop("insert_ms")
    p95 = np.percentile(insert, 95)
    print(f"drive time saved: {saved:.1f} %; {len(insert)} insertions, p95 {p95:.1f} ms; "
          f"{stats['reoptimizations']} re-optimizations")  # fmt: skip
    return {
        **rows,
        "drive_time_saved_pct": saved,
        "insert_p95_ms": float(np.percentile(insert, 95)),
        **stats,
    }


# -- insertion latency ------------------------------------------------------------------------


def run_latency(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    n_drivers, n_stops = args.drivers, args.stops
    drivers_at = city_points(rng, n_drivers)
    stops_at = city_points(rng, n_stops)
    new_at = city_points(rng, args.samples)
    cache = Cached(StraightLine(25, 1.3))
    base_points = [*drivers_at, *stops_at]
    durations, distances = asyncio.run(matrices(base_points))
    vehicles = tuple(
        Vehicle(f"v{k}", start=k, open_end=True, shift=Window(DAY_START, 20 * HOUR))
        for k in range(n_drivers)
    )
    stops = tuple(
        Stop(f"s{i}", n_drivers + i, (Window(DAY_START, 20 * HOUR),), SERVICE)
        for i in range(n_stops)
    )
    problem = Problem(durations, distances, vehicles, stops, objective=Objective(duration=1))
    plan = solve(problem, time_limit_s=10, seed=1)
    assert not plan.unassigned, "the open stops must all be planned"
    routes = plan.sequences
    when = datetime(2026, 11, 24, 8, tzinfo=UTC)
    asyncio.run(cache.matrix(base_points, base_points, when))
    timings = []
    for k, point in enumerate(new_at):
        started = time.perf_counter()
        points = [*base_points, point]
        matrix = asyncio.run(cache.matrix(points, points, when))
        new = Stop("new", len(base_points), (Window(DAY_START, 20 * HOUR),), SERVICE)
        grown = Problem(matrix.durations, matrix.distances, vehicles, (*stops, new),
                        objective=Objective(duration=1))  # fmt: skip
        result = cheapest_insertion(grown, routes, "new", locked=dict.fromkeys(routes, 1))
        timings.append(1000 * (time.perf_counter() - started))
        assert result.vehicle is not None
        if k == 0:
            assert cache.requests == 3  # warm-up, then one row and one column
    row = {
        "drivers": n_drivers,
        "open_stops": n_stops,
        "samples": len(timings),
        "p50_ms": statistics.median(timings),
        "p95_ms": float(np.percentile(timings, 95)),
        "max_ms": max(timings),
    }
    print(f"{'drivers':>8}{'stops':>7}{'samples':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    print(f"{n_drivers:>8}{n_stops:>7}{len(timings):>9}{row['p50_ms']:>9.1f}"
          f"{row['p95_ms']:>9.1f}{row['max_ms']:>9.1f}")  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["day", "latency"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--drivers", type=int, default=None)
    parser.add_argument("--stops", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.drivers = args.drivers or (15 if args.mode == "day" else 50)
    result = run_day(args) if args.mode == "day" else run_latency(args)
    out = args.json or Path(f"bench/results/dispatch-{args.mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cores": 2}
    out.write_text(json.dumps({"mode": args.mode, "machine": machine, **vars_of(args),
                               **result}, indent=2))  # fmt: skip
    print(f"wrote {out}")


def vars_of(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


if __name__ == "__main__":
    main()
