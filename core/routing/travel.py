"""Travel times and distances between points: integer seconds and metres, rounded up.

- `StraightLine`: haversine × detour factor ÷ speed; works offline.
- `Osrm`: OSRM's `table` service (road network), asked in blocks no larger than its limit.
Both multiply times by a `TrafficProfile` for the hour of departure (rush hours slower), or
give free-flow times when asked for no hour (`depart_at=None`: the routing problem then times
each leg at its own hour). `Cached` remembers each pair per provider and hour, so a new
order costs one row and one column.
Durations are rounded up: rounding down makes plans that break windows on the road.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx
import numpy as np
from numpy.typing import ArrayLike

from core.config import RoutingSettings
from core.errors import DomainError
from core.geo.traffic import parse_factors

EARTH_RADIUS_M = 6_371_008.8
UNREACHABLE_S = 24 * 3600  # what OSRM's null (no route) becomes: a day, never chosen
ROWS = 256  # rows of a straight-line matrix computed at once


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise DomainError("routing.bad_point", lat=self.lat, lon=self.lon)


@dataclass(frozen=True)
class Matrix:
    """Seconds and metres, int64, read-only: a `Problem` takes them without a copy."""

    durations: np.ndarray  # seconds, int64
    distances: np.ndarray  # metres, int64

    def __post_init__(self) -> None:
        for matrix in (self.durations, self.distances):
            matrix.setflags(write=False)


@dataclass(frozen=True)
class TrafficProfile:
    """A travel-time factor per local hour of day (1.0 = free flow)."""

    factors: tuple[float, ...] = (1.0,) * 24
    zone: str = "UTC"

    def __post_init__(self) -> None:
        if len(self.factors) != 24 or any(f <= 0 for f in self.factors):
            raise DomainError("routing.bad_traffic", text=str(self.factors))

    def factor(self, when: datetime | None) -> float:
        """The factor at `when`; None is free flow."""
        if when is None:
            return 1.0
        return self.factors[when.astimezone(ZoneInfo(self.zone)).hour]

    @classmethod
    def parse(cls, text: str, zone: str = "UTC") -> TrafficProfile:
        try:
            return cls(parse_factors(text), zone)
        except ValueError:
            raise DomainError("routing.bad_traffic", text=text) from None


class TravelProvider(Protocol):
    @property
    def name(self) -> str: ...

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime | None
    ) -> Matrix:
        """Times leaving at `depart_at`; None: free flow (no traffic factor)."""
        ...


def great_circle_m(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> np.ndarray:
    """Metres along the earth's surface between points given in degrees (haversine; numbers or
    numpy arrays, broadcast): the one straight-line distance of the product."""
    p1, l1, p2, l2 = (np.radians(v) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def haversine_m(sources: Sequence[Point], destinations: Sequence[Point]) -> np.ndarray:
    """The straight-line metres from each source to each destination (a matrix)."""
    return great_circle_m(
        np.array([p.lat for p in sources])[:, None],
        np.array([p.lon for p in sources])[:, None],
        np.array([p.lat for p in destinations])[None, :],
        np.array([p.lon for p in destinations])[None, :],
    )


def straight_m(a: Point, b: Point) -> float:
    """The straight-line metres from `a` to `b`."""
    return float(great_circle_m(a.lat, a.lon, b.lat, b.lon))


@dataclass
class StraightLine:
    speed_kmh: float = 25.0
    detour: float = 1.3
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    name: str = "straight-line"

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime | None
    ) -> Matrix:
        """Computed a block of rows at a time straight into the int64 results: a day of
        5,000 points needs no float matrix of its own (25 M cells, 200 MB each)."""
        factor = self.traffic.factor(depart_at)
        lat = np.array([p.lat for p in destinations])[None, :]
        lon = np.array([p.lon for p in destinations])[None, :]
        durations = np.empty((len(sources), len(destinations)), dtype=np.int64)
        distances = np.empty_like(durations)
        for first in range(0, len(sources), ROWS):
            block = sources[first : first + ROWS]
            metres = great_circle_m(
                np.array([p.lat for p in block])[:, None],
                np.array([p.lon for p in block])[:, None],
                lat,
                lon,
            )
            metres *= self.detour
            seconds = metres / (self.speed_kmh / 3.6)
            seconds *= factor
            rows = slice(first, first + len(block))
            distances[rows] = np.ceil(metres, out=metres)
            durations[rows] = np.ceil(seconds, out=seconds)
        return Matrix(durations, distances)


class OsrmError(RuntimeError):
    pass


@dataclass
class Osrm:
    """OSRM `table` service. `max_table` is the server's --max-table-size (default 100)."""

    base_url: str
    client: httpx.AsyncClient
    profile: str = "driving"
    max_table: int = 100
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    name: str = "osrm"

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime | None
    ) -> Matrix:
        durations = np.zeros((len(sources), len(destinations)), dtype=np.float64)
        distances = np.zeros_like(durations)
        rows, cols = _blocks(len(sources), len(destinations), max(1, self.max_table))
        for i in range(0, len(sources), rows):
            for j in range(0, len(destinations), cols):
                block_s, block_d = sources[i : i + rows], destinations[j : j + cols]
                seconds, metres = await self._table(block_s, block_d)
                durations[i : i + len(block_s), j : j + len(block_d)] = seconds
                distances[i : i + len(block_s), j : j + len(block_d)] = metres
        factor = self.traffic.factor(depart_at)
        return Matrix(
            np.ceil(durations * factor).astype(np.int64), np.ceil(distances).astype(np.int64)
        )

    async def _table(
        self, sources: Sequence[Point], destinations: Sequence[Point]
    ) -> tuple[np.ndarray, np.ndarray]:
        points = [*sources, *destinations]
        coords = ";".join(f"{p.lon:.6f},{p.lat:.6f}" for p in points)
        params = {
            "sources": ";".join(str(i) for i in range(len(sources))),
            "destinations": ";".join(str(len(sources) + j) for j in range(len(destinations))),
            "annotations": "duration,distance",
        }
        url = f"{self.base_url.rstrip('/')}/table/v1/{self.profile}/{coords}"
        try:
            response = await self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise OsrmError(f"OSRM at {self.base_url} is unreachable: {exc}") from exc
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if response.status_code != 200 or body.get("code") != "Ok":
            raise OsrmError(
                f"OSRM answered {response.status_code} {body.get('code')}: {body.get('message')}"
            )
        return _fill(body["durations"], UNREACHABLE_S), _fill(body["distances"], math.inf)


def _blocks(sources: int, destinations: int, limit: int) -> tuple[int, int]:
    """Rows and columns per request: OSRM refuses more than limit² pairs at once, and a URL
    holds at most 2·limit points (as a square block does), so one new point's row or column
    goes in blocks of 2·limit - 1."""
    if sources <= destinations:
        rows = min(sources, limit)
        return rows, max(1, min(destinations, 2 * limit - rows))
    cols = min(destinations, limit)
    return max(1, min(sources, 2 * limit - cols)), cols


def _fill(rows: list[list[float | None]], missing: float) -> np.ndarray:
    array = np.array(rows, dtype=float)  # null (no route) becomes NaN
    array[np.isnan(array)] = missing
    if missing == math.inf:
        array[np.isinf(array)] = UNREACHABLE_S * 30  # metres for "no route": 30 m/s for a day
    return array


CELL_BYTES = 4 + 4 + 1  # a cached pair: int32 seconds, int32 metres, and whether it is known
INT32_MAX = np.iinfo(np.int32).max
FREE_FLOW = 24  # the cache's "hour" for free-flow times


@dataclass
class _Block:
    """Everything known for one hour: a square matrix over every point seen, with a mask."""

    index: dict[Point, int] = field(default_factory=dict)
    durations: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int32))
    distances: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int32))
    known: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    @property
    def capacity(self) -> int:
        return int(self.known.shape[0])

    def grow(self, points: Sequence[Point], limit: int) -> None:
        """Add the points it lacks, keeping everything known. Room grows by half (up to
        `limit` points) so that adding points one by one copies the matrix rarely."""
        for point in points:
            if point not in self.index:
                self.index[point] = len(self.index)
        size, have = len(self.index), self.capacity
        if size > have:
            capacity = max(size, min(max(have + have // 2, 64), limit))
            self._reshape(list(range(have)), capacity)

    def keep(self, points: Sequence[Point]) -> None:
        """Forget every point but these; what they know about each other stays."""
        kept = [point for point in dict.fromkeys(points) if point in self.index]
        self._reshape([self.index[point] for point in kept], len(kept))
        self.index = {point: i for i, point in enumerate(kept)}

    def _reshape(self, rows: list[int], capacity: int) -> None:
        grid = np.ix_(rows, rows)
        for name in ("durations", "distances", "known"):
            old = getattr(self, name)
            new = np.zeros((capacity, capacity), dtype=old.dtype)
            new[: len(rows), : len(rows)] = old[grid]
            setattr(self, name, new)


@dataclass
class Cached:
    """Remembers each (from, to) pair per hour and asks the provider only for what it lacks:
    with one new stop among known ones, that is one new row and one new column.

    Memory is bounded: all hours together hold at most `max_points`² pairs (9 bytes each:
    225 MB at 5,000). Past it, the hours used longest ago go first; if one hour alone is over,
    it keeps just the points the current question names (what it knows about them stays).
    A question larger than the bound is still answered whole."""

    provider: TravelProvider
    max_points: int = 5000
    blocks: dict[int, _Block] = field(default_factory=dict)  # least recently used first
    requests: int = 0

    @property
    def name(self) -> str:
        return f"cached {self.provider.name}"

    @property
    def nbytes(self) -> int:
        return sum(block.capacity**2 for block in self.blocks.values()) * CELL_BYTES

    @property
    def traffic(self) -> TrafficProfile | None:
        return getattr(self.provider, "traffic", None)

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime | None
    ) -> Matrix:
        hour = FREE_FLOW if depart_at is None else int(depart_at.timestamp() // 3600) % 24
        block = self.blocks.pop(hour, None) or _Block()
        self.blocks[hour] = block  # now the most recently used
        rows, cols = list(dict.fromkeys(sources)), list(dict.fromkeys(destinations))
        asked = list(dict.fromkeys([*rows, *cols]))
        if len(block.index) + sum(p not in block.index for p in asked) > self.max_points:
            block.keep(asked)
        block.grow(asked, self.max_points)
        for other in list(self.blocks)[:-1]:
            if self.nbytes <= self.max_points**2 * CELL_BYTES:
                break
            del self.blocks[other]
        r = np.array([block.index[p] for p in rows], dtype=np.intp)
        c = np.array([block.index[p] for p in cols], dtype=np.intp)
        missing = ~block.known[np.ix_(r, c)]
        if missing.any():
            lacking_rows = np.asarray(missing.all(axis=1))  # points never asked from: whole rows
            await self._fetch(block, [rows[i] for i in np.flatnonzero(lacking_rows)], cols,
                              depart_at)  # fmt: skip
            rest = missing & ~lacking_rows[:, None]
            if rest.any():  # known rows that lack some columns: just those columns
                need_rows = [rows[i] for i in np.flatnonzero(rest.any(axis=1))]
                need_cols = [cols[j] for j in np.flatnonzero(rest.any(axis=0))]
                await self._fetch(block, need_rows, need_cols, depart_at)
        grid = np.ix_(
            np.array([block.index[p] for p in sources], dtype=np.intp),
            np.array([block.index[p] for p in destinations], dtype=np.intp),
        )
        return Matrix(
            block.durations[grid].astype(np.int64), block.distances[grid].astype(np.int64)
        )

    async def _fetch(
        self, block: _Block, rows: list[Point], cols: list[Point], depart_at: datetime | None
    ) -> None:
        if not rows or not cols:
            return
        self.requests += 1
        fresh = await self.provider.matrix(rows, cols, depart_at)
        r = np.array([block.index[p] for p in rows], dtype=np.intp)
        c = np.array([block.index[p] for p in cols], dtype=np.intp)
        block.durations[np.ix_(r, c)] = np.minimum(fresh.durations, INT32_MAX)
        block.distances[np.ix_(r, c)] = np.minimum(fresh.distances, INT32_MAX)
        block.known[np.ix_(r, c)] = True


def provider_from_settings(
    settings: RoutingSettings,
    osrm_url: str | None,
    zone: str,
    client: httpx.AsyncClient | None = None,
) -> Cached:
    """The configured provider: OSRM when a URL is set, else straight lines; always cached."""
    traffic = TrafficProfile.parse(settings.traffic, zone)
    if osrm_url:
        return Cached(Osrm(osrm_url, client or httpx.AsyncClient(timeout=30), traffic=traffic))
    return Cached(StraightLine(settings.speed_kmh, settings.detour_factor, traffic))
