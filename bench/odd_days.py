"""Odd days: does one odd order, or a few locked stops, wreck a big day's plan?

    python -m bench.odd_days [--orders 1000] [--drivers 50] [--locks 16] [--time-limit 2]
                             [--stops 2000] [--samples 20]

`day`: a generated city day (3 depots, drivers 08:00–19:00, orders with 1–3 h windows), solved
by `solve()` within the time limit: as it is; with one order given two windows (10–11 and
15–16); with `--locks` orders each locked to a different driver (manual assignments). The odd
days also run with OR-Tools forced, which is what `solve()` chose for them before (what it
leaves out is then placed by insertion until the deadline, the rest "not planned this time").
Orders served, drive hours, plan hours (with waiting), engine, solve seconds, reasons (JSON).

`insertion`: one new order among `--stops` open stops (`--drivers` drivers), travel times from
the fake OSRM server (its own process, --max-table-size 100) through the cache: HTTP requests
per insertion and latency (matrix update + cheapest insertion), p50 and max.

Prints tables and writes bench/results/odd-days.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from bench.common import free_port, write_json
from bench.dispatch import DAY_START, HOUR, SERVICE, city_points, drive_seconds, matrices
from core.routing.insert import cheapest_insertion
from core.routing.problem import Depot, Objective, Problem, Stop, Vehicle, Window
from core.routing.solve import solve
from core.routing.travel import Cached, Osrm

WHEN = datetime(2026, 11, 24, 8, tzinfo=UTC)


def city_day(seed: int, orders: int, drivers: int) -> Problem:
    rng = np.random.default_rng(seed)
    points = [*city_points(rng, 3, radius_km=8), *city_points(rng, orders)]
    durations, distances = asyncio.run(matrices(points))
    stops = []
    for i in range(orders):
        start, width = int(rng.uniform(8, 16)) * HOUR, int(rng.integers(1, 4)) * HOUR
        stops.append(Stop(f"k{i}", 3 + i, (Window(start, start + width),), SERVICE))
    return Problem(
        durations=durations,
        distances=distances,
        vehicles=tuple(
            Vehicle(f"v{k}", depot=f"d{k % 3}", shift=Window(DAY_START, 19 * HOUR))
            for k in range(drivers)
        ),
        stops=tuple(stops),
        depots=tuple(Depot(f"d{i}", i) for i in range(3)),
        objective=Objective(duration=1),
    )


def odd_versions(day: Problem, locks: int) -> dict[str, Problem]:
    def changed(changes: dict[str, dict]) -> Problem:
        stops = tuple(dataclasses.replace(s, **changes.get(s.id, {})) for s in day.stops)
        return dataclasses.replace(day, stops=stops)

    two = (Window(10 * HOUR, 11 * HOUR), Window(15 * HOUR, 16 * HOUR))
    vehicles = [v.id for v in day.vehicles]
    return {
        "one order, two windows": changed({"k0": {"windows": two}}),
        f"{locks} stops locked to {locks} drivers": changed(
            {f"k{i}": {"vehicles": frozenset({vehicles[i % len(vehicles)]})} for i in range(locks)}
        ),
    }


def run_day(args: argparse.Namespace) -> list[dict]:
    day = city_day(args.seed, args.orders, args.drivers)
    cases = [("plain day", day, None)]
    for name, problem in odd_versions(day, args.locks).items():
        cases += [(name, problem, None), (f"{name} (OR-Tools forced)", problem, "ortools")]
    rows = []
    for name, problem, engine in cases:
        started = time.perf_counter()
        plan = solve(problem, time_limit_s=args.time_limit, seed=1, engine=engine)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "case": name,
                "engine": plan.engine,
                "served": len(problem.stops) - len(plan.unassigned),
                "orders": len(problem.stops),
                "drive_hours": round(drive_seconds(problem, plan.sequences) / HOUR, 1),
                "plan_hours": round(plan.duration / HOUR, 1),
                "solve_s": round(seconds, 2),
                "reasons": sorted(set(plan.unassigned.values())),
            }
        )
    print(f"{'case':<52}{'engine':>8}{'served':>11}{'drive h':>9}{'plan h':>8}{'solve s':>9}")
    for row in rows:
        served = f"{row['served']}/{row['orders']}"
        print(f"{row['case']:<52}{row['engine']:>8}{served:>11}{row['drive_hours']:>9}"
              f"{row['plan_hours']:>8}{row['solve_s']:>9}")  # fmt: skip
    return rows


@contextlib.asynccontextmanager
async def fake_osrm() -> AsyncIterator[str]:
    """The fake OSRM server in its own process; yields its base URL."""
    port = free_port()
    command = ["-m", "uvicorn", "tests.fakes.osrm:create_fake_osrm", "--factory",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    process = await asyncio.create_subprocess_exec(sys.executable, *command)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):  # at most 10 s
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"{base}/table/v1/driving/13.4,52.5;13.41,52.51")
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the fake OSRM server did not start within 10 s")
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def run_insertion(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    drivers_at, stops_at = city_points(rng, args.drivers), city_points(rng, args.stops)
    new_at = city_points(rng, args.samples)
    known = [*drivers_at, *stops_at]
    asked: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        asked.append(request)

    async with (
        fake_osrm() as base,
        httpx.AsyncClient(timeout=60, event_hooks={"request": [count]}) as client,
    ):
        cache = Cached(Osrm(base, client))
        started = time.perf_counter()
        warm = await cache.matrix(known, known, WHEN)
        warm_s, warm_requests = time.perf_counter() - started, len(asked)
        vehicles = tuple(
            Vehicle(f"v{k}", start=k, open_end=True, shift=Window(DAY_START, 20 * HOUR))
            for k in range(args.drivers)
        )
        every = (Window(DAY_START, 20 * HOUR),)
        stops = tuple(Stop(f"s{i}", args.drivers + i, every, SERVICE) for i in range(args.stops))
        problem = Problem(warm.durations, warm.distances, vehicles, stops,
                          objective=Objective(duration=1))  # fmt: skip
        routes = solve(problem, time_limit_s=args.plan_time, seed=1).sequences
        timings, travel, requests = [], [], []
        for point in new_at:
            before = len(asked)
            started = time.perf_counter()
            points = [*known, point]
            matrix = await cache.matrix(points, points, WHEN)
            travel.append(1000 * (time.perf_counter() - started))
            grown = Problem(matrix.durations, matrix.distances, vehicles,
                            (*stops, Stop("new", len(known), every, SERVICE)),
                            objective=Objective(duration=1))  # fmt: skip
            result = cheapest_insertion(grown, routes, "new", locked=dict.fromkeys(routes, 1))
            timings.append(1000 * (time.perf_counter() - started))
            requests.append(len(asked) - before)
            assert result.vehicle is not None
    row = {
        "open_stops": args.stops,
        "drivers": args.drivers,
        "points": len(known) + 1,
        "warm_up_requests": warm_requests,
        "warm_up_s": round(warm_s, 2),
        "samples": len(timings),
        "requests_per_insertion": statistics.median(requests),
        "max_requests": max(requests),
        "p50_ms": round(statistics.median(timings), 1),
        "travel_p50_ms": round(statistics.median(travel), 1),
        "max_ms": round(max(timings), 1),
        "cache_mb": round(cache.nbytes / 2**20, 1),
    }
    print(f"{'stops':>7}{'points':>8}{'warm-up req':>13}{'req/insert':>12}"
          f"{'p50 ms':>9}{'travel p50':>12}{'max ms':>9}{'cache MB':>10}")  # fmt: skip
    print(f"{row['open_stops']:>7}{row['points']:>8}{row['warm_up_requests']:>13}"
          f"{row['requests_per_insertion']:>12}{row['p50_ms']:>9}{row['travel_p50_ms']:>12}"
          f"{row['max_ms']:>9}{row['cache_mb']:>10}")  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["all", "day", "insertion"], default="all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--drivers", type=int, default=50)
    parser.add_argument("--locks", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--stops", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--plan-time", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/odd-days.json"))
    args = parser.parse_args()
    params = {k: v for k, v in vars(args).items() if k not in ("json", "mode")}
    if args.mode in ("all", "day"):
        write_json(args.json, "day", params, {"rows": run_day(args)})
    if args.mode in ("all", "insertion"):
        write_json(args.json, "insertion", params, asyncio.run(run_insertion(args)))


if __name__ == "__main__":
    main()
