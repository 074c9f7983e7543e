"""The PyVRP model of a routing problem (see `pyvrp.py` for what it covers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyvrp

from core.routing.engines.restrictions import restrictions
from core.routing.problem import Problem, Stop

UNLIMITED = 2**40
OUT_OF_REACH = 10**9  # seconds and metres: longer than any shift (HORIZON is ~3.2e8)


def _binding(problem: Problem) -> list[int]:
    """The capacity dimensions some vehicle could fill (the others are left out of the model)."""
    dims = range(len(problem.dimensions))
    total = [sum(problem.load(stop)[d] for stop in problem.stops) for d in dims]
    return [
        d for d in dims if any(v.capacity and v.capacity[d] < total[d] for v in problem.vehicles)
    ]


def _prize(problem: Problem, stop: Stop, big: int) -> int:
    if stop.penalty is not None:
        return stop.penalty
    return big * (1 + stop.priority)


def build(
    problem: Problem, *, soft: bool
) -> tuple[pyvrp.ProblemData, list[str], list[str], list[list[str]]]:
    """The PyVRP model of a problem without odd stops. `soft`: required stops become optional
    with a huge prize, so an overfull day drops stops instead of breaking windows. Returns the
    data, our stop ids per client (a stop with several windows has a client for each) and per
    shipment, and our vehicle ids per vehicle type."""
    n = problem.size
    open_routes = any(v.open_end for v in problem.vehicles)
    sink = n  # open routes end here at no cost (only when some route is open)
    size = n + 1 if open_routes else n
    # PyVRP copies the matrices into its own: ours are handed over as they are (no copy of
    # our own) unless the model needs more locations.
    distance, duration = problem.distances, problem.durations
    if open_routes:
        distance = np.zeros((size, size), dtype=np.int64)
        duration = np.zeros((size, size), dtype=np.int64)
        distance[:n, :n], duration[:n, :n] = problem.distances, problem.durations
        # Nothing starts at the sink, so its row is never driven; keep it in the matrix's own
        # range, since PyVRP derives its starting penalties from the matrices.
        distance[sink, :n] = problem.distances.max(initial=0)
        duration[sink, :n] = problem.durations.max(initial=0)
    # A stop some vehicle may not serve gets a location of its own, so that only its arcs are
    # cut in that vehicle's profile (another stop at the same address stays reachable).
    rules = restrictions(problem)
    classes = rules.cut
    restricted = sorted(set().union(*classes.values())) if classes else []
    origin = list(range(size))
    own: dict[str, int] = {}
    for stop_id in restricted:
        own[stop_id] = len(origin)
        origin.append(problem.stop_by_id[stop_id].location)
    if restricted:
        grid = np.ix_(origin, origin)
        distance, duration = distance[grid], duration[grid]
    locations = [pyvrp.Location(0, 0) for _ in origin]
    profile_of: dict[frozenset[str], int] = {frozenset(): 0}
    # (PyVRP's stubs give matrices an `int` shape; numpy's are tuples: Any meets both)
    distances: list[np.ndarray[Any, np.dtype[Any]]] = [distance]
    durations: list[np.ndarray[Any, np.dtype[Any]]] = [duration]
    for cut in dict.fromkeys(classes.values()):
        if cut in profile_of:
            continue
        profile_of[cut] = len(distances)
        far = [own[s] for s in cut]
        d, t = distance.copy(), duration.copy()
        for matrix in (d, t):
            matrix[far, :] = OUT_OF_REACH
            matrix[:, far] = OUT_OF_REACH
            matrix[far, far] = 0
        distances.append(d)
        durations.append(t)

    def place(stop: Stop) -> int:
        return own.get(stop.id, stop.location)

    depot_index: dict[int, int] = {}
    depots: list[pyvrp.Depot] = []

    def depot_at(location: int) -> int:
        if location not in depot_index:
            depot_index[location] = len(depots)
            depots.append(pyvrp.Depot(location))
        return depot_index[location]

    counting_stops = any(v.max_stops is not None for v in problem.vehicles)
    real = _binding(problem)
    dims = len(real) + (1 if counting_stops else 0) + rules.width

    def amounts(stop: Stop, count: int) -> list[int]:
        """Its load in the model: binding dimensions, the stop count, its lock dimensions."""
        load, locks = problem.load(stop), rules.loads.get(stop.id, ())
        return (
            [load[d] for d in real]
            + ([count] if counting_stops else [])
            + [1 if d in locks else 0 for d in range(rules.width)]
        )

    objective = problem.objective
    # Identical vehicles share one vehicle type (num_available=k): PyVRP searches a
    # homogeneous fleet far better than k look-alike types.
    by_spec: dict[tuple, list[str]] = {}
    specs: dict[tuple, dict] = {}
    for vehicle in problem.vehicles:
        shift = problem.shift(vehicle)
        end = problem.end_location(vehicle)
        capacity = [vehicle.capacity[d] if vehicle.capacity else UNLIMITED for d in real]
        if counting_stops:
            capacity.append(UNLIMITED if vehicle.max_stops is None else vehicle.max_stops)
        room = rules.room[vehicle.id]
        capacity += [UNLIMITED if d in room else 0 for d in range(rules.width)]
        spec = dict(
            capacity=capacity,
            start_depot=depot_at(problem.start_location(vehicle)),
            end_depot=depot_at(sink if end is None else end),
            fixed_cost=objective.vehicle + vehicle.fixed_cost,
            tw_early=shift.start,
            tw_late=shift.end,
            unit_distance_cost=objective.distance,
            unit_duration_cost=objective.duration,
            start_late=shift.start if vehicle.start is not None else shift.end,
            profile=profile_of[classes[vehicle.id]],
        )
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items())
        by_spec.setdefault(key, []).append(vehicle.id)
        specs[key] = spec
    vehicle_types = [
        pyvrp.VehicleType(num_available=len(ids), **specs[key], name=",".join(ids))
        for key, ids in by_spec.items()
    ]
    fleet = list(by_spec.values())

    big = int(max(problem.durations.max(initial=0), problem.distances.max(initial=0)) + 1)
    big *= 4 * max(1, objective.distance + objective.duration)
    clients: list[pyvrp.Client] = []
    client_ids: list[str] = []
    groups: list[pyvrp.ClientGroup] = []
    for stop in problem.stops:
        if stop.id in problem.partner:
            continue
        windows = problem.windows(stop)
        load = amounts(stop, 1)
        group = None
        if len(windows) > 1:  # one client per window; exactly one of them is served
            group = len(groups)
            groups.append(pyvrp.ClientGroup(required=stop.required and not soft))
        for window in windows:
            if group is not None:
                groups[group].add_client(len(clients))
            clients.append(
                pyvrp.Client(
                    place(stop),
                    delivery=load,
                    service_duration=stop.service,
                    tw_early=window.start,
                    tw_late=window.end,
                    prize=_prize(problem, stop, big),
                    required=stop.required and not soft and group is None,
                    group=group,
                    name=stop.id,
                )
            )
            client_ids.append(stop.id)
    shipments, shipment_ids = [], []
    for pair in problem.pairs:
        pickup, delivery = problem.stop_by_id[pair.pickup], problem.stop_by_id[pair.delivery]
        first, last = problem.windows(pickup)[0], problem.windows(delivery)[0]
        shipments.append(
            pyvrp.Shipment(
                place(pickup),
                place(delivery),
                pickup_tw_early=first.start,
                pickup_tw_late=first.end,
                pickup_service_duration=pickup.service,
                delivery_tw_early=last.start,
                delivery_tw_late=last.end,
                delivery_service_duration=delivery.service,
                amount=amounts(pickup, 0),
                prize=_prize(problem, pickup, big) + _prize(problem, delivery, big),
                required=pickup.required and not soft,
                name=pair.pickup,
            )
        )
        shipment_ids.append(pair.pickup)
    data = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=distances,
        duration_matrices=durations,
        groups=groups,
        shipments=shipments,
    )
    assert all(len(c.delivery) == dims for c in clients)
    return data, client_ids, shipment_ids, fleet
