"""`solve()`: pick the engine, solve, re-check, and never hand out an infeasible plan.

1. Stops no vehicle could serve even alone are set aside first, each with the reason.
2. The engine (PyVRP unless the problem has pairs and max stops: then OR-Tools) proposes
   sequences. The few stops PyVRP cannot model (`odd_stops`: several windows on a pickup or
   delivery, restrictions past its budgets) are left out of its model, so an odd stop never
   changes the engine for the whole day.
3. Our checker schedules and checks them. If anything is broken, the offending stop (and its
   pickup/delivery partner) is taken out with the checker's reason, until the plan is clean.
4. Every stop not routed yet (odd ones included) is placed by insertion where it fits, nothing
   else moving: the day serves at least what it serves without the odd stops. What is still
   left out is "full" (then true), "not worth it" for an optional stop, or "not planned this
   time" past the deadline.

The time limit is on the whole call (from `started`, which a caller may set to before it
fetched the matrix): the engine gets what is left after preparing, less a little kept for the
checker and placing (`RESERVE_PER_STOP_S`); the plan reports where the time went
(`Plan.phases`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Executor

from core.routing.check import InfeasiblePlan, Violation, evaluate, simulate
from core.routing.cost import in_engine_units
from core.routing.engines import ortools as ortools_engine
from core.routing.engines import pyvrp as pyvrp_engine
from core.routing.place import place
from core.routing.plan import Phases, Plan
from core.routing.problem import Problem, Stop
from core.routing.timing import for_engine
from core.texts import t

log = logging.getLogger(__name__)

Engine = Callable[..., dict[str, list[str]]]
ENGINES: dict[str, Engine] = {
    pyvrp_engine.NAME: pyvrp_engine.run,
    ortools_engine.NAME: ortools_engine.run,
}
RESERVE_PER_STOP_S = 0.0002  # kept after the engine for checking and placing, per stop
RESERVE_S = (0.05, 5.0)  # ... but at least and at most this long (and at most a tenth)
PLACING_S = 2.0  # a budget shorter than this still leaves this long to place stops


def choose_engine(problem: Problem) -> str:
    return pyvrp_engine.NAME if pyvrp_engine.models_pairs(problem) else ortools_engine.NAME


def solve(
    problem: Problem,
    *,
    time_limit_s: float = 2.0,
    seed: int = 0,
    engine: str | None = None,
    max_iterations: int | None = None,
    current: dict[str, list[str]] | None = None,
    timing: str = "window",
    started: float | None = None,
) -> Plan:
    """The best plan found within the time limit; always feasible by our checker.

    `time_limit_s` bounds the whole call, counted from `started` (a `time.perf_counter()`
    reading; default: now). Past it, the search stops with the best plan so far and stops not
    placed yet are left out as "not planned this time"; only PyVRP's first plan (its
    construction) cannot be cut short, and a budget under `PLACING_S` still leaves that long
    to place the stops the engine left out.
    `current`: the plan in force (vehicle -> stops). A re-plan never returns something worse:
    if the current plan is feasible and serves more stops, or as many for less, it stays.
    `timing`: how the engine is told about traffic and breaks (`timing.py`); the plan is
    re-timed per leg by the checker either way."""
    entered = time.perf_counter()
    started = entered if started is None else started
    deadline = started + time_limit_s
    impossible = {stop.id: reason for stop in problem.stops if (reason := why_alone(problem, stop))}
    for stop_id in list(impossible):
        if (partner := problem.partner.get(stop_id)) and partner not in impossible:
            impossible[partner] = t("routing.reason.partner", stop=stop_id)
    rest = without(problem, impossible)
    name = engine or choose_engine(rest)
    odd = pyvrp_engine.odd_stops(rest) if name == pyvrp_engine.NAME else frozenset()
    view = in_engine_units(for_engine(without(rest, odd), timing))
    ready = time.perf_counter()
    reserve = min(max(RESERVE_PER_STOP_S * len(problem.stops), RESERVE_S[0]), RESERVE_S[1])
    reserve = min(reserve, time_limit_s / 10)
    share = max(0.0, deadline - ready - reserve)
    report: dict[str, float] = {}
    sequences = ENGINES[name](
        view, time_limit_s=share, seed=seed, max_iterations=max_iterations, report=report
    )
    del view, rest
    searched = time.perf_counter()
    placing = max(deadline, started + PLACING_S)
    plan = _fill(problem, repair(problem, sequences, dict(impossible), name), impossible, placing)
    if current and (kept := _better(problem, plan, current)) is not plan:
        plan = _fill(problem, kept, impossible, placing)
    ended = time.perf_counter()
    phases = Phases(
        budget=time_limit_s,
        prepare=ready - entered,
        engine_data=report.get("engine_data", 0.0),
        first_plan=report["first_plan"] - started if "first_plan" in report else None,
        first_feasible=(report["first_feasible"] - started if "first_feasible" in report else None),
        search=report.get("search", 0.0),
        search_limit=share,
        check=ended - searched,
        total=ended - started,
        budget_spent=bool(report.get("budget_spent")),
    )
    plan = dataclasses.replace(plan, phases=phases)
    log.debug(
        "solved %d stops on %d vehicles with %s (%d outside its model) in %.2fs: cost %d, "
        "%d left out",
        len(problem.stops),
        len(problem.vehicles),
        name,
        len(odd),
        phases.total,
        plan.cost,
        len(plan.unassigned),
    )
    return plan


async def solve_async(
    problem: Problem, *, executor: Executor | None = None, **options: object
) -> Plan:
    """`solve()` off the event loop (a thread by default; pass a process pool to isolate it)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, lambda: solve(problem, **options))  # type: ignore[arg-type]


def _better(problem: Problem, plan: Plan, current: dict[str, list[str]]) -> Plan:
    known = problem.stop_by_id
    kept = {v: [s for s in stops if s in known] for v, stops in current.items()}
    routed = {s for stops in kept.values() for s in stops}
    reasons = {s.id: plan.unassigned.get(s.id, "") for s in problem.stops if s.id not in routed}
    before, violations = evaluate(problem, kept, reasons, engine="current")
    if violations:
        return plan
    kept_rank = (left_out_weight(problem, before), before.cost)
    if kept_rank < (left_out_weight(problem, plan), plan.cost):
        log.info("the current plan beats the re-plan (%d vs %d left out)",
                 len(before.unassigned), len(plan.unassigned))  # fmt: skip
        return before
    return plan


def _fill(problem: Problem, plan: Plan, impossible: dict[str, str], deadline: float) -> Plan:
    """The plan with each stop it leaves out (odd ones too) placed where it fits; the others
    with a true reason."""
    routed = {stop for route in plan.routes for stop in route.stops}
    left_out = [s.id for s in problem.stops if s.id not in routed and s.id not in impossible]
    if not left_out:
        return plan
    sequences, reasons = place(problem, plan.sequences, left_out, deadline=deadline)
    return repair(problem, sequences, {**impossible, **reasons}, plan.engine)


def left_out_weight(problem: Problem, plan: Plan) -> int:
    """How bad the left-out stops are: each counts 1 + its priority."""
    return sum(1 + problem.stop_by_id[s].priority for s in plan.unassigned)


def repair(
    problem: Problem, sequences: dict[str, list[str]], left_out: dict[str, str], engine: str
) -> Plan:
    """Take out offending stops until the checker finds nothing; every plan passes here."""
    sequences = {vehicle: list(stops) for vehicle, stops in sequences.items()}
    for _ in range(len(problem.stops) + 1):
        plan, violations = evaluate(problem, sequences, left_out, engine=engine)
        if not violations:
            return plan
        log.warning("%s plan broke %d rule(s), first: %s", engine, len(violations), violations[0])
        for culprit, reason in _culprits(problem, violations, sequences):
            for stops in sequences.values():
                if culprit in stops:
                    stops.remove(culprit)
            left_out[culprit] = reason
    raise InfeasiblePlan(violations)


def _culprits(
    problem: Problem, violations: list[Violation], sequences: dict[str, list[str]]
) -> list[tuple[str, str]]:
    violation = violations[0]
    stop = violation.stop
    if stop is None and violation.vehicle in sequences and sequences[violation.vehicle]:
        stop = sequences[violation.vehicle][-1]
    if stop is None:
        raise InfeasiblePlan(violations)
    out = [(stop, violation.message)]
    if partner := problem.partner.get(stop):
        out.append((partner, t("routing.reason.partner", stop=stop)))
    return out


def without(problem: Problem, stop_ids: Mapping[str, str] | AbstractSet[str]) -> Problem:
    if not stop_ids:
        return problem
    return dataclasses.replace(
        problem,
        stops=tuple(s for s in problem.stops if s.id not in stop_ids),
        pairs=tuple(p for p in problem.pairs if p.pickup not in stop_ids),
    )


def why_alone(problem: Problem, stop: Stop) -> str | None:
    """Why no vehicle could serve this stop even if it had nothing else to do, or None."""
    if not problem.vehicles:
        return t("routing.reason.no_vehicles")
    able = problem.able(stop)
    if not able:
        if stop.vehicles is not None and not any(v.id in stop.vehicles for v in problem.vehicles):
            return t("routing.reason.locked_away")
        if stop.vehicles is None:
            return t("routing.reason.skills", skills=", ".join(sorted(stop.skills)))
        return t("routing.reason.no_compatible")
    partner = problem.partner.get(stop.id)
    alone = [stop.id] if partner is None else _pair_order(problem, stop.id, partner)
    load = problem.load(stop)
    big_enough = [
        v
        for v in able
        if not v.capacity or all(a <= c for a, c in zip(load, v.capacity, strict=True))
    ]
    if not big_enough:
        return t("routing.reason.too_big")
    if all(simulate(problem, v, alone)[1] for v in big_enough):
        return t("routing.reason.unreachable")
    return None


def _pair_order(problem: Problem, stop_id: str, partner: str) -> list[str]:
    return [stop_id, partner] if stop_id in problem.pickups else [partner, stop_id]
