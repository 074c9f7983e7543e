"""The sticky re-plan's moves on small problems: what a swap, a chain, a re-sequence must save."""

from __future__ import annotations

import pytest

from core.routing.check import evaluate
from core.routing.problem import Stop, Vehicle, Window
from core.routing.sticky import sticky_plan
from tests.test_routing import MINUTE, problem

# Ana starts at x=0 and Ben at x=20, each with room for one stop; each has the stop by the
# other's start: swapping them saves 38 - 2 = 36 minutes, two stops changing driver.
POINTS = [(0, 0), (20, 0), (1, 0), (19, 0)]
CROSSED = {"ana": ["by_ben"], "ben": ["by_ana"]}


def crossed(**by_ben: object):
    vehicles = [
        Vehicle("ana", start=0, open_end=True, max_stops=1),
        Vehicle("ben", start=1, open_end=True, max_stops=1),
    ]
    stops = [Stop("by_ana", 2), Stop("by_ben", 3, **by_ben)]  # type: ignore[arg-type]
    return problem(POINTS, stops, vehicles)


@pytest.mark.parametrize(
    ("threshold_minutes", "swapped"),
    [(10, True), (17, True), (18, False), (30, False)],
    ids=["saves_far_more", "saves_just_more", "saves_exactly", "saves_less"],
)
def test_a_swap_is_made_only_when_it_saves_the_threshold_for_each_stop(threshold_minutes, swapped):
    p = crossed()
    plan = sticky_plan(p, CROSSED, min_saving=threshold_minutes * MINUTE)
    if swapped:
        assert plan.sequences == {"ana": ["by_ana"], "ben": ["by_ben"]}
        assert [(m.kind, m.stops, m.source, m.target) for m in plan.moves] == [
            ("swap", ("by_ben",), "ana", "ben"),
            ("swap", ("by_ana",), "ben", "ana"),
        ]
        assert plan.moves[0].saving == 36 * MINUTE
    else:
        assert plan.sequences == CROSSED and plan.moves == []
    assert not evaluate(p, plan.sequences)[1]
    again = sticky_plan(p, plan.sequences, min_saving=threshold_minutes * MINUTE)
    assert again.sequences == plan.sequences and again.moves == []  # nothing changed: no change


def test_a_parcel_on_board_is_never_swapped_however_much_it_saves():
    p = crossed(vehicles=frozenset({"ana"}))  # by_ben is in Ana's van
    plan = sticky_plan(p, CROSSED, min_saving=MINUTE)
    assert plan.sequences == CROSSED and plan.moves == []


def test_a_locked_first_stop_is_never_swapped():
    plan = sticky_plan(crossed(), CROSSED, locked={"ana": 1}, min_saving=MINUTE)
    assert plan.sequences == CROSSED and plan.moves == []


@pytest.mark.parametrize(("threshold_minutes", "moved"), [(8, True), (9, False)])
def test_a_chain_is_moved_only_when_it_saves_the_threshold_for_each_stop(threshold_minutes, moved):
    """Ana drives 19 minutes to two stops by Ben's start; moved one at a time they save
    nothing, moved together (Ben drives 2 minutes) they save 17: more than 2 x 8, not 2 x 9."""
    vehicles = [Vehicle("ana", start=0, open_end=True), Vehicle("ben", start=1, open_end=True)]
    p = problem([(0, 0), (20, 0), (18, 0), (19, 0)], [Stop("s18", 2), Stop("s19", 3)], vehicles)
    current = {"ana": ["s18", "s19"], "ben": []}
    plan = sticky_plan(p, current, min_saving=threshold_minutes * MINUTE)
    if moved:
        assert plan.sequences == {"ana": [], "ben": ["s19", "s18"]}
        assert [(m.kind, m.stops, m.saving) for m in plan.moves] == [
            ("chain", ("s18", "s19"), 17 * MINUTE)
        ]
    else:
        assert plan.sequences == current and plan.moves == []


# Ana starts at x=0 with a stop by her start and one at x=30 that closes 25 minutes in: she
# cannot reach it before 29 minutes, whatever her order. Ben starts at x=20: 10 minutes away.
RESCUE_POINTS = [(0, 0), (20, 0), (30, 0), (1, 0), (21, 0)]


def far_away(closes_min: int = 25, ben_late: bool = False, **far: object):
    vehicles = [Vehicle("ana", start=0, open_end=True), Vehicle("ben", start=1, open_end=True)]
    stops = [
        Stop("far", 2, windows=(Window(0, closes_min * MINUTE),), **far),  # type: ignore[arg-type]
        Stop("by_ana", 3),
        Stop("by_ben", 4, windows=(Window(0, 0 if ben_late else 60 * MINUTE),)),
    ]
    return problem(RESCUE_POINTS, stops, vehicles)


def test_a_stop_late_on_its_route_goes_to_the_driver_who_makes_it_in_time_whatever_it_saves():
    p = far_away()
    current = {"ana": ["by_ana", "far"], "ben": ["by_ben"]}
    plan = sticky_plan(p, current, min_saving=1000 * MINUTE)  # no saving would move it
    assert plan.rescued == {"far": "ben"}
    assert plan.sequences == {"ana": ["by_ana"], "ben": ["by_ben", "far"]}
    assert not evaluate(p, plan.sequences)[1]  # every window kept
    again = sticky_plan(p, plan.sequences, min_saving=1000 * MINUTE)
    assert again.sequences == plan.sequences and not again.rescued


@pytest.mark.parametrize(
    ("options", "current", "locked"),
    [
        ({"vehicles": frozenset({"ana"})}, ["by_ana", "far"], None),  # in her van
        ({}, ["far", "by_ana"], {"ana": 1}),  # she is driving to it
        ({"closes_min": 5}, ["by_ana", "far"], None),  # Ben cannot make it in time either
        ({"ben_late": True}, ["by_ana", "far"], None),  # Ben's own route is late: he takes none
    ],
    ids=["in_her_van", "under_way", "nobody_in_time", "his_route_late"],
)
def test_a_late_stop_stays_when_it_may_not_move_or_nobody_makes_it(options, current, locked):
    p = far_away(**options)
    plan = sticky_plan(p, {"ana": current, "ben": ["by_ben"]}, locked=locked, min_saving=MINUTE)
    assert not plan.rescued
    assert "far" in plan.sequences["ana"]
    assert evaluate(p, plan.sequences)[1]  # late it is, and stays


def test_a_stop_no_order_keeps_on_time_goes_where_it_is_least_late_not_to_the_end():
    """Ana's route in force has two late stops. Rebuilt, one of them ("tight", closing 30 s in,
    a minute away) is on time nowhere: it goes first, 30 s late, not after the far stops,
    58 minutes late; the other late stop is then on time."""
    vehicles = [Vehicle("ana", start=0, open_end=True)]
    points = [(0, 0), (1, 0), (10, 0), (20, 0), (30, 0)]
    stops = [
        Stop("tight", 1, windows=(Window(0, 30),)),
        Stop("s10", 2, windows=(Window(0, 15 * MINUTE),)),
        Stop("s20", 3),
        Stop("s30", 4),
    ]
    p = problem(points, stops, vehicles)
    current = {"ana": ["s30", "s20", "s10", "tight"]}
    assert len(evaluate(p, current)[1]) == 2
    plan = sticky_plan(p, current, min_saving=MINUTE)
    assert plan.rebuilt == ["ana"]
    assert plan.sequences == {"ana": ["tight", "s10", "s20", "s30"]}
    assert [v.stop for v in evaluate(p, plan.sequences)[1]] == ["tight"]
    assert evaluate(p, plan.sequences)[0].visit("tight").start == MINUTE  # 30 s late


def test_placing_only_places_the_waiting_stop_and_moves_nothing_else():
    """Placing arrivals is not re-planning the day: the swap that saves 36 minutes is left for
    the re-plan, and only the route that took the arrival is re-sequenced."""
    vehicles = [
        Vehicle("ana", start=0, open_end=True, max_stops=2),
        Vehicle("ben", start=1, open_end=True, max_stops=1),
    ]
    stops = [Stop("by_ana", 2), Stop("by_ben", 3), Stop("new", 2)]
    p = problem(POINTS, stops, vehicles)
    plan = sticky_plan(p, CROSSED, waiting=["new"], min_saving=MINUTE, placing_only=True)
    assert plan.placed == {"new": "ana"} and plan.moves == []
    assert plan.sequences == {"ana": ["new", "by_ben"], "ben": ["by_ana"]}
    replanned = sticky_plan(p, CROSSED, waiting=["new"], min_saving=MINUTE)
    assert replanned.moves  # the same day re-planned does swap


def test_a_stop_on_time_nowhere_is_not_made_an_hour_late_to_keep_another_on_time():
    """Rebuilt, "tight" (a minute behind her start, closing 30 s in) is late anywhere. Before
    the far stop it makes that one 3 minutes late too; after it, it would be an hour late.
    Two stops a few minutes late beat one an hour late."""
    vehicles = [Vehicle("ana", start=0, open_end=True)]
    points = [(0, 0), (-1, 0), (1, 0), (30, 0)]
    stops = [
        Stop("tight", 1, windows=(Window(0, 30),)),
        Stop("s1", 2, windows=(Window(0, 90),)),
        Stop("s30", 3, windows=(Window(0, 31 * MINUTE),)),
    ]
    p = problem(points, stops, vehicles)
    current = {"ana": ["tight", "s30", "s1"]}
    assert len(evaluate(p, current)[1]) == 3
    plan = sticky_plan(p, current, min_saving=MINUTE)
    assert plan.sequences == {"ana": ["s1", "tight", "s30"]}
    checked, violations = evaluate(p, plan.sequences)
    assert {v.stop for v in violations} == {"tight", "s30"}
    assert checked.visit("s30").start == 34 * MINUTE  # 3 minutes late, not "tight" an hour
