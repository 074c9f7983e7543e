"""On-demand insertion: cheapest feasible position, business rules, and the explanation."""

from __future__ import annotations

import itertools

import pytest

from core.routing.check import evaluate
from core.routing.insert import cheapest_insertion
from core.routing.problem import Pair, Stop, Vehicle, Window
from tests.test_routing import MINUTE, problem

# Two drivers on a line: Ana near the new stop (at 3), Ben far away (at 20).
POINTS = [(0, 0), (2, 0), (4, 0), (3, 0), (20, 0), (22, 0), (3, 1)]
NAMES = {"ana": "Ana", "ben": "Ben"}


def city(stops: list[Stop], ana: dict | None = None, ben: dict | None = None, **kwargs):
    vehicles = [
        Vehicle("ana", start=1, open_end=True, **(ana or {})),
        Vehicle("ben", start=4, open_end=True, **(ben or {})),
    ]
    base = [Stop("a1", 2, demand=(1,)), Stop("b1", 5, demand=(1,))]
    return problem(POINTS, base + stops, vehicles, dimensions=("parcels",), **kwargs)


ROUTES = {"ana": ["a1"], "ben": ["b1"]}


def test_the_cheapest_position_among_all_drivers():
    p = city([Stop("new", 3, demand=(1,))])
    result = cheapest_insertion(p, ROUTES, "new", nearest="ana", names=NAMES)
    assert (result.vehicle, result.sequence) == ("ana", ("new", "a1"))  # on her way
    assert result.added_seconds == 0  # x=2 → 3 → 4 is no longer than x=2 → 4
    assert result.reason == "nearest feasible driver, +0 min to the route"
    # exhaustive check: no other placement is cheaper
    best = min(
        evaluate(p, {**ROUTES, v: list(seq)})[0].cost
        for v in ("ana", "ben")
        for seq in itertools.permutations([*ROUTES[v], "new"])
        if not evaluate(p, {**ROUTES, v: list(seq)})[1]
    )
    assert evaluate(p, {**ROUTES, "ana": list(result.sequence)})[0].cost == best
    assert result.route.visits[0].stop == "new" and result.route.departure == 0


@pytest.mark.parametrize(
    ("ana", "stop", "why"),
    [
        ({"capacity": (1,)}, {}, "has no room left in the vehicle"),
        ({"max_stops": 1}, {}, "already has the most stops allowed"),
        ({"skills": frozenset()}, {"skills": frozenset({"fridge"})}, "lacks fridge"),
        ({}, {"vehicles": frozenset({"ben"})}, "may not take it (zone, vehicle or lock)"),
        ({"shift": Window(0, 150)}, {"service": MINUTE}, "would finish after the shift ends"),
    ],
    ids=["capacity", "max_stops", "skill", "zone_or_lock", "shift"],
)
def test_each_rule_sends_it_to_the_next_driver(ana, stop, why):
    ben = {"skills": frozenset({"fridge"}), "capacity": (5,)}
    p = city([Stop("new", 3, demand=(1,), **stop)], ana={"capacity": (5,), **ana}, ben=ben)
    result = cheapest_insertion(p, ROUTES, "new", nearest="ana", names=NAMES)
    assert result.vehicle == "ben"
    assert result.rejected["ana"] == why
    assert result.reason.startswith(f"Ana is nearer but {why}; +")


def test_no_feasible_driver_leaves_it_unassigned_with_reasons():
    p = city([Stop("new", 3, windows=(Window(0, 30),), demand=(1,))])
    result = cheapest_insertion(p, ROUTES, "new")
    assert result.vehicle is None and result.reason == "no driver on shift can take it"
    assert result.rejected == {
        "ana": "cannot get there within its time window",
        "ben": "cannot get there within its time window",
    }


def test_locked_stops_keep_their_place():
    p = city([Stop("new", 3, demand=(1,))])
    result = cheapest_insertion(p, ROUTES, "new", locked={"ana": 1, "ben": 1})
    assert result.sequence == ("a1", "new")  # a1 is where she is driving: it stays first


def test_a_pair_is_inserted_pickup_first_on_one_vehicle():
    p = city(
        [Stop("pick", 6, demand=(1,)), Stop("drop", 3, demand=(1,))],
        pairs=(Pair("pick", "drop"),),
    )
    for asked in ("pick", "drop"):
        result = cheapest_insertion(p, ROUTES, asked)
        sequence = list(result.sequence)
        assert result.vehicle == "ana"
        assert sequence.index("pick") < sequence.index("drop")
        assert not evaluate(p, {**ROUTES, "ana": sequence})[1]


def test_cheaper_than_the_nearest_is_explained():
    # Ben is nearest (4 away) but heads elsewhere (+8); Ana's route passes right by (+0).
    points = [(0, 0), (0, 0), (10, 0), (6, 3), (12, 3), (5, 0)]
    vehicles = [
        Vehicle("ana", start=1, open_end=True),
        Vehicle("ben", start=3, open_end=True),
    ]
    stops = [Stop("a1", 2), Stop("b1", 4), Stop("new", 5)]
    p = problem(points, stops, vehicles)
    routes = {"ana": ["a1"], "ben": ["b1"]}
    result = cheapest_insertion(p, routes, "new", nearest="ben", names={"ben": "Ben"})
    assert (result.vehicle, result.sequence, result.added_seconds) == ("ana", ("new", "a1"), 0)
    assert result.reason == "+0 min to this route, less than it would add for Ben, who is nearer"


def test_filling_the_wait_before_a_late_first_stop_is_not_free():
    """A depot start leaves as late as it can, so putting an early stop before Ana's noon stop
    makes her leave hours earlier: that costs what it costs, and Ben (an empty van at the same
    depot) does it for the drive alone."""
    hour = 60 * MINUTE
    vehicles = [Vehicle("ana", depot="hub"), Vehicle("ben", depot="hub")]
    stops = [
        Stop("noon", 2, windows=(Window(12 * hour, 13 * hour),)),
        Stop("early", 1, windows=(Window(0, hour),)),
    ]
    p = problem([(0, 0), (1, 0), (5, 0)], stops, vehicles)
    result = cheapest_insertion(p, {"ana": ["noon"]}, "early")
    assert (result.vehicle, result.sequence) == ("ben", ("early",))
    assert result.added_seconds == 2 * MINUTE  # there and back
    with_ana = evaluate(p, {"ana": ["early", "noon"]})[0].cost
    with_ben = evaluate(p, {"ana": ["noon"], "ben": ["early"]})[0].cost
    assert with_ben < with_ana
