"""Churn: what a re-plan does to a dispatched day when orders arrive one by one.

    python -m bench.churn [--seeds 1 2 3] [--days 150x8 400x15] [--arrivals 20] [--time-limit 2]

A generated city day (`bench.odd_days.city_day`: 3 depots, drivers 08:00–19:00, orders with
1–3 h windows) is dispatched without its last `--arrivals` orders, planned before the drivers
leave (nothing done, nothing on board: every stop is free to move, the hardest case for
stickiness). Then the orders arrive one at a time and each is inserted at its cheapest place,
followed by
  (a) `full`: today's `/optimize`, a full re-solve of everything (PyVRP within the time limit,
      the plan in force kept when the re-solve is no better), or
  (b) `sticky`: the sticky re-plan (`core.routing.sticky`): stops keep their driver unless a
      move saves more than DISPATCH_MOVE_MIN_SAVING_MINUTES (default 10).
Per arrival, over the stops planned before it: how many changed driver, how many changed
position (their order among the stops their route had before), how many ETAs moved by more than
15 minutes, and how many messages drivers get (full: the per-order "new stop" / "taken off your
route" notices; sticky: one "route changed" message per driver whose stops or first stop
changed). Medians and means per day, and the final plan's drive hours, paid hours and cost.

Prints a table and writes bench/results/churn.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from bench.common import write_json
from bench.dispatch import HOUR, drive_seconds
from bench.odd_days import city_day
from core.routing.check import evaluate
from core.routing.insert import cheapest_insertion
from core.routing.problem import Problem
from core.routing.solve import solve
from core.routing.sticky import changes, sticky_plan

ETA_MOVED_S = 15 * 60


def arrivals_of(problem: Problem, sequences: dict[str, list[str]]) -> dict[str, int]:
    plan, _ = evaluate(problem, sequences)
    return {visit.stop: visit.arrival for route in plan.routes for visit in route.visits}


def churn(problem: Problem, before: dict[str, list[str]], after: dict[str, list[str]]) -> dict:
    owner = {s: v for v, stops in after.items() for s in stops}
    moved = repositioned = 0
    for vehicle, stops in before.items():
        kept = [s for s in after.get(vehicle, []) if s in stops]
        still = [s for s in stops if owner.get(s) == vehicle]
        moved += len(stops) - len(still)
        repositioned += sum(a != b for a, b in zip(still, kept, strict=True))
    old, new = arrivals_of(problem, before), arrivals_of(problem, after)
    eta_moved = sum(1 for s, t in old.items() if s in new and abs(new[s] - t) > ETA_MOVED_S)
    return {"changed_driver": moved, "changed_position": repositioned, "eta_moved": eta_moved}


def with_stops(problem: Problem, stop_ids: set[str]) -> Problem:
    return dataclasses.replace(problem, stops=tuple(s for s in problem.stops if s.id in stop_ids))


def run_day(seed: int, orders: int, drivers: int, arrivals: int, args) -> dict:
    day = city_day(seed, orders, drivers)
    ids = [s.id for s in day.stops]
    known = set(ids[: orders - arrivals])
    start = solve(with_stops(day, known), time_limit_s=args.time_limit * 5, seed=1)
    min_saving = round(args.min_saving_minutes * 60) * day.objective.duration
    plans = {"full": start.sequences, "sticky": start.sequences}
    steps: dict[str, list[dict]] = {"full": [], "sticky": []}
    for new in ids[orders - arrivals :]:
        known.add(new)
        problem = with_stops(day, known)
        for policy, before in plans.items():
            started = time.perf_counter()
            inserted = cheapest_insertion(problem, before, new)
            current = dict(before)
            if inserted.vehicle is not None:
                current[inserted.vehicle] = list(inserted.sequence)
            if policy == "full":
                after = solve(problem, time_limit_s=args.time_limit, seed=1, current=current)
                sequences = after.sequences
                placed = new not in after.unassigned
                told = 2 * churn(problem, before, sequences)["changed_driver"] + placed
            else:
                waiting = [] if inserted.vehicle is not None else [new]
                sticky = sticky_plan(problem, current, waiting=waiting, min_saving=min_saving)
                sequences = sticky.sequences
                placed = any(new in stops for stops in sequences.values())
                told = len(changes(before, sequences))
            seconds = time.perf_counter() - started
            step = churn(problem, before, sequences)
            steps[policy].append({**step, "messages": told, "placed": placed, "seconds": seconds})
            plans[policy] = {v: list(s) for v, s in sequences.items() if s}
    scratch = solve(with_stops(day, known), time_limit_s=args.time_limit * 5, seed=1)
    final = {}
    ends = {**plans, "start": start.sequences, "scratch": scratch.sequences}
    for policy, sequences in ends.items():
        stops = known if policy != "start" else {s for seq in sequences.values() for s in seq}
        plan, violations = evaluate(
            with_stops(day, stops), sequences, unassigned(day, stops, sequences)
        )
        assert not violations, violations[:3]
        final[policy] = {
            "drive_hours": drive_seconds(day, sequences) / HOUR,
            "paid_hours": plan.duration / HOUR,
            "km": plan.distance / 1000,
            "cost": plan.cost,
            "served": sum(len(s) for s in sequences.values()),
        }
    return {"seed": seed, "orders": orders, "drivers": drivers, "steps": steps, "final": final}


def unassigned(day: Problem, stops: set[str], sequences: dict[str, list[str]]) -> list[str]:
    routed = {s for seq in sequences.values() for s in seq}
    return [s for s in stops if s not in routed]


def summary(steps: list[dict], key: str) -> tuple[float, float]:
    values = [step[key] for step in steps]
    return statistics.median(values), statistics.mean(values)


def cell(steps: list[dict], key: str) -> str:
    median, mean = summary(steps, key)
    return f"{median:.0f} / {mean:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", nargs="+", default=["150x8", "400x15"])
    parser.add_argument("--arrivals", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--min-saving-minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/churn.json"))
    args = parser.parse_args()
    keys = ("changed_driver", "changed_position", "eta_moved", "messages")
    print(f"{'day':<8}{'seed':>5} {'policy':<8}"
          + "".join(f"{k.replace('_', ' ') + ' med/mean':>26}" for k in keys)
          + f"{'drive h':>9}{'paid h':>8}{'cost':>9}{'served':>7}{'s/step':>7}")  # fmt: skip
    days = []
    for size in args.days:
        orders, drivers = (int(x) for x in size.split("x"))
        for seed in args.seeds:
            result = run_day(seed, orders, drivers, args.arrivals, args)
            days.append(result)
            for policy, steps in result["steps"].items():
                cells = "".join(f"{cell(steps, k):>26}" for k in keys)
                final = result["final"][policy]
                per_step = statistics.mean(s["seconds"] for s in steps)
                print(f"{size:<8}{seed:>5} {policy:<8}{cells}{final['drive_hours']:>9.1f}"
                      f"{final['paid_hours']:>8.1f}{final['cost']:>9}{final['served']:>7}"
                      f"{per_step:>7.2f}")  # fmt: skip
            for name, label in (("start", "before the arrivals"), ("scratch", "all orders known")):
                final = result["final"][name]
                numbers = f"{final['drive_hours']:>9.1f}{final['paid_hours']:>8.1f}"
                print(f"{size:<8}{seed:>5} {name:<8}{label:>104}{numbers}"
                      f"{final['cost']:>9}{final['served']:>7}")  # fmt: skip
    overall = {
        policy: {
            key: dict(zip(("median", "mean"), summary(
                [s for day in days for s in day["steps"][policy]], key), strict=True))
            for key in keys
        }
        for policy in ("full", "sticky")
    }  # fmt: skip
    for policy, row in overall.items():
        text = ", ".join(
            f"{k} median {v['median']:.1f} mean {v['mean']:.1f}" for k, v in row.items()
        )
        print(f"all days, {policy}: {text}")
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.json, "churn", params, {"overall": overall, "days": days})


if __name__ == "__main__":
    main()
