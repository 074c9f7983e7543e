"""Route quality against best-known solutions, with OR-Tools alone and VROOM side by side.

    python -m bench.routing solomon [--times 2,10] [--engines lastmile,ortools,vroom]
    python -m bench.routing gh200 [--times 30] [--limit 12]
    python -m bench.routing pd [--times 2,10] [--instances 10]

Every plan, whoever made it, is scheduled and checked by Lastmile's own checker; an engine's
distance counts only when the checker finds nothing wrong. One thread each. Prints a table per
suite and writes JSON (default bench/results/routing-<suite>.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.instances import SCALE, Instance, load, read_bks
from core.routing.check import evaluate
from core.routing.problem import Depot, Objective, Pair, Problem, Stop, Vehicle, Window
from core.routing.solve import solve

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "vrp"


@dataclass
class Result:
    instance: str
    engine: str
    time_limit_s: float
    seconds: float
    distance: float | None  # unscaled; None when infeasible or incomplete
    vehicles: int
    feasible: bool
    unassigned: int
    gap_pct: float | None


def run_lastmile(problem: Problem, limit: float, engine: str | None) -> dict[str, list[str]]:
    plan = solve(problem, time_limit_s=limit, seed=1, engine=engine)
    return plan.sequences


def run_vroom(problem: Problem, limit: float) -> dict[str, list[str]]:
    import vroom

    inp = vroom.Input()
    inp.set_durations_matrix("car", problem.durations)
    inp.set_costs_matrix("car", problem.distances)
    depot = problem.depots[0]
    for k, vehicle in enumerate(problem.vehicles):
        shift = problem.shift(vehicle)
        inp.add_vehicle(
            vroom.Vehicle(
                k,
                start=depot.location,
                end=depot.location,
                capacity=list(vehicle.capacity),
                time_window=vroom.TimeWindow(shift.start, shift.end),
            )
        )
    for j, stop in enumerate(problem.stops):
        window = problem.windows(stop)[0]
        inp.add_job(
            vroom.Job(
                j,
                location=stop.location,
                delivery=list(problem.load(stop)),
                default_service=stop.service,
                time_windows=[vroom.TimeWindow(window.start, window.end)],
            )
        )
    solution = inp.solve(exploration_level=5, nb_threads=1)
    routes = solution.routes
    jobs = routes[routes["type"] == "job"]
    sequences: dict[str, list[str]] = {}
    for k, group in jobs.groupby("vehicle_id", sort=True):
        sequences[problem.vehicles[int(k)].id] = [problem.stops[int(j)].id for j in group["id"]]
    return sequences


def measure(
    instance: Instance, engine: str, limit: float, reference: float | None = None
) -> Result:
    problem = instance.problem
    runners: dict[str, Callable[[], dict[str, list[str]]]] = {
        "lastmile": lambda: run_lastmile(problem, limit, None),
        "ortools": lambda: run_lastmile(problem, limit, "ortools"),
        "vroom": lambda: run_vroom(problem, limit),
    }
    started = time.perf_counter()
    sequences = runners[engine]()
    seconds = time.perf_counter() - started
    plan, violations = evaluate(problem, sequences)
    complete = not plan.unassigned
    feasible = not violations and complete
    distance = plan.distance / SCALE if feasible else None
    best = reference if reference is not None else instance.bks
    gap = 100 * (distance - best) / best if distance is not None and best else None
    return Result(
        instance.name, engine, limit, seconds, distance, len(plan.routes), feasible,
        len(plan.unassigned), gap,
    )  # fmt: skip


def summarize(results: list[Result]) -> list[dict[str, object]]:
    rows = []
    keys = sorted({(r.engine, r.time_limit_s) for r in results}, key=lambda k: (k[1], k[0]))
    for engine, limit in keys:
        group = [r for r in results if r.engine == engine and r.time_limit_s == limit]
        gaps = [r.gap_pct for r in group if r.gap_pct is not None]
        rows.append(
            {
                "engine": engine,
                "time_limit_s": limit,
                "instances": len(group),
                "feasible": sum(r.feasible for r in group),
                "mean_gap_pct": statistics.fmean(gaps) if gaps else None,
                "max_gap_pct": max(gaps) if gaps else None,
                "mean_vehicles": statistics.fmean(r.vehicles for r in group),
                "mean_seconds": statistics.fmean(r.seconds for r in group),
            }
        )
    return rows


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    header = f"{'engine':<10}{'limit s':>8}{'n':>5}{'feasible':>10}{'mean gap %':>12}"
    print(header + f"{'max gap %':>11}{'vehicles':>10}{'seconds':>9}")
    for row in rows:
        mean = row["mean_gap_pct"]
        worst = row["max_gap_pct"]
        print(
            f"{row['engine']:<10}{row['time_limit_s']:>8g}{row['instances']:>5}"
            f"{row['feasible']:>10}{'-' if mean is None else f'{mean:.2f}':>12}"
            f"{'-' if worst is None else f'{worst:.2f}':>11}"
            f"{row['mean_vehicles']:>10.1f}{row['mean_seconds']:>9.2f}"
        )


def pickup_delivery_instance(seed: int, pairs: int = 40, vehicles: int = 8) -> Instance:
    """A generated city: paired stops (restaurant → customer) with windows and capacity."""
    rng = np.random.default_rng(seed)
    coords = np.vstack([[50, 50], rng.uniform(0, 100, size=(2 * pairs, 2))])
    diff = coords[:, None, :] - coords[None, :, :]
    matrix = np.floor(np.sqrt((diff**2).sum(-1)) * SCALE).astype(np.int64)
    stops, pair_list = [], []
    for k in range(pairs):
        ready = int(rng.uniform(0, 3000))
        amount = (int(rng.integers(1, 4)),)
        stops.append(
            Stop(f"p{k}", 1 + 2 * k, windows=(Window(ready, ready + 1500),), service=100,
                 demand=amount)
        )  # fmt: skip
        stops.append(
            Stop(f"d{k}", 2 + 2 * k, windows=(Window(ready, ready + 4000),), service=100,
                 demand=amount)
        )  # fmt: skip
        pair_list.append(Pair(f"p{k}", f"d{k}"))
    problem = Problem(
        durations=matrix,
        distances=matrix,
        vehicles=tuple(Vehicle(f"v{i}", depot="hub", capacity=(6,)) for i in range(vehicles)),
        stops=tuple(stops),
        depots=(Depot("hub", 0, Window(0, 10_000)),),
        pairs=tuple(pair_list),
        dimensions=("parcels",),
        objective=Objective(distance=1, duration=0),
    )
    return Instance(f"pd{seed}", problem, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["solomon", "gh200", "pd"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--times", default=None, help="time limits in seconds, e.g. 2,10")
    parser.add_argument("--engines", default="lastmile,ortools,vroom")
    parser.add_argument("--limit", type=int, default=None, help="only the first N instances")
    parser.add_argument("--instances", type=int, default=10, help="generated pd instances")
    parser.add_argument("--reference", type=float, default=60.0, help="pd: reference run, s")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    engines = args.engines.split(",")
    default_times = {"solomon": "2,10", "gh200": "30", "pd": "2,10"}[args.suite]
    times = [float(x) for x in (args.times or default_times).split(",")]

    results: list[Result] = []
    if args.suite in ("solomon", "gh200"):
        folder = args.data / ("solomon/vrplib" if args.suite == "solomon" else "gh200")
        bks = read_bks(args.data / "bks.csv")
        paths = sorted(folder.glob("*.vrp"))[: args.limit]
        for path in paths:
            instance = load(path, bks)
            for limit in times:
                for engine in engines:
                    if engine == "vroom" and limit != times[-1]:
                        continue  # VROOM has no time budget: run it once
                    result = measure(instance, engine, limit)
                    results.append(result)
                    gap = "-" if result.gap_pct is None else f"{result.gap_pct:.2f}%"
                    print(f"{instance.name:<10}{engine:<10}{limit:>5g}s  gap {gap}", flush=True)
    else:
        engines = [e for e in engines if e != "vroom"]  # pyvroom shipments: not wired here
        for seed in range(args.instances):
            instance = pickup_delivery_instance(seed)
            long = measure(instance, "lastmile", args.reference)  # the reference: a long run
            assert long.distance is not None, "the reference run must be feasible"
            for limit in times:
                for engine in engines:
                    result = measure(instance, engine, limit, reference=long.distance)
                    results.append(result)
                    gap = "-" if result.gap_pct is None else f"{result.gap_pct:.2f}%"
                    print(f"{instance.name:<10}{engine:<10}{limit:>5g}s  gap {gap}", flush=True)

    rows = summarize(results)
    print_table(f"{args.suite}: gap to best known (every plan re-checked by Lastmile)", rows)
    out = args.json or Path(f"bench/results/routing-{args.suite}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cores": 2}
    report = {
        "suite": args.suite,
        "machine": machine,
        "summary": rows,
        "results": [r.__dict__ for r in results],
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
