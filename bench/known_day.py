"""The plan of a known day: the product's plan against PyVRP with a distance objective, PyVRP
with a duration objective, and VROOM, all re-driven by our checker with each leg at the traffic
of its hour (the product's rush-hour profile) and drivers' breaks.

    python -m bench.known_day [--days 400x15:1,2,3 150x8:1,2,3 1000x50:1] [--limits 2 10]
                              [--curve 400x15:1] [--json bench/results/known-day.json]

A day is bench/dispatch.py's generated city (3 depots, drivers 08:00–19:00, 1–3 h windows,
3/8 of the orders pickup→delivery jobs), every order known in the morning. Free-flow times
come from straight lines at 25 km/h × 1.3; the profile is 7-9:1.35, 16-19:1.45 (local hours,
the problem's epoch is midnight); breaks: 30 min after 4.5 h of work; cost 20/h paid time,
0.30/km. Contenders, each at every time limit:

- `lastmile` (and `lastmile-peak`): `solve()` with the cost objective; the engine is told
  about time by `timing.py` (`window`, the default; `peak`); the plan is re-timed, repaired
  and filled by the checker.
- `pyvrp-distance`, `pyvrp-duration`: PyVRP alone (our model of the day, the engine's view of
  time, which `lastmile` also gives it), objective distance or duration, no repair.
- `vroom`: VROOM 1.15 (pyvroom) with the same view of time, costs 20/h of travel, 0.30/km.

Every plan is checked per leg: on-time % of the stops it serves, stops served, vans, paid hours
(departure to return, waits and breaks included), drive hours, km, cost. `--curve` re-plans
a day with the cost per km varied (20/h) and prints paid hours against drive time.

With rush hours and breaks, 15 drivers cannot serve the 400-order day (550 stops) nor 8 the
150-order one: every contender leaves stops out, so the verdict also compares per stop served.
`--days 400x22:1,2,3 150x11:1,2,3 --curve 400x22:1` gives fleets that can serve (nearly) all.
PyVRP runs twice on a day it cannot serve whole (required stops first, then optional), so its
run time is up to twice the limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import timedelta
from pathlib import Path

from bench.dispatch import HOUR, RUSH, build_day
from core.geo.traffic import parse_factors
from core.routing import cost
from core.routing.check import evaluate
from core.routing.engines import pyvrp as pyvrp_engine
from core.routing.plan import Plan
from core.routing.problem import Breaks, Objective, Problem, Traffic
from core.routing.solve import solve
from core.routing.timing import for_engine

PER_HOUR, PER_KM = 20.0, 0.30
BREAKS = Breaks(after=int(4.5 * HOUR), length=30 * 60)
CURVE_KM = (0.0, 0.1, 0.3, 0.6, 1.0, 2.0)


def known_day(seed: int, orders: int, drivers: int) -> Problem:
    """The generated day with free-flow times, the rush-hour profile, breaks and the cost
    objective; vans start at their depot (leaving as late as useful)."""
    day, _ = build_day(seed, orders, drivers, traffic="")
    vehicles = tuple(dataclasses.replace(v, start=None) for v in day.vehicles)
    return dataclasses.replace(
        day,
        vehicles=vehicles,
        traffic=Traffic.of(parse_factors(RUSH)),
        breaks=BREAKS,
        objective=cost.objective(PER_HOUR, PER_KM),
    )


def run_pyvrp(problem: Problem, limit: float, objective: Objective) -> dict[str, list[str]]:
    view = dataclasses.replace(for_engine(problem), objective=objective)
    return pyvrp_engine.run(view, time_limit_s=limit, seed=1)


def run_vroom(problem: Problem, limit: float) -> dict[str, list[str]]:
    import vroom

    view = for_engine(problem)
    inp = vroom.Input()
    inp.set_durations_matrix("car", view.durations)
    inp.set_distances_matrix("car", view.distances)
    costs = vroom.VehicleCosts(per_hour=round(PER_HOUR * 100), per_km=round(PER_KM * 100))
    for k, vehicle in enumerate(view.vehicles):
        shift = view.shift(vehicle)
        depot = view.depot_by_id[vehicle.depot].location  # type: ignore[index]
        inp.add_vehicle(
            vroom.Vehicle(
                k,
                start=depot,
                end=depot,
                costs=costs,
                time_window=vroom.TimeWindow(shift.start, shift.end),
            )
        )
    index = {stop.id: i for i, stop in enumerate(view.stops)}

    def windows(stop):
        return [vroom.TimeWindow(w.start, w.end) for w in view.windows(stop)]

    for stop in view.stops:
        if stop.id not in view.partner:
            inp.add_job(
                vroom.Job(
                    index[stop.id],
                    location=stop.location,
                    default_service=stop.service,
                    time_windows=windows(stop),
                )
            )
    for pair in view.pairs:
        pickup, delivery = view.stop_by_id[pair.pickup], view.stop_by_id[pair.delivery]
        steps = [
            vroom.ShipmentStep(
                index[s.id], location=s.location, default_service=s.service, time_windows=windows(s)
            )
            for s in (pickup, delivery)
        ]
        inp.add_shipment(*steps)
    solution = inp.solve(exploration_level=5, nb_threads=1, timeout=timedelta(seconds=limit))
    routes = solution.routes
    tasks = routes[routes["type"].isin(["job", "pickup", "delivery"])]
    sequences: dict[str, list[str]] = {}
    for k, group in tasks.groupby("vehicle_id", sort=True):
        sequences[view.vehicles[int(k)].id] = [view.stops[int(j)].id for j in group["id"]]
    return sequences


def measure(problem: Problem, name: str, plan: Plan | None, sequences, seconds: float) -> dict:
    """Re-drive the plan per leg with our checker and report its figures."""
    sequences = plan.sequences if plan is not None else sequences
    checked, violations = evaluate(problem, sequences)
    late = {v.stop for v in violations if v.kind in ("time_window", "shift_end") and v.stop}
    served = sum(len(r.visits) for r in checked.routes)
    total, _ = cost.figures(checked, problem.objective)
    return {
        "contender": name,
        "on_time_pct": 100 * (served - len(late)) / served if served else 100.0,
        "served": served,
        "stops": len(problem.stops),
        "vans": total.vans,
        "paid_h": total.paid_hours,
        "drive_h": total.drive_hours,
        "km": total.km,
        "cost": total.cost,
        "breaks": sum(len(r.breaks) for r in checked.routes),
        "violations": len(violations),
        "seconds": seconds,
    }


def contenders(problem: Problem, limit: float) -> list[dict]:
    rows = []
    for name, timing in (("lastmile", "window"), ("lastmile-peak", "peak")):
        started = time.perf_counter()
        plan = solve(problem, time_limit_s=limit, seed=1, timing=timing)
        rows.append(measure(problem, name, plan, None, time.perf_counter() - started))
    for name, objective in (
        ("pyvrp-distance", Objective(distance=1, duration=0)),
        ("pyvrp-duration", Objective(duration=1)),
    ):
        started = time.perf_counter()
        sequences = run_pyvrp(problem, limit, objective)
        rows.append(measure(problem, name, None, sequences, time.perf_counter() - started))
    started = time.perf_counter()
    sequences = run_vroom(problem, limit)
    rows.append(measure(problem, "vroom", None, sequences, time.perf_counter() - started))
    return rows


def verdict(rows: list[dict]) -> dict:
    """The targets, for the product's plan against the others on one day and limit. Plans
    that serve different numbers of stops are also compared per stop served."""
    ours = next(r for r in rows if r["contender"] == "lastmile")
    by = {r["contender"]: r for r in rows}
    others = [r for r in rows if r["contender"] != "lastmile"]

    def per_stop(row: dict, key: str) -> float:
        return row[key] / max(1, row["served"])

    def versus(key: str, other: str) -> float:
        return 100 * (per_stop(ours, key) / per_stop(by[other], key) - 1)

    return {
        "on_time_100": ours["on_time_pct"] == 100.0,
        "served_most": all(ours["served"] >= r["served"] for r in others),
        "paid_vs_duration_pct": 100 * (ours["paid_h"] / by["pyvrp-duration"]["paid_h"] - 1),
        "drive_vs_distance_pct": 100 * (ours["drive_h"] / by["pyvrp-distance"]["drive_h"] - 1),
        "paid_per_stop_vs_duration_pct": versus("paid_h", "pyvrp-duration"),
        "drive_per_stop_vs_distance_pct": versus("drive_h", "pyvrp-distance"),
        "lowest_cost": all(
            ours["cost"] <= r["cost"] for r in others if r["served"] >= ours["served"]
        ),
        "lowest_cost_per_stop": all(per_stop(ours, "cost") <= per_stop(r, "cost") for r in others),
    }


def curve(problem: Problem, limit: float) -> list[dict]:
    rows = []
    for per_km in CURVE_KM:
        weighted = dataclasses.replace(problem, objective=cost.objective(PER_HOUR, per_km))
        started = time.perf_counter()
        plan = solve(weighted, time_limit_s=limit, seed=1)
        row = measure(
            problem, f"{PER_HOUR:g}/h {per_km:g}/km", plan, None, time.perf_counter() - started
        )
        rows.append({**row, "per_km": per_km})
    return rows


HEAD = (
    f"{'day':<12}{'limit':>6} {'contender':<16}{'on time':>8}{'served':>7}{'vans':>5}"
    f"{'paid h':>8}{'drive h':>8}{'km':>8}{'cost':>9}{'run s':>7}"
)


def line(day: str, limit: float, row: dict) -> str:
    return (
        f"{day:<12}{limit:>6g} {row['contender']:<16}{row['on_time_pct']:>7.1f}%"
        f"{row['served']:>4}/{row['stops']:<3}{row['vans']:>4}{row['paid_h']:>8.1f}"
        f"{row['drive_h']:>8.1f}{row['km']:>8.0f}{row['cost']:>9.0f}{row['seconds']:>7.1f}"
    )


def parse_days(specs: list[str]) -> list[tuple[int, int, int]]:
    out = []
    for spec in specs:
        size, _, seeds = spec.partition(":")
        orders, drivers = (int(x) for x in size.split("x"))
        out += [(orders, drivers, int(s)) for s in (seeds or "1").split(",")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", nargs="+", default=["400x15:1,2,3", "150x8:1,2,3", "1000x50:1"])
    parser.add_argument("--limits", nargs="+", type=float, default=[2.0, 10.0])
    parser.add_argument("--curve", nargs="*", default=["400x15:1"])
    parser.add_argument("--curve-limit", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/known-day.json"))
    args = parser.parse_args()
    results, verdicts, curves = [], [], []
    print(HEAD)
    for orders, drivers, seed in parse_days(args.days):
        problem = known_day(seed, orders, drivers)
        day = f"{orders}/{drivers} s{seed}"
        for limit in args.limits:
            rows = contenders(problem, limit)
            for row in rows:
                print(line(day, limit, row), flush=True)
                results.append(
                    {"orders": orders, "drivers": drivers, "seed": seed, "limit_s": limit, **row}
                )
            v = verdict(rows)
            verdicts.append(
                {"orders": orders, "drivers": drivers, "seed": seed, "limit_s": limit, **v}
            )
            print(
                f"{'':<19}→ on time 100 %: {v['on_time_100']}; serves most: "
                f"{v['served_most']}; paid h vs duration objective "
                f"{v['paid_vs_duration_pct']:+.1f} % ({v['paid_per_stop_vs_duration_pct']:+.1f}"
                f" % per stop); drive h vs distance objective "
                f"{v['drive_vs_distance_pct']:+.1f} % ({v['drive_per_stop_vs_distance_pct']:+.1f}"
                f" % per stop); lowest cost: {v['lowest_cost']} (per stop: "
                f"{v['lowest_cost_per_stop']})",
                flush=True,
            )
    for orders, drivers, seed in parse_days(args.curve):
        problem = known_day(seed, orders, drivers)
        day = f"{orders}/{drivers} s{seed}"
        print(f"\ntrade-off on {day} at {args.curve_limit:g} s (20/h; the default is 0.3/km):")
        print(HEAD)
        for row in curve(problem, args.curve_limit):
            print(line(day, args.curve_limit, row), flush=True)
            curves.append({"orders": orders, "drivers": drivers, "seed": seed, **row})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cores": 2}
    args.json.write_text(
        json.dumps(
            {
                "machine": machine,
                "days": args.days,
                "limits": args.limits,
                "results": results,
                "verdicts": verdicts,
                "curve": curves,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
