"""OR-Tools routing: the engine for what PyVRP cannot express (stops allowed only on some
vehicles, several windows per stop, pairs together with max stops).

Every stop sits in a penalty disjunction, so a solution always exists: a stop that cannot be
served is dropped (and reported), never forced in. The first solution comes from parallel
cheapest insertion (cheapest-arc finds nothing on tight windows), then guided local search.
"""

from __future__ import annotations

import itertools
import time as clock
from collections.abc import MutableMapping

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from core.routing.problem import Problem

NAME = "ortools"


def run(
    problem: Problem,
    *,
    time_limit_s: float,
    seed: int,
    max_iterations: int | None = None,
    report: MutableMapping[str, float] | None = None,
) -> dict[str, list[str]]:
    """Best sequences per vehicle id; `time_limit_s` bounds the model and the search.
    `report` receives how long the model took and the search."""
    del seed  # OR-Tools' local search is deterministic for a given model
    building = clock.perf_counter()
    if not problem.vehicles or not problem.stops:
        return {}
    stops = list(problem.stops)
    vehicles = list(problem.vehicles)
    nodes = [stop.location for stop in stops]  # node i < len(stops) is stop i
    starts, ends = [], []
    for vehicle in vehicles:
        starts.append(len(nodes))
        nodes.append(problem.start_location(vehicle))
        ends.append(len(nodes))
        end = problem.end_location(vehicle)
        nodes.append(-1 if end is None else end)  # -1: open end, free to reach
    manager = pywrapcp.RoutingIndexManager(len(nodes), len(vehicles), starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    durations, distances = problem.durations, problem.distances
    service = [stop.service for stop in stops] + [0] * (len(nodes) - len(stops))

    def between(matrix, a: int, b: int) -> int:
        la, lb = nodes[a], nodes[b]
        return 0 if la < 0 or lb < 0 else int(matrix[la, lb])

    def travel_time(i: int, j: int) -> int:
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return between(durations, a, b) + service[a]

    def arc_cost(i: int, j: int) -> int:
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return problem.objective.distance * between(distances, a, b)

    time_cb = routing.RegisterTransitCallback(travel_time)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitCallback(arc_cost))
    horizon = max(problem.shift(v).end for v in vehicles)
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    time = routing.GetDimensionOrDie("time")
    for v, vehicle in enumerate(vehicles):
        shift = problem.shift(vehicle)
        start_var = time.CumulVar(routing.Start(v))
        latest_start = shift.start if vehicle.start is not None else shift.end
        start_var.SetRange(shift.start, latest_start)
        time.CumulVar(routing.End(v)).SetRange(shift.start, shift.end)
        time.SetSpanCostCoefficientForVehicle(problem.objective.duration, v)
        routing.SetFixedCostOfVehicle(problem.objective.vehicle + vehicle.fixed_cost, v)
        routing.AddVariableMinimizedByFinalizer(start_var)
    for i, stop in enumerate(stops):
        windows = problem.windows(stop)
        var = time.CumulVar(manager.NodeToIndex(i))
        var.SetRange(windows[0].start, min(windows[-1].end, horizon))
        for before, after in itertools.pairwise(windows):
            var.RemoveInterval(before.end + 1, after.start - 1)

    sign = {stop.id: (1 if stop.id in problem.pickups else -1) for stop in stops}
    for dim, name in enumerate(problem.dimensions):
        amounts = [sign[s.id] * problem.load(s)[dim] for s in stops]

        def load(i: int, amounts: list[int] = amounts) -> int:
            node = manager.IndexToNode(i)
            return amounts[node] if node < len(amounts) else 0

        capacities = [v.capacity[dim] if v.capacity else 2**40 for v in vehicles]
        # Plain deliveries are loaded at the start: the start load is free (up to capacity)
        # and may never go below zero, so it is at least what the route delivers.
        routing.AddDimensionWithVehicleCapacity(
            routing.RegisterUnaryTransitCallback(load), 0, capacities, False, f"load:{name}"
        )
    if any(v.max_stops is not None for v in vehicles):
        count = routing.RegisterUnaryTransitCallback(
            lambda i: 1 if manager.IndexToNode(i) < len(stops) else 0
        )
        limits = [len(stops) if v.max_stops is None else v.max_stops for v in vehicles]
        routing.AddDimensionWithVehicleCapacity(count, 0, limits, True, "stops")

    index_of = {stop.id: manager.NodeToIndex(i) for i, stop in enumerate(stops)}
    for pair in problem.pairs:
        pickup, delivery = index_of[pair.pickup], index_of[pair.delivery]
        routing.AddPickupAndDelivery(pickup, delivery)
        routing.solver().Add(routing.VehicleVar(pickup) == routing.VehicleVar(delivery))
        routing.solver().Add(time.CumulVar(pickup) <= time.CumulVar(delivery))

    big = 4 * (int(max(durations.max(initial=0), distances.max(initial=0))) + 1)
    big *= max(1, problem.objective.distance + problem.objective.duration) * (len(stops) + 1)
    for stop in stops:
        index = index_of[stop.id]
        allowed = [v for v, vehicle in enumerate(vehicles) if problem.compatible(vehicle, stop)]
        if len(allowed) < len(vehicles):
            routing.VehicleVar(index).SetValues([-1, *allowed])  # -1: left out
        penalty = stop.penalty if stop.penalty is not None else big * (1 + stop.priority)
        routing.AddDisjunction([index], penalty)

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    searching = clock.perf_counter()
    left = time_limit_s - (searching - building)
    params.time_limit.FromMilliseconds(max(1, int(left * 1000)))
    if max_iterations:
        params.solution_limit = max_iterations
    if report is not None:
        report["engine_data"] = searching - building
        report["budget_spent"] = float(left <= 0)
    solution = routing.SolveWithParameters(params)
    if report is not None:
        report["search"] = clock.perf_counter() - searching
    if solution is None:
        return {}
    sequences: dict[str, list[str]] = {}
    for v, vehicle in enumerate(vehicles):
        index = routing.Start(v)
        route = []
        while not routing.IsEnd(index):
            node = manager.IndexToNode(index)
            if node < len(stops):
                route.append(stops[node].id)
            index = solution.Value(routing.NextVar(index))
        if route:
            sequences[vehicle.id] = route
    return sequences
