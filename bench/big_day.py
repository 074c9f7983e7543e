"""A big day on one planner: the product's `solve()` beside PyVRP used directly.

    python -m bench.big_day [--stops 5000] [--vehicles 200] [--seeds 1] [--limit 2]
                            [--iterations 0] [--repeat 2] [--budget 30] [--json PATH]

The day: 3 depots, `--vehicles` drivers (08:00–19:00, a third at each depot), `--stops`
deliveries in a 12 km city with 1–3 h windows between 08:00 and 19:00, 3 minutes each, travel
times by straight line at the 08:00 rush factor (as `bench.dispatch` builds its days).

Each run is its own child process (spawned), so its peak memory (ru_maxrss) is its own:

- `product`: points → the product's travel provider (`StraightLine`) → `Problem` → `solve()`,
  the whole call timed from before the matrix; the phases come from the plan (`Plan.phases`).
- `pyvrp`: points → a numpy matrix written the plain way → `pyvrp.ProblemData` → `pyvrp.solve`,
  what someone using PyVRP alone would write.

Both search with the same seed and the same stopping rule: `--limit` seconds (PyVRP's
`MaxRuntime`, which starts after its first solution; the product's limit is on its whole call)
or, with `--iterations N`, N iterations of the same search (then the difference in wall time is
the product's own overhead alone). The two alternate, never at the same time, `--repeat` times.
`--budget S` adds product runs whose whole call (matrix included) must end within S seconds.
Prints a table and writes JSON (default bench/results/big-day.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HOUR = 3600
DAY_START, DAY_END = 8 * HOUR, 19 * HOUR
SERVICE = 180
SPEED_KMH, DETOUR, RUSH_FACTOR = 25.0, 1.3, 1.35  # the 08:00 factor of bench.dispatch.RUSH
TARGET = 1.20  # the product may take at most 20 % more wall time and memory than PyVRP


def day_points(seed: int, stops: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latitudes, longitudes) of 3 depots then the stops, and each stop's window start."""
    rng = np.random.default_rng(seed)

    def city(n: int, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
        angles = rng.uniform(0, 2 * np.pi, n)
        radii = radius_km * np.sqrt(rng.uniform(0, 1, n))
        lat = 52.52 + radii * np.sin(angles) / 111.0
        lon = 13.405 + radii * np.cos(angles) / (111.0 * np.cos(np.radians(52.52)))
        return lat, lon

    depot_lat, depot_lon = city(3, 8)
    stop_lat, stop_lon = city(stops, 12)
    starts = rng.integers(8, 17, stops) * HOUR
    widths = rng.integers(1, 4, stops) * HOUR
    windows = np.stack([starts, np.minimum(starts + widths, DAY_END)], axis=1)
    return np.concatenate([depot_lat, stop_lat]), np.concatenate([depot_lon, stop_lon]), windows


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_s() -> float:
    """This process's CPU time: on a shared machine a fairer figure than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the product ----------------------------------------------------------------------------


def run_product(seed: int, stops: int, vehicles: int, limit: float, iterations: int) -> dict:
    from core.routing.check import evaluate
    from core.routing.problem import Depot, Objective, Problem, Stop, Vehicle, Window
    from core.routing.solve import solve
    from core.routing.travel import Point, StraightLine, TrafficProfile

    lat, lon, windows = day_points(seed, stops)
    baseline, cpu = peak_mb(), cpu_s()
    started = time.perf_counter()
    points = [Point(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]
    provider = StraightLine(SPEED_KMH, DETOUR, TrafficProfile.parse("7-9:1.35,16-19:1.45"))
    at_eight = datetime(2026, 11, 24, 8, tzinfo=UTC)
    matrix = asyncio.run(provider.matrix(points, points, at_eight))
    matrix_s = time.perf_counter() - started
    problem = Problem(
        durations=matrix.durations,
        distances=matrix.distances,
        vehicles=tuple(
            Vehicle(f"v{k}", depot=f"d{k % 3}", shift=Window(DAY_START, DAY_END))
            for k in range(vehicles)
        ),
        stops=tuple(
            Stop(f"s{i}", 3 + i, (Window(int(w[0]), int(w[1])),), SERVICE)
            for i, w in enumerate(windows)
        ),
        depots=tuple(Depot(f"d{i}", i) for i in range(3)),
        objective=Objective(duration=1),
    )
    del matrix
    problem_s = time.perf_counter() - started - matrix_s
    plan = solve(
        problem,
        time_limit_s=limit if not iterations else 3600,
        seed=1,
        max_iterations=iterations or None,
        started=started,
    )
    wall, cpu = time.perf_counter() - started, cpu_s() - cpu
    violations = evaluate(problem, plan.sequences, plan.unassigned)[1]
    phases = plan.phases
    assert phases is not None
    return {
        "who": "product",
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": peak_mb(),
        "before_mb": baseline,
        "matrix_s": matrix_s,
        "problem_s": problem_s,
        "prepare_s": phases.prepare,
        "engine_data_s": phases.engine_data,
        "first_plan_s": phases.first_plan,
        "first_feasible_s": phases.first_feasible,
        "search_s": phases.search,
        "search_limit_s": phases.search_limit,
        "check_s": phases.check,
        "budget_spent": phases.budget_spent,
        "cost": plan.cost,
        "feasible": not violations,
        "served": sum(len(route.visits) for route in plan.routes),
        "left_out": len(plan.unassigned),
        "routes": len(plan.routes),
    }


# -- PyVRP alone ----------------------------------------------------------------------------


class _Watch:
    """PyVRP's stopping rule, noting when the search began and first held a feasible plan."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.first: float | None = None
        self.feasible: float | None = None

    def __call__(self, best_cost: float) -> bool:
        now = time.perf_counter()
        self.first = self.first or now
        if self.feasible is None and best_cost < sys.maxsize:
            self.feasible = now
        return self.inner(best_cost)


def run_pyvrp(seed: int, stops: int, vehicles: int, limit: float, iterations: int) -> dict:
    import pyvrp
    from pyvrp.stop import MaxIterations, MaxRuntime

    lat, lon, windows = day_points(seed, stops)
    baseline, cpu = peak_mb(), cpu_s()
    started = time.perf_counter()
    p, lam = np.radians(lat), np.radians(lon)
    a = (
        np.sin((p[None, :] - p[:, None]) / 2) ** 2
        + np.cos(p)[:, None] * np.cos(p)[None, :] * np.sin((lam[None, :] - lam[:, None]) / 2) ** 2
    )
    metres = 2 * 6_371_008.8 * np.arcsin(np.sqrt(np.clip(a, 0, 1))) * DETOUR
    del a
    seconds = metres / (SPEED_KMH / 3.6) * RUSH_FACTOR
    distances = np.ceil(metres).astype(np.int64)
    durations = np.ceil(seconds).astype(np.int64)
    del metres, seconds
    matrix_s = time.perf_counter() - started
    per_depot = [len(range(d, vehicles, 3)) for d in range(3)]
    data = pyvrp.ProblemData(
        locations=[pyvrp.Location(0, 0) for _ in range(len(lat))],
        clients=[
            pyvrp.Client(3 + i, service_duration=SERVICE, tw_early=int(w[0]), tw_late=int(w[1]))
            for i, w in enumerate(windows)
        ],
        depots=[pyvrp.Depot(d) for d in range(3)],
        vehicle_types=[
            pyvrp.VehicleType(
                num_available=count,
                start_depot=d,
                end_depot=d,
                tw_early=DAY_START,
                tw_late=DAY_END,
                unit_distance_cost=0,
                unit_duration_cost=1,
            )
            for d, count in enumerate(per_depot)
        ],
        distance_matrices=[distances],
        duration_matrices=[durations],
    )
    data_s = time.perf_counter() - started - matrix_s
    watch = _Watch(MaxIterations(iterations) if iterations else MaxRuntime(limit))
    result = pyvrp.solve(data, stop=watch, seed=1, collect_stats=False, display=False)
    done = time.perf_counter()
    best = result.best
    assert watch.first is not None
    return {
        "who": "pyvrp",
        "wall_s": done - started,
        "cpu_s": cpu_s() - cpu,
        "peak_mb": peak_mb(),
        "before_mb": baseline,
        "matrix_s": matrix_s,
        "engine_data_s": data_s,
        "first_plan_s": watch.first - started,
        "first_feasible_s": None if watch.feasible is None else watch.feasible - started,
        "search_s": done - watch.first,
        "cost": int(best.duration()) if best.is_feasible() else None,
        "feasible": best.is_feasible(),
        "served": best.num_clients(),
        "left_out": stops - best.num_clients(),
        "routes": best.num_routes(),
    }


RUNNERS = {"product": run_product, "pyvrp": run_pyvrp}


def in_child(who: str, *args: Any) -> dict:
    """One run in a fresh spawned process: its ru_maxrss is this run's alone."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(RUNNERS[who], *args).result()


# -- report ---------------------------------------------------------------------------------

COLUMNS = [
    ("who", "run", "<10", None),
    ("wall_s", "wall s", ">8", ".2f"),
    ("cpu_s", "cpu s", ">8", ".2f"),
    ("peak_mb", "peak MB", ">9", ".0f"),
    ("matrix_s", "matrix", ">8", ".2f"),
    ("problem_s", "problem", ">8", ".2f"),
    ("prepare_s", "prepare", ">8", ".2f"),
    ("engine_data_s", "eng data", ">9", ".2f"),
    ("first_plan_s", "1st plan", ">9", ".2f"),
    ("first_feasible_s", "1st feas", ">9", ".2f"),
    ("search_s", "search", ">8", ".2f"),
    ("check_s", "check", ">7", ".2f"),
    ("cost", "cost", ">10", "d"),
    ("served", "served", ">7", "d"),
    ("feasible", "ok", ">4", None),
]


def cell(row: dict, key: str, align: str, fmt: str | None) -> str:
    value = row.get(key)
    text = "-" if value is None else (format(value, fmt) if fmt else str(value))
    return format(text, align)


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print("".join(format(head, align) for _, head, align, _ in COLUMNS))
    for row in rows:
        print("".join(cell(row, key, align, fmt) for key, _, align, fmt in COLUMNS))


def median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=5000)
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seeds", default="1", help="days to build, e.g. 1,2")
    parser.add_argument("--limit", type=float, default=2.0, help="search limit, seconds")
    parser.add_argument("--iterations", type=int, default=0, help="stop after N iterations")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--budget", type=float, default=0, help="whole-call budget runs, s")
    parser.add_argument("--json", type=Path, default=Path("bench/results/big-day.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rule = f"{args.iterations} iterations" if args.iterations else f"{args.limit:g} s limit"

    report: dict[str, Any] = {
        "day": {"stops": args.stops, "vehicles": args.vehicles, "seeds": seeds, "rule": rule},
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cores": multiprocessing.cpu_count(),
            "load_before": list(__import__("os").getloadavg()),
        },
        "days": [],
    }
    for seed in seeds:
        rows: list[dict] = []
        for _ in range(args.repeat):
            for who in ("pyvrp", "product"):  # alternately, never at the same time
                rows.append(in_child(who, seed, args.stops, args.vehicles, args.limit,
                                     args.iterations))  # fmt: skip
                print(f"  seed {seed} {who}: {rows[-1]['wall_s']:.2f} s", flush=True)
        print_rows(f"seed {seed}: {args.stops} stops, {args.vehicles} vehicles, {rule}", rows)
        pyvrp_rows = [r for r in rows if r["who"] == "pyvrp"]
        product_rows = [r for r in rows if r["who"] == "product"]
        ratios = {
            "wall": median(product_rows, "wall_s") / median(pyvrp_rows, "wall_s"),
            "cpu": median(product_rows, "cpu_s") / median(pyvrp_rows, "cpu_s"),
            "memory": median(product_rows, "peak_mb") / median(pyvrp_rows, "peak_mb"),
        }
        for name, ratio in ratios.items():
            verdict = "meets" if ratio <= TARGET else "MISSES"
            print(f"product / PyVRP {name} (medians): {ratio:.2f} ({verdict} the "
                  f"{TARGET:.2f} target)")  # fmt: skip
        budget_rows = []
        if args.budget:
            for _ in range(args.repeat):
                row = in_child("product", seed, args.stops, args.vehicles, args.budget, 0)
                row["within_budget"] = row["wall_s"] <= args.budget
                budget_rows.append(row)
            print_rows(f"seed {seed}: the product with a {args.budget:g} s budget", budget_rows)
            for row in budget_rows:
                print(f"whole call {row['wall_s']:.2f} s of {args.budget:g} s: "
                      f"{'within' if row['within_budget'] else 'OVER'} the budget")  # fmt: skip
        report["days"].append(
            {"seed": seed, "runs": rows, "ratios": ratios, "budget": args.budget,
             "budget_runs": budget_rows}
        )  # fmt: skip
    report["machine"]["load_after"] = list(__import__("os").getloadavg())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
