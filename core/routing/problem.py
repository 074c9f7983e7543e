"""The routing problem: immutable, validated when it is built.

Geography is already resolved: `durations` (seconds) and `distances` (metres) are square integer
matrices over locations 0..n-1, and everything else names a location by its index. Times are
integer seconds from the problem's epoch (the plan's time zero).

With a `traffic` profile, `durations` are free-flow times and a leg left at time t takes
ceil(free-flow × the factor of t's local hour) (`Problem.leg`); without one they are the times.
With `breaks`, a driver rests after so much work (see `check.py`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from core.errors import DomainError

HORIZON = 10 * 365 * 86_400  # "no limit" for windows, in seconds


class ProblemError(DomainError):
    """The problem is malformed; the message names what and where."""


@dataclass(frozen=True)
class Window:
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ProblemError("routing.window_order", start=self.start, end=self.end)


ANY_TIME = Window(0, HORIZON)
ON_BOARD = 100  # the priority of a delivery whose parcel is already in the van


@dataclass(frozen=True)
class Depot:
    id: str
    location: int
    window: Window = ANY_TIME


@dataclass(frozen=True)
class Vehicle:
    """One driver's vehicle for this plan.

    The route starts at `start` (a location: the driver's live position) or else at the depot,
    and ends at the depot unless `open_end` (the route simply stops at its last stop).
    `rested`: when her current stretch of work began (her last rest ended, or her day began; or
    ends, for one waiting at her first stop long enough), for a driver already at work when the
    plan is made; None: at the route's departure.
    `parked`: with `start`, she is standing there (finishing a stop), not on her way from it,
    so she may rest before her first leg; a live start (not parked) rests after it.
    """

    id: str
    depot: str | None = None
    start: int | None = None
    open_end: bool = False
    shift: Window = ANY_TIME
    capacity: tuple[int, ...] = ()  # per dimension; () means no limit
    skills: frozenset[str] = frozenset()
    max_stops: int | None = None
    fixed_cost: int = 0
    rested: int | None = None
    parked: bool = False


@dataclass(frozen=True)
class Stop:
    id: str
    location: int
    windows: tuple[Window, ...] = ()  # service starts inside one of them; () means any time
    service: int = 0
    demand: tuple[int, ...] = ()  # per dimension; () means nothing
    skills: frozenset[str] = frozenset()
    vehicles: frozenset[str] | None = None  # only these may serve it (zone, type, manual lock)
    priority: int = 0  # higher is left out last; ON_BOARD for parcels already in a van
    penalty: int | None = None  # None: must be served; else the cost of leaving it out

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.windows, key=lambda w: w.start))
        for before, after in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise ProblemError("routing.windows_overlap", where=f"stop {self.id}")
        object.__setattr__(self, "windows", ordered)
        object.__setattr__(self, "skills", frozenset(self.skills))
        if self.vehicles is not None:
            object.__setattr__(self, "vehicles", frozenset(self.vehicles))

    @property
    def required(self) -> bool:
        return self.penalty is None


@dataclass(frozen=True)
class Pair:
    """A pickup and its delivery: same vehicle, pickup first; the load rides between them."""

    pickup: str
    delivery: str


@dataclass(frozen=True)
class Objective:
    """Cost = distance·m + duration·s + vehicle cost per used vehicle (+ left-out penalties)."""

    distance: int = 0
    duration: int = 1
    vehicle: int = 0


@dataclass(frozen=True)
class Traffic:
    """Travel-time factors per local hour, in thousandths (1000 = free flow), and the local
    time of day at the problem's epoch (seconds after local midnight)."""

    factors: tuple[int, ...]
    offset: int = 0

    def __post_init__(self) -> None:
        if len(self.factors) != 24 or any(f <= 0 for f in self.factors):
            raise ProblemError("routing.bad_factors")
        object.__setattr__(self, "factors", tuple(int(f) for f in self.factors))

    @classmethod
    def of(cls, factors: Iterable[float], offset: int = 0) -> Traffic:
        return cls(tuple(round(f * 1000) for f in factors), offset % 86_400)

    def factor(self, at: int) -> int:
        """The factor (thousandths) for a leg left at `at` seconds from the epoch."""
        return self.factors[(self.offset + at) // 3600 % 24]

    def highest(self, start: int, end: int) -> int:
        """The highest factor of any hour from `start` to `end` (seconds from the epoch)."""
        if end - start >= 86_400:
            return max(self.factors)
        first, last = (self.offset + start) // 3600, (self.offset + max(start, end)) // 3600
        return max(self.factors[h % 24] for h in range(first, last + 1))

    @property
    def flat(self) -> bool:
        return all(f == 1000 for f in self.factors)


@dataclass(frozen=True)
class Breaks:
    """After `after` seconds of work a driver rests `length` seconds; a wait of at least
    `length` counts as the rest."""

    after: int
    length: int

    def __post_init__(self) -> None:
        if self.after <= 0 or self.length <= 0:
            raise ProblemError("routing.bad_breaks")


@dataclass(frozen=True, eq=False)
class Problem:
    durations: np.ndarray
    distances: np.ndarray
    vehicles: tuple[Vehicle, ...]
    stops: tuple[Stop, ...]
    depots: tuple[Depot, ...] = ()
    pairs: tuple[Pair, ...] = ()
    dimensions: tuple[str, ...] = ()
    objective: Objective = field(default_factory=Objective)
    traffic: Traffic | None = None
    breaks: Breaks | None = None

    def __post_init__(self) -> None:
        for name in ("durations", "distances"):
            given = getattr(self, name)
            # A frozen int64 matrix owning its data (another problem's, or a travel provider's)
            # cannot change under us: it is kept as it is; anything else is copied and frozen.
            matrix = given if _frozen(given) else np.array(given, dtype=np.int64, copy=True)
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
                raise ProblemError("routing.matrix_shape", name=name, shape=matrix.shape)
            if matrix.size and matrix.min() < 0:
                raise ProblemError("routing.matrix_negative", name=name)
            matrix.setflags(write=False)
            object.__setattr__(self, name, matrix)
        if self.durations.shape != self.distances.shape:
            raise ProblemError("routing.matrix_mismatch")
        for name in ("vehicles", "stops", "depots", "pairs", "dimensions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._validate()

    def leg(self, origin: int, destination: int, at: int) -> int:
        """Seconds to drive from `origin` to `destination` leaving at `at`."""
        free = int(self.durations[origin, destination])
        if self.traffic is None:
            return free
        return -(-free * self.traffic.factor(at) // 1000)

    # -- lookups ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return int(self.durations.shape[0])

    @cached_property
    def stop_by_id(self) -> dict[str, Stop]:
        return {stop.id: stop for stop in self.stops}

    @cached_property
    def vehicle_by_id(self) -> dict[str, Vehicle]:
        return {vehicle.id: vehicle for vehicle in self.vehicles}

    @cached_property
    def depot_by_id(self) -> dict[str, Depot]:
        return {depot.id: depot for depot in self.depots}

    @cached_property
    def partner(self) -> dict[str, str]:
        """Each paired stop's other half."""
        out = {}
        for pair in self.pairs:
            out[pair.pickup], out[pair.delivery] = pair.delivery, pair.pickup
        return out

    @cached_property
    def pickups(self) -> frozenset[str]:
        return frozenset(pair.pickup for pair in self.pairs)

    def start_location(self, vehicle: Vehicle) -> int:
        if vehicle.start is not None:
            return vehicle.start
        assert vehicle.depot is not None
        return self.depot_by_id[vehicle.depot].location

    def end_location(self, vehicle: Vehicle) -> int | None:
        if vehicle.open_end:
            return None
        assert vehicle.depot is not None
        return self.depot_by_id[vehicle.depot].location

    def shift(self, vehicle: Vehicle) -> Window:
        """The vehicle's shift, narrowed by its depot's opening hours."""
        if vehicle.depot is None:
            return vehicle.shift
        depot = self.depot_by_id[vehicle.depot].window
        return Window(max(vehicle.shift.start, depot.start), min(vehicle.shift.end, depot.end))

    def rested(self, vehicle: Vehicle, departure: int) -> int:
        """When her stretch of work began, for a route leaving at `departure` (later than it
        for a driver resting while she waits at her first stop)."""
        return departure if vehicle.rested is None else vehicle.rested

    @staticmethod
    def unrestricted(stop: Stop) -> bool:
        """Whether every vehicle may serve this stop (no lock, no skill): then `able` and
        `compatible` need not look at the vehicles one by one."""
        return stop.vehicles is None and not stop.skills

    def able(self, stop: Stop) -> tuple[Vehicle, ...]:
        """The vehicles that may serve this stop."""
        if self.unrestricted(stop):
            return self.vehicles
        return tuple(v for v in self.vehicles if self.compatible(v, stop))

    def compatible(self, vehicle: Vehicle, stop: Stop) -> bool:
        allowed = stop.vehicles is None or vehicle.id in stop.vehicles
        return allowed and stop.skills <= vehicle.skills

    def windows(self, stop: Stop) -> tuple[Window, ...]:
        return stop.windows or (ANY_TIME,)

    def load(self, stop: Stop) -> tuple[int, ...]:
        return stop.demand or (0,) * len(self.dimensions)

    # -- validation ------------------------------------------------------------------------

    def _validate(self) -> None:
        dims = len(self.dimensions)
        for kind, ids in (
            ("vehicle", [v.id for v in self.vehicles]),
            ("stop", [s.id for s in self.stops]),
            ("depot", [d.id for d in self.depots]),
        ):
            if repeated := _repeated(ids):
                raise ProblemError("routing.duplicate_id", kind=kind, id=repeated)
        for depot in self.depots:
            self._location(depot.location, f"depot {depot.id}")
        for vehicle in self.vehicles:
            where = f"vehicle {vehicle.id}"
            if vehicle.depot is not None and vehicle.depot not in self.depot_by_id:
                raise ProblemError("routing.unknown_depot", where=where, depot=vehicle.depot)
            if vehicle.depot is None and (vehicle.start is None or not vehicle.open_end):
                raise ProblemError("routing.vehicle_needs_depot", where=where)
            if vehicle.start is not None:
                self._location(vehicle.start, where)
            if vehicle.capacity and len(vehicle.capacity) != dims:
                raise ProblemError("routing.dimensions", where=where, dims=dims)
            if any(amount < 0 for amount in vehicle.capacity):
                raise ProblemError("routing.negative", where=where, what="capacity")
            if vehicle.max_stops is not None and vehicle.max_stops < 0:
                raise ProblemError("routing.negative", where=where, what="max_stops")
            if vehicle.fixed_cost < 0:
                raise ProblemError("routing.negative", where=where, what="fixed cost")
        for stop in self.stops:
            where = f"stop {stop.id}"
            self._location(stop.location, where)
            if stop.demand and len(stop.demand) != dims:
                raise ProblemError("routing.dimensions", where=where, dims=dims)
            if any(amount < 0 for amount in stop.demand):
                raise ProblemError("routing.negative", where=where, what="demand")
            if stop.service < 0:
                raise ProblemError("routing.negative", where=where, what="service time")
            if stop.penalty is not None and stop.penalty < 0:
                raise ProblemError("routing.negative", where=where, what="penalty")
            if stop.vehicles is not None:
                unknown = sorted(set(stop.vehicles) - set(self.vehicle_by_id))
                if unknown:
                    raise ProblemError("routing.unknown_vehicle", where=where, vehicle=unknown[0])
        self._validate_pairs()

    def _validate_pairs(self) -> None:
        seen: Counter[str] = Counter()
        for pair in self.pairs:
            for stop_id in (pair.pickup, pair.delivery):
                if stop_id not in self.stop_by_id:
                    raise ProblemError("routing.unknown_stop", where="a pair", stop=stop_id)
                seen[stop_id] += 1
            if pair.pickup == pair.delivery:
                raise ProblemError("routing.pair_self", stop=pair.pickup)
            pickup, delivery = self.stop_by_id[pair.pickup], self.stop_by_id[pair.delivery]
            if self.load(pickup) != self.load(delivery):
                raise ProblemError("routing.pair_amount", pickup=pickup.id, delivery=delivery.id)
            if pickup.required != delivery.required:
                raise ProblemError("routing.pair_required", pickup=pickup.id, delivery=delivery.id)
        if repeated := [stop for stop, times in seen.items() if times > 1]:
            raise ProblemError("routing.pair_twice", stop=repeated[0])

    def _location(self, index: int, where: str) -> None:
        if not 0 <= index < self.size:
            raise ProblemError("routing.location", where=where, index=index, size=self.size)


def _frozen(matrix: object) -> bool:
    """An int64 C-ordered numpy array that owns its data and is read-only."""
    return (
        isinstance(matrix, np.ndarray)
        and matrix.dtype == np.int64
        and matrix.base is None
        and matrix.flags.c_contiguous
        and not matrix.flags.writeable
    )


def _repeated(ids: Iterable[str]) -> str | None:
    counts = Counter(ids)
    return next((item for item, times in counts.items() if times > 1), None)
